"""Forget a person, export everything, purge old closed reports: on SQLite and PostgreSQL."""

import io
import json
from datetime import timedelta

from sqlmodel import select

from bot.triage import service as triage
from storage import outbox
from storage.friction import FrictionDraft, file_friction
from storage.models import ClosureNotice, FrictionChange, FrictionPoint, OutboxMessage, Reporter, Source, utcnow
from storage.privacy import FORGOTTEN, REDACTED, export_json, forget_user, purge_older_than


def file(db, text: str, user: str, key: str | None = None) -> int:
    draft = FrictionDraft(team_id="T1", filed_by=user, reporter_id=user, text=text, source=Source.command,
                          intake_key=key or text, channel_id="C1", permalink="https://x.slack.com/archives/C1/p1")
    return db.transact(file_friction, draft=draft).point.id


def everything(db) -> str:
    out = io.StringIO()
    db.transact(export_json, out=out)
    return out.getvalue()


def test_forget_removes_the_person_and_keeps_the_aggregate(db):
    mine = file(db, "my secret project Falcon is blocked", "U0ALICE01")
    shared = file(db, "bob's report", "U0BOB0001")
    file(db, "x", "U0ALICE01", key="bob's report")  # Alice also hit Bob's problem
    db.transact(triage.assign, point_id=shared, actor="U0ALICE01", assignee="U0ALICE01", prefix="FB")
    db.transact(lambda *, session: session.add(ClosureNotice(friction_point_id=shared, user_id="U0ALICE01", tracker="github",
                                                             key="a/b#1", closure=1, outcome="fixed")))
    db.transact(outbox.enqueue, dedupe_key="dm", method="chat.postMessage", payload={"channel": "U0ALICE01", "text": "hi"})
    done = db.transact(forget_user, user_id="U0ALICE01")
    assert done["reports_redacted"] == 1 and done["reporter_entries_removed"] == 2 and done["closure_notices_removed"] == 1
    assert done["outbox_messages_removed"] == 1
    dump = everything(db)
    assert "U0ALICE01" not in dump and "Falcon" not in dump
    with db.session() as s:
        point = s.get(FrictionPoint, mine)
        assert (point.text, point.filed_by, point.permalink, point.severity) == (REDACTED, FORGOTTEN, None, "medium")
        assert [r.user_id for r in s.get(FrictionPoint, shared).reporters] == ["U0BOB0001"]
        assert s.get(FrictionPoint, shared).assignee is None
        assert FORGOTTEN in {c.actor for c in s.exec(select(FrictionChange)).all()}
    assert db.transact(forget_user, user_id="U0ALICE01")["reports_redacted"] == 0  # idempotent


def test_export_is_complete_json(db):
    file(db, "émoji 🚀 & <tags>", "U1")
    data = json.loads(everything(db))
    tables = data["tables"]
    assert tables["friction_point"][0]["text"] == "émoji 🚀 & <tags>"
    assert len(tables["reporter"]) == 1 and len(tables["friction_change"]) == 1
    assert tables["friction_point"][0]["created_at"].startswith(str(utcnow().year))


def test_purge_deletes_old_closed_reports_only(db):
    old_closed, old_open, new_closed = (file(db, t, "U1") for t in ("old closed", "old open", "new closed"))
    dup = file(db, "dup of old closed", "U2")
    db.transact(triage.merge, point_id=dup, into_id=old_closed, actor="H", prefix="FB")
    for pid in (old_closed, new_closed):
        db.transact(triage.resolve, point_id=pid, actor="H", note=None, prefix="FB")

    def age(*, session):
        for pid in (old_closed, old_open, dup):
            point = session.get(FrictionPoint, pid)
            point.created_at = utcnow() - timedelta(days=400)
            session.add(point)
    db.transact(age)
    assert db.transact(purge_older_than, cutoff=utcnow() - timedelta(days=365)) == 2  # old_closed and its merged dup
    with db.session() as s:
        assert {p.id for p in s.exec(select(FrictionPoint)).all()} == {old_open, new_closed}
        assert {r.friction_point_id for r in s.exec(select(Reporter)).all()} == {old_open, new_closed}
        assert all(m.friction_point_id in (None, old_open, new_closed) for m in s.exec(select(OutboxMessage)).all())


def test_cli_forget_export_and_purge(tmp_path, db):
    import subprocess
    import sys
    from pathlib import Path

    if not db.url.startswith("sqlite"):
        return  # the CLI reads DATABASE_URL; one database is enough here
    file(db, "cli report by alice", "U0ALICE01")
    repo = Path(__file__).resolve().parents[2]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(repo), "DATABASE_URL": db.url}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "bot.runtime.cli", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)

    assert cli("forget", "not-a-user").returncode == 2
    forgot = cli("forget", "U0ALICE01")
    assert forgot.returncode == 0 and "reports redacted: 1" in forgot.stdout
    exported = cli("export", "--json", "-")
    assert exported.returncode == 0 and "U0ALICE01" not in exported.stdout
    assert json.loads(exported.stdout)["tables"]["friction_point"][0]["filed_by"] == FORGOTTEN
    assert cli("purge").returncode == 2  # no retention configured: says so
    (tmp_path / "policy.yml").write_text("retention: {friction_days: 30}\n")
    env["CONFIG_FILE"] = "policy.yml"
    purged = cli("purge")
    assert purged.returncode == 0 and "purged 0" in purged.stdout  # the report is open and new
