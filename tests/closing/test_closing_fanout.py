"""Issue #12: a closure that reaches thousands of reporters is applied in short steps, so the
database is never held long (on SQLite one writer at a time: a long transaction makes the next
tracker delivery wait past the busy timeout); a crash between steps loses nothing and sends
nothing twice; a later reopen stops what an earlier closure still owed."""

import asyncio
import json
import time
from collections import Counter
from datetime import timedelta

from alembic import command
from sqlalchemy import event, func, text, update
from sqlmodel import select

from bot.closing import deliveries
from bot.closing import service as closing
from bot.closing.jobs import RECOVERY_JOB
from bot.trackers import github
from storage.database import alembic_config
from storage.models import ClosureNotice, FrictionPoint, OutboxMessage, Reporter, Source, Status, TrackerDelivery, TrackerLink, utcnow
from tests import tracker_requests as tr
from tests.closing.test_closing import ANNOUNCE, policy, settings_overrides  # noqa: F401  (fixtures)

KEY, URL = "acme/platform#42", "https://github.com/acme/platform/issues/42"


def seed(db, n: int) -> None:
    """``n`` reports, each with its own reporter and a triage card, all linked to acme/platform#42."""
    with db.session() as s, s.begin():
        for i in range(n):
            user = f"U0FAN{i:05d}"
            point = FrictionPoint(team_id="T0TEST0001", filed_by=user, text=f"builds are slow ({i})", source=Source.command,
                                  intake_key=f"fanout:{i}", status=Status.linked, card_channel="C0TRIAGE01", card_ts=f"1700000000.{i:06d}")
            point.reporters = [Reporter(user_id=user, team_id="T0TEST0001")]
            point.links = [TrackerLink(tracker="github", key=KEY, url=URL)]
            s.add(point)


def queued(db) -> Counter:
    """Queued closure DMs per reporter."""
    with db.session() as s:
        rows = s.exec(select(OutboxMessage.payload).where(OutboxMessage.dedupe_key.like("closure-notice:%"))).all()
    return Counter(json.loads(p)["channel"] for p in rows)


def announcement(db) -> list[str]:
    with db.session() as s:
        rows = s.exec(select(OutboxMessage.payload).where(OutboxMessage.dedupe_key.like("announce:%"))).all()
    return [json.loads(p)["text"] for p in rows if json.loads(p)["channel"] == ANNOUNCE]


def statuses(db) -> Counter:
    with db.session() as s:
        return Counter(s.exec(select(FrictionPoint.status)).all())


class WriteWatch:
    """Rows each transaction wrote (per table), and how long each held its connection from BEGIN
    to COMMIT."""

    def __init__(self, engine):
        self.rows: list[Counter] = []
        self.seconds: list[float] = []
        self._open: dict[int, list] = {}
        event.listen(engine, "begin", self._begin)
        event.listen(engine, "after_cursor_execute", self._executed)
        event.listen(engine, "commit", self._commit)

    def _begin(self, conn):
        self._open[id(conn)] = [time.perf_counter(), Counter()]

    def _executed(self, conn, cursor, statement, parameters, context, executemany):
        if id(conn) in self._open and statement.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            table = statement.split()[2] if statement.lstrip().upper().startswith(("INSERT", "DELETE")) else statement.split()[1]
            self._open[id(conn)][1][table.strip('"')] += max(cursor.rowcount, 0)

    def _commit(self, conn):
        started, rows = self._open.pop(id(conn), (None, None))
        if started is not None:
            self.seconds.append(time.perf_counter() - started)
            self.rows.append(rows)


async def test_a_2000_reporter_closure_writes_in_short_transactions_and_notifies_each_reporter_once(bot):
    seed(bot.db, 2000)
    watch = WriteWatch(bot.db.engine)
    closing_delivery = bot.http.post("/webhooks/github", content=(c := tr.github("issues", tr.github_issue("acme/platform", 42)))[0],
                                     headers=c[1])
    answered = []

    async def other(n: int):  # deliveries arriving while the closure is applied (they match nothing)
        await asyncio.sleep(0.05 * n)  # not a wait for something: their arrivals, spread out
        started = time.perf_counter()
        resp = await bot.http.post("/webhooks/github", content=(d := tr.github("issues", tr.github_issue("acme/other", n)))[0],
                                   headers=d[1])
        answered.append((resp.status_code, time.perf_counter() - started))

    first, *_ = await asyncio.gather(closing_delivery, *(other(n) for n in range(1, 21)))
    assert first.status_code == 200
    await bot.settle()
    # Each answered: before, each waited for the closure's one long transaction (seconds) and on
    # SQLite could pass the busy timeout (503). How soon (well inside the trackers' delivery
    # timeouts, Linear's 5 s the shortest) is a timing goal: bench/closing_ack.py measures it
    # (tens of ms, bench/README.md); here the cause is checked, the short transactions below.
    # 202 is kept too (the database busy past SQLite's 5 s timeout on a heavily loaded machine: the
    # delivery went to the spool and is applied when it answers); 503 or 500 would be a loss.
    assert {code for code, _ in answered} <= {200, 202} and len(answered) == 20, answered
    # Besides the links themselves (one transaction: their state moves at once), no transaction
    # wrote more than a step's worth: a chunk of reports (state, first response, history, card
    # redraw) or of reporters (notice, DM). Before, one wrote all 2,000 of each (8,000 rows).
    beyond_links = [sum(n for table, n in rows.items() if table != "tracker_link") for rows in watch.rows]
    assert max(beyond_links) <= 4 * closing.CHUNK + 1, sorted(beyond_links)[-5:]
    assert sum(1 for rows in watch.rows if rows["tracker_link"]) <= 1  # the links change at once
    mine = queued(bot.db)
    assert len(mine) == 2000 and set(mine.values()) == {1}
    assert announcement(bot.db) == ["You said, we did: acme/platform#42 is fixed (2000 people reported it)."]
    assert statuses(bot.db) == {"resolved": 2000}
    # A delivery recorded whose apply met the busy database (a loaded machine) is applied by the
    # recovery job, every minute in production: run it here rather than wait for it.
    age_deliveries(bot)
    assert await bot.deps.scheduler.run(RECOVERY_JOB)
    await bot.settle()
    with bot.db.session() as s:
        assert s.exec(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.method == "chat.update")).one() == 2000
        assert s.exec(select(func.count()).select_from(TrackerDelivery).where(TrackerDelivery.applied_at.is_(None))).one() == 0


