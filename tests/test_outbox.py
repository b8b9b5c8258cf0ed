"""The outbox (storage.outbox) and its sender (bot.sender.OutboxSender) against the fake Slack."""

import asyncio
import json
from datetime import timedelta

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import select, text

from bot.sender import OutboxSender
from storage import outbox
from storage.database import Database
from storage.models import OutboxMessage, OutboxStatus, as_utc, utcnow
from tests.fake_slack import TOKEN

RATELIMITED = (429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "30"})


def payload(i: int) -> dict:
    return {"channel": f"U{i:08d}", "text": f"FB-{i} is filed ✅"}


def queue(db: Database, count: int) -> list[dict]:
    payloads = [payload(i) for i in range(count)]
    for i, p in enumerate(payloads):
        assert db.transact(outbox.enqueue, dedupe_key=f"dm-{i}", method="chat.postMessage", payload=p)
    return payloads


def messages(db: Database) -> list[OutboxMessage]:
    with db.session() as s:
        return list(s.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all())


def make_due(db: Database) -> None:
    """Pretend the retry delay has passed."""
    with db.session() as s, s.begin():
        for row in s.exec(select(OutboxMessage)).all():
            row.not_before = utcnow() - timedelta(seconds=1)
            s.add(row)


def sender(db: Database, fake) -> OutboxSender:
    return OutboxSender(db, AsyncWebClient(token=TOKEN, base_url=fake.url + "/api/"))


async def drain(s: OutboxSender) -> int:
    total = 0
    while attempted := await s.drain_once():
        total += attempted
    return total


def posted(fake) -> list[dict]:
    return [c.body for c in fake.calls_to("chat.postMessage")]


def pg_only(db: Database) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SKIP LOCKED and concurrent senders are a PostgreSQL matter")


def test_enqueue_same_dedupe_key_twice_queues_once(db):
    args = dict(dedupe_key="dm-FB-1", method="chat.postMessage", payload={"channel": "U1", "text": "héllo 👋"})
    assert db.transact(outbox.enqueue, **args) is True
    assert db.transact(outbox.enqueue, **(args | {"payload": {"channel": "U1", "text": "other"}})) is False
    [row] = messages(db)
    assert (row.status, row.attempts, json.loads(row.payload)) == ("pending", 0, args["payload"])


async def test_sender_sends_each_pending_message_once(db, fake_slack):
    payloads = queue(db, 3)
    s = sender(db, fake_slack)
    assert await s.drain_once() == 3
    assert posted(fake_slack) == payloads
    rows = messages(db)
    assert [r.status for r in rows] == ["sent"] * 3
    assert all(r.sent_at is not None and r.claimed_until is None for r in rows)
    assert await s.drain_once() == 0
    assert len(posted(fake_slack)) == 3


async def test_429_waits_for_retry_after_then_sends_once(db, fake_slack):
    [p] = queue(db, 1)
    fake_slack.script("chat.postMessage", RATELIMITED)
    s = sender(db, fake_slack)
    before = utcnow()
    assert await s.drain_once() == 1
    [row] = messages(db)
    assert (row.status, row.last_error, row.sent_at) == ("pending", "ratelimited", None)
    assert as_utc(row.not_before) >= before + timedelta(seconds=25)
    assert await s.drain_once() == 0  # not due yet: Slack said 30 s
    make_due(db)
    assert await s.drain_once() == 1
    assert posted(fake_slack) == [p, p]  # the rate-limited try, then the one that went through
    [row] = messages(db)
    assert row.status == "sent"
    assert await s.drain_once() == 0 and len(posted(fake_slack)) == 2


async def test_permanent_error_fails_the_message_for_good(db, fake_slack):
    queue(db, 1)
    fake_slack.script("chat.postMessage", (200, {"ok": False, "error": "user_not_found"}, {}))
    s = sender(db, fake_slack)
    assert await s.drain_once() == 1
    [row] = messages(db)
    assert (row.status, row.last_error, row.sent_at) == ("failed", "user_not_found", None)
    make_due(db)
    assert await s.drain_once() == 0
    assert len(posted(fake_slack)) == 1


@pytest.mark.parametrize("response", [
    (500, {"ok": False, "error": "internal_error"}, {}),
    (200, {"ok": False, "error": "internal_error"}, {}),
], ids=["http_500", "internal_error"])
async def test_transient_error_is_retried_later(db, fake_slack, response):
    queue(db, 1)
    [queued] = messages(db)
    fake_slack.script("chat.postMessage", response)
    s = sender(db, fake_slack)
    assert await s.drain_once() == 1
    [row] = messages(db)
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "internal_error")
    assert as_utc(row.not_before) > as_utc(queued.not_before) and row.claimed_until is None
    make_due(db)
    assert await s.drain_once() == 1  # the fake answers normally now
    [row] = messages(db)
    assert (row.status, row.attempts) == ("sent", 2)
    assert len(posted(fake_slack)) == 2


def test_a_crashed_senders_claim_runs_out(db):
    queue(db, 2)
    claimed = db.transact(outbox.claim_due, limit=1)  # the sender claims one, then dies
    assert [r.dedupe_key for r in claimed] == ["dm-0"]
    held_until = as_utc(claimed[0].claimed_until)
    assert held_until > utcnow()
    assert [r.dedupe_key for r in db.transact(outbox.claim_due)] == ["dm-1"]  # the other one only
    assert db.transact(outbox.claim_due) == []
    again = db.transact(outbox.claim_due, now=held_until + timedelta(seconds=1))
    assert [(r.dedupe_key, r.attempts) for r in again] == [("dm-0", 2), ("dm-1", 2)]
    assert [r.status for r in messages(db)] == ["pending", "pending"]


def test_concurrent_claims_take_disjoint_rows(db):
    pg_only(db)
    queue(db, 50)
    with db.session() as a, db.session() as b:
        a.begin()
        held = {r.id for r in outbox.claim_due(session=a, limit=30)}  # open transaction, rows locked
        with b.begin():
            b.execute(text("SET LOCAL lock_timeout = '5s'"))  # waiting on A's rows would hang, not fail
            other = {r.id for r in outbox.claim_due(session=b, limit=50)}
        assert len(held) == 30 and len(other) == 20
        assert held.isdisjoint(other) and held | other == {m.id for m in messages(db)}
        a.rollback()  # sender A dies before committing its claim: its rows are free again
    assert {r.id for r in db.transact(outbox.claim_due, limit=50)} == held


async def test_two_senders_send_each_message_exactly_once(db, fake_slack):
    pg_only(db)
    payloads = queue(db, 40)
    attempted = await asyncio.gather(drain(sender(db, fake_slack)), drain(sender(db, fake_slack)))
    assert sum(attempted) == 40
    texts = [body["text"] for body in posted(fake_slack)]
    assert sorted(texts) == sorted(p["text"] for p in payloads)
    assert len(set(texts)) == 40
    assert [m.status for m in messages(db)] == ["sent"] * 40
