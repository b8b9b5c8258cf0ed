"""Where adoption shows: ``report --json``/``--csv``/table, the weekly digest, the dashboard's usage
section (rendered in headless Chromium by a real ``serve``), and the CSAT comment a person chooses
to file as a friction report in their own name."""

import csv
import io
import json
from contextlib import redirect_stdout
from datetime import timedelta

from sqlmodel import select

from bot.insight.digest import queue_digest
from bot.runtime import report
from bot.usage import csat
from bot.usage.weeks import week_start
from storage import usage as store
from storage.models import FrictionPoint, FrictionTag, OutboxMessage, Reporter, UsageAnswer, UsageEvent, UsageWindow, utcnow
from tests.usage.helpers import usage_policy
from tests.web.test_dashboard import DASHBOARD_TOKEN, file_sample, serving_dashboard

COMMENT = "<!channel> the rollout *hung* for 20 min <https://evil.example|click>"


def seed(db) -> timedelta:
    """Three weeks of use (the last one under way), an audience of 4, a closed CSAT week with five
    answers (one comment) and one with two (under the minimum group), and the dashboard's sample
    friction (a blocker in the deploys area). Returns U0A4's time to first deploy (from their
    new-service two weeks before this week)."""
    now = utcnow()
    this_week = week_start(now)

    def fill(*, session) -> None:
        rows = []
        for w, people in ((2, ["U0A1", "U0A2"]), (1, ["U0A1", "U0A2", "U0A3"]), (0, ["U0A1", "U0A3", "U0A4"])):
            for u in people:
                at = min(now - timedelta(minutes=5), this_week - timedelta(weeks=w) + timedelta(hours=10))
                rows.append({"key": f"{u}-{w}", "capability": "deploy", "user_id": u, "email": None, "at": at,
                             "outcome": "failed" if u == "U0A3" else "ok", "duration_ms": 1000, "subject": "api"})
        rows.append({"key": "ns-1", "capability": "new-service", "user_id": "U0A4", "email": None, "at": this_week - timedelta(weeks=2),
                     "outcome": "ok", "duration_ms": None, "subject": None})
        store.store_events(session=session, rows=rows)
        session.exec(UsageEvent.__table__.update().values(settled=True))
        store.replace_audience(session=session, users=["U0A1", "U0A2", "U0A3", "U0A9"])
        for weeks_ago, answers in ((2, [(2, COMMENT), (3, None), (4, None), (5, None), (5, None)]), (1, [(1, None), (2, None)])):
            start = this_week - timedelta(weeks=weeks_ago)
            window = store.window(session=session, capability="deploy", week_start=start, closes_at=start + timedelta(days=8), secret="x")
            store.close_window(session=session, window=window, answers=answers, keep=len(answers) >= 5)

    db.transact(fill)
    file_sample(db)
    return min(now - timedelta(minutes=5), this_week + timedelta(hours=10)) - (this_week - timedelta(weeks=2))


def test_report_json_csv_and_table(db, monkeypatch, tmp_path):
    to_first_deploy = seed(db)
    policy = usage_policy()
    out = io.StringIO()
    with redirect_stdout(out):
        assert report.report(db, policy, None, "json") == 0
    data = json.loads(out.getvalue())["usage"]
    deploy = next(c for c in data["capabilities"] if c["name"] == "deploy")
    last, before = deploy["weeks"][-1], deploy["weeks"][-2]
    assert (last["active"], last["new"], last["returning"], last["uses"], last["failed"]) == (3, 1, 2, 3, 1)
    assert (before["active"], before["new"], before["active_4w"]) == (3, 1, 3)
    assert last["active_4w"] == 4 and last["audience_share"] == 0.5  # U0A1 and U0A3 of U0A1-3, U0A9
    assert last["time_to_first_use_hours"] == round(to_first_deploy.total_seconds() / 3600, 2)  # U0A4, this week's one new deployer
    assert deploy["csat"] == {"answers": 7, "average": 3.8, "satisfied": 0.6, "windows_under_min_group": 1}
    assert deploy["friction_points"] == 1 and deploy["friction_score"] > 0
    out = io.StringIO()
    with redirect_stdout(out):
        assert report.report(db, policy, None, "csv") == 0
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert ["usage_csat", "deploy", "average", "3.8", ""] in rows
    assert any(r[0] == "usage" and r[1] == "deploy" and r[2].endswith(" active") for r in rows)
    out = io.StringIO()
    with redirect_stdout(out):
        assert report.report(db, policy, None, None) == 0
    assert "Deploy: 3 active (4 in 4 weeks, 50 % of the audience), 1 new, 2 returning; CSAT 3.8; friction" in out.getvalue()


def test_the_weekly_digest_has_adoption_beside_friction(db):
    seed(db)
    policy = usage_policy().model_copy(update={"insight": usage_policy().insight.model_copy(update={"digest_channel": "C0DIGEST"})})
    db.transact(queue_digest, occurrence=utcnow(), policy=policy)
    with db.session() as s:
        post = next(json.loads(m.payload) for m in s.scalars(select(OutboxMessage)).all() if m.dedupe_key.endswith(":post"))
    text = json.dumps(post["blocks"])
    assert "Adoption and satisfaction" in text and "*Deploy*: 3 active this week (4 in 4 weeks), 1 new" in text
    assert "CSAT 3.8" in text and "Deploys friction" in text