def record(bot, payload: dict) -> int:
    body, headers = tr.github("issues", payload)
    return bot.db.transact(deliveries.record, tracker="github", body=body, events=github.read(body, headers))


def age_deliveries(bot) -> None:
    with bot.db.session() as s, s.begin():
        s.exec(update(TrackerDelivery).values(received_at=utcnow() - timedelta(minutes=2)))


async def test_a_closure_stopped_between_steps_finishes_once_on_the_next_tick(bot):
    seed(bot.db, 450)  # three chunks of reports, three of reporters, the announcement
    delivery = record(bot, tr.github_issue("acme/platform", 42))
    assert bot.db.transact(closing.apply_delivery, delivery_id=delivery).steps == 7
    for _ in range(4):  # the process dies after four steps: all reports closed, one chunk notified
        bot.db.transact(closing.run_steps, delivery_id=delivery, policy=bot.deps.policy)
    assert len(queued(bot.db)) == closing.CHUNK and statuses(bot.db) == {"resolved": 450}
    age_deliveries(bot)
    assert await bot.deps.scheduler.run(RECOVERY_JOB)
    await bot.settle()
    mine = queued(bot.db)
    assert len(mine) == 450 and set(mine.values()) == {1}
    assert announcement(bot.db) == ["You said, we did: acme/platform#42 is fixed (450 people reported it)."]
    # Recovering again (another instance, the next tick) does nothing more.
    age_deliveries(bot)
    await bot.deps.scheduler.run(RECOVERY_JOB, utcnow() + timedelta(minutes=5))
    assert sum(queued(bot.db).values()) == 450


async def test_a_reopen_arriving_mid_closure_stops_what_the_closure_still_owed(bot):
    seed(bot.db, 450)
    closed = record(bot, tr.github_issue("acme/platform", 42))
    bot.db.transact(closing.apply_delivery, delivery_id=closed)
    bot.db.transact(closing.run_steps, delivery_id=closed, policy=bot.deps.policy)  # 200 reports resolved
    assert statuses(bot.db) == {"resolved": 200, "linked": 250}
    # The issue is reopened (a later delivery, applied at once), then the closure's owner resumes.
    resp = await bot.http.post("/webhooks/github", content=(r := tr.github("issues", tr.github_issue("acme/platform", 42, action="reopened")))[0],
                               headers=r[1])
    assert resp.status_code == 200
    await bot.settle()
    age_deliveries(bot)
    await bot.deps.scheduler.run(RECOVERY_JOB)
    await bot.settle()
    assert statuses(bot.db) == {"linked": 450}
    assert queued(bot.db) == Counter() and announcement(bot.db) == []
    with bot.db.session() as s:
        assert s.exec(select(func.count()).select_from(ClosureNotice)).one() == 0
        assert s.exec(select(func.count()).select_from(TrackerDelivery).where(TrackerDelivery.applied_at.is_(None))).one() == 0


async def test_a_delivery_caught_mid_queue_by_the_upgrade_still_sends_what_it_owed(bot):
    """Migration 0013: a delivery recorded by the previous release, its notices written and 2 of 5
    DMs queued when the process stopped, sends the other 3 after the upgrade, once each."""
    seed(bot.db, 5)
    delivery = record(bot, tr.github_issue("acme/platform", 42))
    with bot.db.session() as s, s.begin():
        points = s.exec(select(FrictionPoint).order_by(FrictionPoint.id)).all()
        notices = [ClosureNotice(friction_point_id=p.id, user_id=p.filed_by, tracker="github", key=KEY, closure=1, outcome="fixed")
                   for p in points]
        s.add_all(notices)
        s.flush()
        owed = [[n.id, 0] for n in notices]
    config = alembic_config(bot.db.engine)
    command.downgrade(config, "0012")
    with bot.db.engine.begin() as conn:
        conn.execute(text("UPDATE tracker_delivery SET notices = :owed, queued = 2 WHERE id = :id"),
                     dict(owed=json.dumps(owed), id=delivery))
    command.upgrade(config, "head")
    age_deliveries(bot)
    assert await bot.deps.scheduler.run(RECOVERY_JOB)
    await bot.settle()
    assert sorted(queued(bot.db)) == sorted(p.filed_by for p in points[2:])
