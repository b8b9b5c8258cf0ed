"""Target compliance: each stopped clock settled once (first response; each resolution cycle, a
reopen starting a new one), breaches counted as they happen, the rates and breaches by area and
severity read back in a fixed number of SQL statements, and shown in ``/platform-feedback top``,
the weekly digest, ``report`` (text, --json, --csv) and the dashboard. SQLite and PostgreSQL."""

import csv
import io
import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import event
from sqlmodel import select

from bot.insight.digest import queue_digest
from bot.policy import Hosts, Insight, Policy, Targets, Triage
from bot.targets import alerts as target_alerts
from bot.targets import compliance
from bot.web import dashboard
from storage.models import FrictionChange, FrictionPoint, FrictionTag, OutboxMessage, Reporter, Source, as_utc, utcnow
from storage.targets import TargetOutcome
from tests.slack_requests import slash_command

HOST = "U0HOST0001"
TARGETS = {
    "hours": "00:00-24:00", "working_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
    "severities": {"medium": {"first_response": "1h", "resolution": "2h"}, "low": {"first_response": "1h"}},
}
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def policy() -> Policy:
    return Policy(hosts=Hosts(users=[HOST]), triage=Triage(channel="C0TRIAGE01"), targets=Targets.model_validate(TARGETS),
                  insight=Insight(digest_channel="C0DIGEST01"))


NOW = utcnow().replace(microsecond=0)


def add(s, *, created, severity="medium", first=None, tags=(), duplicate_of=None, changes=()) -> FrictionPoint:
    """A report filed at ``created``; ``changes``: (action, old, at) history entries."""
    point = FrictionPoint(team_id="T0TEAM001", filed_by="U1", text="in the way", severity=severity, source=Source.command,
                          intake_key=f"t:{uuid.uuid4().hex}", created_at=created, updated_at=created, first_response_at=first,
                          duplicate_of_id=duplicate_of)
    point.reporters = [Reporter(user_id="U1", team_id="T0TEAM001", reported_at=created)]
    point.tags = [FrictionTag(category=c, automatic=False) for c in tags]
    s.add(point)
    s.flush()
    for action, old, at in changes:
        s.add(FrictionChange(friction_point_id=point.id, actor=HOST, action=action, old=old, at=at))
    closed = [a for a, _, _ in changes if a in ("resolved", "declined", "closed")]
    if closed and changes[-1][0] != "reopened":
        point.status, point.resolved_at = "resolved", changes[-1][2]
    s.add(point)
    s.flush()
    return point


@pytest.fixture
def history(db) -> dict:
    return fill_history(db)


def fill_history(db) -> dict:
    """Reports over the last 40 days whose clocks met or missed their targets (also drawn on the
    dashboard's screenshot)."""
    h = lambda n: timedelta(hours=n)  # noqa: E731
    with db.session() as s, s.begin():
        a = add(s, created=NOW - timedelta(days=10), first=NOW - timedelta(days=10) + h(0.5),
                changes=[("resolved", "acknowledged", NOW - timedelta(days=10) + h(1.5))])  # both met
        b0 = NOW - timedelta(days=9)
        b = add(s, created=b0, first=b0 + h(2), tags=("ci",), changes=[("resolved", "acknowledged", b0 + h(5))])  # both missed
        c0 = NOW - timedelta(days=8)
        # Resolved in 1 h (met), reopened, closed by the tracker 8 h later (missed: a new 2 h clock).
        c = add(s, created=c0, first=c0 + h(0.2), changes=[("resolved", "acknowledged", c0 + h(1)), ("reopened", "resolved", c0 + h(2)),
                                                            ("closed", "linked", c0 + h(10)), ("declined", "resolved", c0 + h(11))])
        d0 = NOW - timedelta(days=5)
        d = add(s, created=d0, severity="low", first=d0 + h(3), changes=[("resolved", "new", d0 + h(4))])  # low: no resolution target
        add(s, created=d0, first=d0 + h(9), duplicate_of=a.id)  # merged: not measured
        f = add(s, created=NOW - h(3))  # open, nothing done: both clocks breached now
        g0 = NOW - timedelta(days=40)
        add(s, created=g0, first=g0 + h(0.1))  # the window before: first response met
    return {"a": a.id, "b": b.id, "c": c.id, "d": d.id, "f": f.id}


def settle_all(db, policy) -> None:
    db.transact(target_alerts.check_job, occurrence=NOW, policy=policy)