def test_the_usage_section_in_headless_chromium(tmp_path, db, chromium):
    seed(db)
    policy_file = tmp_path / "policy.yml"
    policy_file.write_text(json.dumps(usage_policy().model_dump(include={"usage"}, mode="json")))
    with serving_dashboard(tmp_path, db.url, policy_file) as base:
        page = chromium.new_page()
        problems = []
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        assert page.goto(f"{base}/dashboard?token={DASHBOARD_TOKEN}", wait_until="load").status == 200
        section = page.locator("#usage")
        section.scroll_into_view_if_needed()
        assert section.get_by_role("heading", name="Adoption and satisfaction").is_visible()
        row = section.locator("tbody tr").first
        cells = [c.inner_text() for c in row.locator("td").all()]
        assert cells[:6] == ["Deploy", "3", "4", "1", "2", "50 %"] and cells[8] == "3.8" and cells[9] == "Deploys"
        chart = section.locator("svg.chart")
        box = chart.bounding_box()
        assert chart.is_visible() and box and box["width"] > 200 and chart.locator("path").count() > 10
        comment = section.locator("ul.comments li").first.inner_text()
        assert COMMENT in comment  # people's text as text: no link, no ping
        assert section.locator("a").count() == 0
        page.screenshot(path=str(tmp_path / "usage.png"), full_page=True)
        assert problems == []


async def test_a_low_score_comment_filed_in_the_persons_name(bot_with_usage):
    bot, keys = bot_with_usage
    from bot.usage.answers import comment_and_file

    now = utcnow()

    def asked(*, session):
        event_id = store.store_event(session=session, key="e1", capability="deploy", user_id="U0DEV0001", email=None, at=now,
                                     outcome="failed", duration_ms=None, subject=None)
        event = session.get(UsageEvent, event_id)
        return csat.ask(session=session, event=event, user_id="U0DEV0001", policy=bot.deps.policy.usage, tz="UTC",
                        now=now.replace(hour=12)).id

    ask_id = bot.db.transact(asked)
    assert bot.db.transact(csat.record, keys=keys, ask_id=ask_id, user_id="U0DEV0002", score=1).status == "unknown"  # not theirs
    assert bot.db.transact(csat.record, keys=keys, ask_id=ask_id, user_id="U0DEV0001", score=1).status == "ok"
    done, ref = bot.db.transact(comment_and_file, keys=keys, policy=bot.deps.policy, ask_id=ask_id, user_id="U0DEV0001", team_id="T0TEAM001",
                                enterprise_id=None, comment="the deploy hung at rollout", file_it=True)
    assert done.status == "ok" and ref == "FB-1"
    with bot.db.session() as s:
        point = s.get(FrictionPoint, 1)
        assert point.text == "the deploy hung at rollout" and point.source == "usage"
        assert [t.category for t in s.scalars(select(FrictionTag)).all()] == ["deploys"]
        assert [r.user_id for r in s.scalars(select(Reporter)).all()] == ["U0DEV0001"]
        window = s.scalars(select(UsageWindow)).one()
    # The anonymous answer keeps the score but not the filed comment: the two cannot be matched.
    bot.db.transact(lambda *, session: (setattr(window, "closes_at", now), session.merge(window)))
    closed = bot.db.transact(csat.close_due, keys=keys, policy=bot.deps.policy.usage.model_copy(
        update={"csat": bot.deps.policy.usage.csat.model_copy(update={"min_group": 3})}), now=now + timedelta(days=30))
    assert closed == [window.id]
    with bot.db.session() as s:
        assert s.scalars(select(UsageWindow)).one().answers == 1
        assert s.scalars(select(UsageAnswer)).all() == []  # one answer: under the minimum group, nothing kept


def test_the_focus_report_shows_an_areas_adoption_and_csat_before_and_after(db):
    """A focus on the deploys area picked three weeks ago: the deploy capability's 4-weekly users
    and CSAT at the pick against now (``report --focus``'s data and table)."""
    from bot.focus import data as focus_data
    from bot.usage.adoption import focus_usage

    seed(db)
    now = utcnow()
    picked = (now - timedelta(weeks=3)).isoformat()
    data = {"period": "2026-Q4", "ended": False, "pulse": [], "items": [
        {"subject": "area:deploys", "ref": None, "merged_into": None, "area": "deploys", "title": "Deploys", "people": 3,
         "fixed": False, "links": [], "baseline": {"at": picked, "score": 1.0, "reports_per_week": 1.0, "reporters": 3,
                                                   "hours_lost_per_week": 1.0},
         "now": {"at": now.isoformat(), "score": 1.0, "reports_per_week": 1.0, "reporters": 3, "hours_lost_per_week": 1.0, "told_fixed": 0}}]}
    with db.session() as s:
        focus_usage(session=s, policy=usage_policy(), data=data)
    [usage] = data["items"][0]["usage"]
    assert usage["capability"] == "deploy"
    assert usage["before"]["active_4w"] == 0 and usage["before"]["csat"] is None  # nobody had used it yet
    assert usage["after"]["active_4w"] == 4 and usage["after"]["csat"] == 3.8 and usage["after"]["csat_answers"] == 5
    assert "usage: Deploy: 0 people in 4 weeks, CSAT – → 4 people in 4 weeks, CSAT 3.8" in focus_data.report_text(data)