def test_each_stopped_clock_is_settled_once_and_compliance_is_sql(db, policy, history):
    settle_all(db, policy)
    with db.session() as s:
        rows = {(r.friction_point_id, r.clock, r.cycle): r for r in s.exec(select(TargetOutcome))}
    c = history["c"]
    assert (rows[(c, "resolution", 0)].met, rows[(c, "resolution", 1)].met) == (True, False)
    assert rows[(c, "resolution", 1)].used_minutes == 8 * 60 and rows[(c, "resolution", 1)].target_minutes == 120
    assert rows[(history["d"], "resolution", 0)].met is None  # low has no resolution target
    f = rows[(history["f"], "first_response", 0)]
    assert f.stopped_at is None and f.met is None and abs(as_utc(f.breached_at) - (NOW - timedelta(hours=2))) < timedelta(seconds=1)
    count = len(rows)
    settle_all(db, policy)  # nothing new: nothing written again
    with db.session() as s:
        assert len(s.exec(select(TargetOutcome)).all()) == count

    statements = []
    listener = lambda *args: statements.append(args[2]) if args[2].lstrip().upper().startswith("SELECT") else None  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        result = db.transact(compliance.compliance, policy=policy, days=30, now=NOW)
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert len(statements) == 4  # two windows' rates, breaches by severity and by area: whatever the number of reports
    assert (result.first_response.measured, result.first_response.met) == (4, 2)  # a, b, c, d; the duplicate left out
    assert (result.resolution.measured, result.resolution.met) == (4, 2)  # a, b, c's two cycles
    assert (result.previous_first_response.measured, result.previous_first_response.met) == (1, 1)
    assert result.breaches_by_severity == {"medium": 5, "low": 1}  # b twice, c's second cycle, f twice; d
    assert result.breaches_by_area == {"ci": 2, None: 4}


def test_compliance_is_off_without_targets(db, history):
    assert db.transact(compliance.compliance, policy=Policy(), days=30) is None
    assert db.transact(compliance.settle, policy=Policy()) == 0


async def test_top_and_the_digest_show_compliance(bot, policy, history):
    settle_all(bot.db, policy)
    await bot.post(*slash_command("top 30", fake_url=bot.fake.url, user=HOST))
    await bot.drain()
    top = json.dumps(bot.fake.calls_to("response_url")[-1].body)
    assert "Response targets" in top and "First response on target*\\n50% (-50 pts) of 4" in top
    assert "Breaches: 6*\\nby severity: medium 5, low 1\\nby area: no area 4, CI 2" in top

    bot.db.transact(queue_digest, occurrence=NOW, policy=policy)
    with bot.db.session() as s:
        post = next(m for m in s.exec(select(OutboxMessage)) if m.dedupe_key.endswith(":post"))
    assert "Resolution on target*\\n50% (new) of 4" in post.payload


def run_report(db, policy_file, *args) -> str:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": REPO, "DATABASE_URL": db.url, "CONFIG_FILE": str(policy_file)}
    done = subprocess.run([sys.executable, "-m", "bot.runtime.cli", "report", "--days", "30", *args], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_report_text_json_and_csv(db, policy, history, tmp_path):
    settle_all(db, policy)
    policy_file = tmp_path / "policy.yml"
    policy_file.write_text(json.dumps({"targets": TARGETS}))
    data = json.loads(run_report(db, policy_file, "--json"))["targets"]
    assert data["first_response"] == {"measured": 4, "met": 2, "percent": 50.0}
    assert data["previous"]["first_response"]["percent"] == 100.0
    assert data["breaches"] == 6 and data["breaches_by_area"] == {"no area": 4, "CI": 2}
    rows = list(csv.reader(io.StringIO(run_report(db, policy_file, "--csv"))))
    assert ["targets", "resolution_met_percent", "", "50.0", ""] in rows
    assert ["target_breaches_by_severity", "medium", "", "5", ""] in rows
    text = run_report(db, policy_file)
    assert "Response targets" in text and "50.0% of 4" in text and "by severity: medium 5, low 1" in text


def test_the_dashboard_shows_compliance(db, policy, history):
    settle_all(db, policy)
    data = db.transact(dashboard.gather, days=30, now=NOW, policy=policy)
    page = dashboard.render(policy, data)
    section = page[page.index('id="targets"'):page.index('id="points"')]
    assert "First response on target" in section and ">50%<" in section and "was 100%" in section
    assert "CI" in section and "sev-medium" in section and "<svg" in section
    assert 'id="targets"' not in dashboard.render(Policy(), db.transact(dashboard.gather, days=30, now=NOW))
