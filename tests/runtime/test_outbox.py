"""The outbox (storage.outbox) and its sender (bot.runtime.outbox.OutboxSender) against the fake Slack."""

import asyncio
import base64
import json
from datetime import timedelta

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import func, select, text

from bot.runtime.outbox import MAX_ATTEMPTS, Hook, MethodLimiter, OutboxSender
from storage import outbox
from storage.database import Database, DatabaseUnavailable
from storage.models import OutboxMessage, as_utc, utcnow
from tests.fake_slack import TOKEN
from tests.waiting import until, wait_for

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


FAST = {"chat.postMessage": 1000.0, "chat.update": 1000.0}  # pacing out of the way
# The client's timeout where Slack answers after it (held until the client gave up): long enough
# that the answers that are not held come back in time on a loaded machine.
LATE_TIMEOUT = 3.0


class FakeClock:
    """Monotonic time that moves only when the sender sleeps (or a test moves it). With
    ``answers_first``, a sleep returns only once every Slack call in flight (``record_call_times``
    counts them) has its answer: on this clock Slack answers at once, however long a loaded machine
    takes to carry the answer."""

    def __init__(self, answers_first: bool = False):
        self.now = 1000.0
        self.slept: list[float] = []
        self.answers_first = answers_first
        self.in_flight = 0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now = max(self.now, self.now + seconds)
        await asyncio.sleep(0)
        if self.answers_first:
            await until(lambda: self.in_flight == 0, what="Slack's answers to the calls in flight", interval=0.005)


def sender(db: Database, fake, clock: FakeClock | None = None, **options) -> OutboxSender:
    options.setdefault("rates", FAST)
    options.setdefault("channel_rates", {})
    options.setdefault("max_in_flight", 4)  # the fake's listen backlog is 5: more would wait on SYN retries
    if clock is not None:
        options |= {"clock": clock, "sleep": clock.sleep}
    return OutboxSender(db, AsyncWebClient(token=TOKEN, base_url=fake.url + "/api/"), **options)


def record_call_times(s: OutboxSender, clock: FakeClock) -> list[tuple[float, str, str]]:
    """(clock time, method, channel) of every Slack call the sender starts."""
    times: list[tuple[float, str, str]] = []
    real = s.workspaces.single.api_call

    async def api_call(method, **kwargs):
        times.append((clock(), method, kwargs["json"].get("channel")))
        clock.in_flight += 1
        try:
            return await real(method, **kwargs)
        finally:
            clock.in_flight -= 1

    s.workspaces.single.api_call = api_call
    return times


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
    assert sorted(posted(fake_slack), key=lambda p: p["channel"]) == payloads  # different channels go concurrently
    rows = messages(db)
    assert [r.status for r in rows] == ["sent"] * 3
    assert all(r.sent_at is not None and r.claimed_until is None for r in rows)
    assert await s.drain_once() == 0
    assert len(posted(fake_slack)) == 3


async def test_429_waits_for_retry_after_then_sends_once(db, fake_slack):
    [p] = queue(db, 1)
    fake_slack.script("chat.postMessage", RATELIMITED)
    clock = FakeClock()
    s = sender(db, fake_slack, clock)
    before = utcnow()
    assert await s.drain_once() == 1
    [row] = messages(db)
    assert (row.status, row.last_error, row.sent_at, row.attempts) == ("pending", "ratelimited", None, 0)
    assert as_utc(row.not_before) >= before + timedelta(seconds=25)
    assert await s.drain_once() == 0  # not due yet: Slack said 30 s
    make_due(db)
    assert await s.drain_once() == 0  # due in the table, but this sender knows the method is paused
    clock.now += 30
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
    clock = FakeClock()
    s = sender(db, fake_slack, clock)
    assert await s.drain_once() == 1
    [row] = messages(db)
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "internal_error")
    assert as_utc(row.not_before) > as_utc(queued.not_before) and row.claimed_until is None
    make_due(db)
    assert await s.drain_once() == 0  # Slack is failing the method: it is paused (1-2 s) for everyone
    clock.now += 2
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


# ------------------------------------------------------------------ Slack failing (test_slack_outage.py: for minutes)

UNAVAILABLE = (503, {"ok": False, "error": "service_unavailable"}, {})


async def test_failures_of_requests_already_in_flight_pause_the_method_once(db, fake_slack):
    queue(db, 4)
    fake_slack.fail_when = lambda method, body: UNAVAILABLE
    clock = FakeClock()
    s = sender(db, fake_slack, clock)  # 4 in flight at once: all four fail
    assert await s.drain_once() == 4
    after = utcnow()  # not_before is on the wall clock: counted from when the batch ended, however slowly it ran
    rows = messages(db)
    assert [(r.status, r.attempts, r.last_error) for r in rows] == [("pending", 1, "service_unavailable")] * 4
    # One failure in a row (a pause of 1-2 s), not four (8-16 s): they were sent before the first came back.
    assert all(as_utc(r.not_before) <= after + timedelta(seconds=2.5) for r in rows)
    assert 1 <= s.limiter("chat.postMessage").paused_until - clock() <= 2


async def test_a_message_slack_fails_takes_its_channels_later_messages_back_with_it(db, fake_slack):
    for i in range(3):
        db.transact(outbox.enqueue, dedupe_key=f"m{i}", method="chat.postMessage", payload={"channel": "C-ONE", "text": f"#{i}"})
    fake_slack.script("chat.postMessage", UNAVAILABLE)
    clock = FakeClock()
    s = sender(db, fake_slack, clock, batch_seconds=0.1)  # the pause outlasts the batch
    assert await s.drain_once() == 1
    assert [p["text"] for p in posted(fake_slack)] == ["#0"]
    rows = messages(db)
    assert [(r.status, r.attempts) for r in rows] == [("pending", 1), ("pending", 0), ("pending", 0)]
    assert as_utc(rows[1].not_before) >= as_utc(rows[0].not_before) - timedelta(seconds=0.5)  # not before #0
    clock.now += 2
    make_due(db)
    assert await s.drain_once() == 3
    assert [p["text"] for p in posted(fake_slack)] == ["#0", "#0", "#1", "#2"]  # in order, once each


async def test_an_outage_never_fails_a_message_but_its_own_errors_still_do(db, fake_slack):
    queue(db, 1)
    clock = FakeClock()
    s = sender(db, fake_slack, clock)
    fake_slack.fail_when = lambda method, body: UNAVAILABLE
    for _ in range(MAX_ATTEMPTS + 4):
        assert await s.drain_once() == 1
        clock.now += 301
        make_due(db)
    [row] = messages(db)
    assert (row.status, row.attempts, row.last_error) == ("pending", MAX_ATTEMPTS + 4, "service_unavailable")
    fake_slack.fail_when = lambda method, body: (200, {"ok": False, "error": "some_new_error"}, {})
    assert await s.drain_once() == 1
    [row] = messages(db)
    assert (row.status, row.last_error) == ("failed", "some_new_error")  # attempted more than MAX_ATTEMPTS times


async def test_a_failed_file_upload_step_is_an_outage_too(db, fake_slack):
    db.transact(outbox.enqueue, dedupe_key="chart", method="files.uploadV2", payload={
        "channel": "C0DIGEST01", "filename": "chart.png", "title": "Chart",
        "content_b64": base64.b64encode(b"\x89PNG" + b"0" * 10).decode("ascii")})
    fake_slack.fail_when = lambda method, body: (503, "upstream connect error", {}) if method == "upload" else None
    clock = FakeClock()
    s = sender(db, fake_slack, clock)
    for _ in range(MAX_ATTEMPTS + 1):
        assert await s.drain_once() == 1
        clock.now += 301
        make_due(db)
    [row] = messages(db)
    assert (row.status, row.last_error) == ("pending", "upload: http_503")
    fake_slack.fail_when = None
    assert await s.drain_once() == 1
    assert [r.status for r in messages(db)] == ["sent"]


async def test_the_sender_outlives_a_batch_that_raises(db, fake_slack):
    queue(db, 1)
    s = sender(db, fake_slack, idle_seconds=0.05)
    real, raised = s.drain_once, []

    async def once_broken(started=None):
        if not raised:
            raised.append(True)
            raise RuntimeError("a bug")
        return await real(started)

    s.drain_once = once_broken
    s.start()
    try:
        await until(lambda: posted(fake_slack), what="the post after the batch that raised")
    finally:
        await s.stop()
    assert raised and len(posted(fake_slack)) == 1


# ------------------------------------------------------------------ claims


def test_a_claim_lasts_the_configured_seconds(db):
    queue(db, 2)
    now = utcnow()
    [first] = db.transact(outbox.claim_due, limit=1, now=now, claim_seconds=10)
    assert as_utc(first.claimed_until) == now + timedelta(seconds=10)
    [second] = db.transact(outbox.claim_batch, limit_for=lambda method: 5, now=now, claim_seconds=7)
    assert as_utc(second.claimed_until) == now + timedelta(seconds=7)
    later = [db.transact(outbox.claim_due, now=now + timedelta(seconds=t)) for t in (8, 11)]
    assert [[r.dedupe_key for r in rows] for rows in later] == [["dm-1"], ["dm-0"]]  # 7 s ran out, then 10 s


async def test_the_sender_claims_for_its_claim_seconds_and_sends_within_half(db, fake_slack):
    queue(db, 1)
    s = sender(db, fake_slack, claim_seconds=8)
    assert s.hold_seconds == 4
    seen = []
    real = outbox.claim_batch

    def claim_batch(**kwargs):
        seen.append(kwargs["claim_seconds"])
        return real(**kwargs)

    s.db = type("Spy", (), {"run": staticmethod(lambda fn, /, **kw: db.run(claim_batch if fn is real else fn, **kw))})()
    assert await s.drain_once() == 1
    assert seen == [8]
    assert OutboxSender(None, None).hold_seconds == 10  # the default 60 s claim: the batch's 2 x 5 s


def test_claim_seconds_is_a_deployment_setting(db, fake_slack, policy):
    from bot.runtime.app import create_app
    from bot.runtime.settings import ConfigError, load_settings
    from tests.conftest import make_settings

    _, deps = create_app(make_settings(fake_slack, db, outbox_claim_seconds=20), policy, db)
    assert (deps.sender.claim_seconds, deps.sender.hold_seconds) == (20, 10)
    _, deps = create_app(make_settings(fake_slack, db), policy, db)
    assert deps.sender.claim_seconds == outbox.CLAIM_SECONDS == 60
    with pytest.raises(ConfigError, match="OUTBOX_CLAIM_SECONDS"):
        load_settings(slack_bot_token=TOKEN, slack_signing_secret="x" * 32, outbox_claim_seconds=2)


# ------------------------------------------------------------------ rate limits


async def test_429_pauses_the_whole_method_and_other_methods_go_on(db, fake_slack):
    posts = queue(db, 3)
    db.transact(outbox.enqueue, dedupe_key="edit", method="chat.update", payload={"channel": "C1", "ts": "1.2", "text": "edited"})
    fake_slack.script("chat.postMessage", RATELIMITED)
    clock = FakeClock()
    s = sender(db, fake_slack, clock, max_in_flight=1)  # one at a time: the 429 is back before the next turn
    before = utcnow()
    assert await s.drain_once() == 2  # the first post (429), then the update; posts 2 and 3 not tried
    assert [c.method for c in fake_slack.calls] == ["chat.postMessage", "chat.update"]
    assert posted(fake_slack) == [posts[0]]
    rows = messages(db)
    assert [r.status for r in rows] == ["pending", "pending", "pending", "sent"]
    for row in rows[:3]:  # back in the outbox until the pause is over, and no attempt counted
        assert as_utc(row.not_before) >= before + timedelta(seconds=25)
        assert (row.attempts, row.claimed_until) == (0, None)
    assert [r.last_error for r in rows[:3]] == ["ratelimited", None, None]

    db.transact(outbox.enqueue, dedupe_key="late", method="chat.postMessage", payload={"channel": "U9", "text": "late"})
    make_due(db)
    clock.now += 29
    assert await s.drain_once() == 0  # due in the table, but Slack said 30 s
    assert len(fake_slack.calls) == 2
    clock.now += 1.5
    assert await s.drain_once() == 4
    assert sorted(p["channel"] for p in posted(fake_slack)) == ["U00000000", "U00000000", "U00000001", "U00000002", "U9"]
    assert [r.status for r in messages(db)] == ["sent"] * 5


async def test_429_pause_holds_back_other_senders_through_the_outbox(db, fake_slack):
    queue(db, 3)
    fake_slack.script("chat.postMessage", RATELIMITED)
    first = sender(db, fake_slack, FakeClock(), rates={"chat.postMessage": 0.01}, bursts={"chat.postMessage": 1})  # claims one at a time
    before = utcnow()
    assert await first.drain_once() == 1
    assert all(as_utc(r.not_before) >= before + timedelta(seconds=25) for r in messages(db))
    other = sender(db, fake_slack, FakeClock())  # another instance: knows nothing of the 429 itself
    assert await other.drain_once() == 0
    assert len(posted(fake_slack)) == 1


async def test_429_is_not_counted_toward_max_attempts(db, fake_slack):
    [p] = queue(db, 1)
    rounds = MAX_ATTEMPTS + 2
    fake_slack.script("chat.postMessage", *[(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"})] * rounds)
    clock = FakeClock()
    s = sender(db, fake_slack, clock)
    for _ in range(rounds):
        assert await s.drain_once() == 1
        [row] = messages(db)
        assert (row.status, row.attempts) == ("pending", 0)
        clock.now += 1
        make_due(db)
    assert await s.drain_once() == 1
    [row] = messages(db)
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)
    assert posted(fake_slack) == [p] * (rounds + 1)


async def test_a_429_stops_a_send_already_waiting_for_its_turn(db, fake_slack):
    import time

    queue(db, 2)
    answered = []

    def first_429_slowly(method, body):  # as a loaded machine carries it: 0.3 s
        if answered:
            return None
        answered.append(method)
        time.sleep(0.3)
        return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "3"}

    fake_slack.fail_when = first_429_slowly
    clock = FakeClock(answers_first=True)
    s = sender(db, fake_slack, clock, rates={"chat.postMessage": 2.0}, bursts={"chat.postMessage": 1}, max_in_flight=2)
    start = clock()
    times = record_call_times(s, clock)
    assert await s.drain_once() == 2
    # The second was waiting for its turn (0.5 s) when the first's 429 came back: it waits out the
    # pause (3 s from when the 429 was seen, on this clock already 0.5 s in) instead of going at 0.5.
    assert [t - start for t, _, _ in times] == [0, 3.5]


async def test_429_without_retry_after_pauses_one_second(db, fake_slack):
    queue(db, 2)
    fake_slack.script("chat.postMessage", (429, {"ok": False, "error": "ratelimited"}, {}))
    clock = FakeClock()
    s = sender(db, fake_slack, clock, max_in_flight=1)
    start = clock()
    times = record_call_times(s, clock)
    assert await s.drain_once() == 2  # a 1 s pause fits the batch: the second waits for it in memory
    assert [t - start for t, _, _ in times] == [0, 1.0]
    assert [r.status for r in messages(db)] == ["pending", "sent"]


async def test_a_burst_is_paced_to_the_configured_rate(db, fake_slack):
    queue(db, 6)
    clock = FakeClock()
    s = sender(db, fake_slack, clock, rates={"chat.postMessage": 2.0}, bursts={"chat.postMessage": 2}, max_in_flight=1)
    start = clock()
    times = record_call_times(s, clock)
    assert await s.drain_once() == 6
    assert [t - start for t, _, _ in times] == [0, 0, 0.5, 1.0, 1.5, 2.0]  # a burst of 2, then 2 a second
    assert [r.status for r in messages(db)] == ["sent"] * 6


async def test_each_method_has_its_own_pace(db, fake_slack):
    queue(db, 3)
    for i in range(3):
        db.transact(outbox.enqueue, dedupe_key=f"edit-{i}", method="chat.update", payload={"channel": f"C{i}", "ts": "1.2", "text": "x"})
    clock = FakeClock()
    s = sender(db, fake_slack, clock, rates={"chat.postMessage": 1.0, "chat.update": 10.0},
               bursts={"chat.postMessage": 1, "chat.update": 1}, max_in_flight=1)
    start = clock()
    times = record_call_times(s, clock)
    assert await s.drain_once() == 6
    updates = [t - start for t, m, _ in times if m == "chat.update"]
    assert updates[1] - updates[0] == pytest.approx(0.1) and updates[2] - updates[1] == pytest.approx(0.1)
    assert len([m for t, m, _ in times if m == "chat.postMessage" and t - start < 2]) == 2  # 1/s: 0 and 1


async def test_posts_to_one_channel_are_paced_per_channel_too(db, fake_slack):
    for i in range(6):
        channel = "C-ONE" if i % 2 == 0 else f"U{i}"
        db.transact(outbox.enqueue, dedupe_key=f"m{i}", method="chat.postMessage", payload={"channel": channel, "text": f"#{i}"})
    clock = FakeClock()
    s = sender(db, fake_slack, clock, channel_rates={"chat.postMessage": 1.0}, channel_burst=1)
    start = clock()
    times = record_call_times(s, clock)
    assert await s.drain_once() == 6
    assert [t - start for t, _, c in times if c == "C-ONE"] == [0, 1.0, 2.0]  # 1 a second in that channel
    assert [t - start for t, _, c in times if c != "C-ONE"] == [0, 0, 0]  # the DMs did not wait for it


def test_default_limits_stay_under_slacks_documented_floors():
    s = OutboxSender(None, None)
    for method, per_minute in {"chat.postMessage": 200, "chat.update": 50, "chat.postEphemeral": 100, "views.publish": 100}.items():
        worst_minute = s.rates[method] * 60 + s.bursts[method]  # steady pace plus one full burst
        assert worst_minute <= per_minute * 1.2 + 1, method
    assert s.channel_rates["chat.postMessage"] <= 1.0  # "1 message per second to a specific channel"


def test_limiter_hands_out_turns_in_order_and_honours_a_pause():
    clock = FakeClock()
    limiter = MethodLimiter(rate=2.0, burst=2, clock=clock)
    t0 = clock()
    assert [limiter.reserve() - t0 for _ in range(5)] == [0, 0, 0.5, 1.0, 1.5]  # asked at the same instant
    assert limiter.reserve(latest=t0 + 1.9) is None  # too late: nothing taken
    assert limiter.reserve() - t0 == 2.0
    clock.now += 10  # quiet: the burst allowance is back
    assert limiter.reserve() == clock.now and limiter.reserve() == clock.now
    limiter.pause(3)
    assert limiter.paused()
    assert [limiter.reserve() - clock.now for _ in range(3)] == [3, 3.5, 4.0]  # no burst right after a pause


# ------------------------------------------------------------------ batches, order, hooks, stopping


async def test_a_batch_is_claimed_once_and_sends_finishing_together_share_a_write(db, fake_slack):
    queue(db, 30)
    s = sender(db, fake_slack)
    transactions = []
    real = db.run

    async def counting(fn, /, *args, **kwargs):
        transactions.append(getattr(fn, "__name__", repr(fn)))
        return await real(fn, *args, **kwargs)

    s.db = type("CountingDatabase", (), {"run": staticmethod(counting)})()
    assert await s.drain_once() == 30
    assert transactions[0] == "claim_batch" and set(transactions[1:]) == {"record"}
    assert len(transactions) <= 1 + 30  # at most one write per send; sends answered together share one
    assert [r.status for r in messages(db)] == ["sent"] * 30
    assert len(posted(fake_slack)) == 30


@pytest.mark.parametrize("in_flight", [1, 4])
async def test_each_send_is_recorded_before_another_call_takes_its_place(db, fake_slack, in_flight):
    """What Slack has and the outbox does not know of is never more than the calls in flight: a
    kill -9 at any moment leaves at most ``max_in_flight`` messages that may go twice (issue #14)."""
    queue(db, 40)
    s = sender(db, fake_slack, max_in_flight=in_flight)
    real = s.workspaces.single.api_call
    unrecorded: list[int] = []

    async def api_call(method, **kwargs):
        with db.session() as session:
            recorded = session.exec(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "sent")).one()
        unrecorded.append(len(posted(fake_slack)) - recorded)  # answered by Slack, not yet in the outbox
        return await real(method, **kwargs)

    s.workspaces.single.api_call = api_call
    assert await s.drain_once() == 40
    assert max(unrecorded) <= in_flight - 1, unrecorded  # this call's place was given up by a recorded one
    assert [r.status for r in messages(db)] == ["sent"] * 40


async def test_messages_to_one_channel_keep_their_order(db, fake_slack):
    for i in range(8):
        channel = "C-ONE" if i % 2 == 0 else f"U{i}"
        db.transact(outbox.enqueue, dedupe_key=f"m{i}", method="chat.postMessage", payload={"channel": channel, "text": f"#{i}"})
    assert await sender(db, fake_slack).drain_once() == 8
    assert [p["text"] for p in posted(fake_slack) if p["channel"] == "C-ONE"] == ["#0", "#2", "#4", "#6"]


class PostThenUpdate(Hook):
    """A hook like the triage card's: posts once, then updates what it posted."""

    def __init__(self):
        self.where: dict | None = None

    def prepare(self, session, message, payload):
        if self.where:
            return "chat.update", {**self.where, "text": payload["text"]}
        return "chat.postMessage", {"channel": "CTRIAGE", "text": payload["text"]}

    def sent(self, session, message, response):
        self.where = {"channel": response["channel"], "ts": response["ts"]}


async def test_hooks_render_when_sent_and_see_what_the_previous_send_recorded(db, fake_slack):
    for i in range(3):
        db.transact(outbox.enqueue, dedupe_key=f"card-{i}", method="chat.postMessage", payload={"text": f"v{i}"}, purpose="card")
    s = sender(db, fake_slack)
    s.hooks["card"] = hook = PostThenUpdate()
    assert await s.drain_once() == 3
    assert [(c.method, c.body["text"]) for c in fake_slack.calls] == [("chat.postMessage", "v0"), ("chat.update", "v1"), ("chat.update", "v2")]
    assert all(c.body.get("ts") == hook.where["ts"] for c in fake_slack.calls[1:])
    assert [r.status for r in messages(db)] == ["sent"] * 3


async def test_stopping_mid_batch_records_what_went_and_gives_back_the_rest(db, fake_slack):
    import threading

    payloads = queue(db, 20)
    # The sixth post is held at Slack until the sender was stopped: it is cut off mid-flight.
    sixth_arrived, release, arrived = threading.Event(), threading.Event(), []

    def hold_the_sixth(method, body):
        arrived.append(method)
        if len(arrived) == 6:
            sixth_arrived.set()
            release.wait(60)
        return None

    fake_slack.fail_when = hold_the_sixth
    s = sender(db, fake_slack, rates={"chat.postMessage": 20.0}, bursts={"chat.postMessage": 1}, max_in_flight=1)
    s.start()
    try:
        await until(sixth_arrived.is_set, what="the sixth post on its way to Slack")
        await s.stop()
        went = {p["text"] for p in posted(fake_slack)}
    finally:
        release.set()
    assert len(went) == 5
    rows = messages(db)
    in_flight = [r for r in rows if r.status == "pending" and r.claimed_until is not None]
    assert len(in_flight) <= 1  # a request cut off mid-flight keeps its claim: Slack may have it
    for row, p in zip(rows, payloads, strict=False):
        if row in in_flight:
            continue
        if p["text"] in went:
            assert row.status == "sent"
        else:
            assert (row.status, row.claimed_until, row.attempts) == ("pending", None, 0)
    await drain(sender(db, fake_slack))  # another sender (or a restart) picks up the rest at once
    texts = [p["text"] for p in posted(fake_slack)]
    assert len(texts) == len(set(texts)) and len(texts) + len([r for r in in_flight if r.status == "pending"]) >= 20
    assert len([r for r in messages(db) if r.status == "sent"]) == 20 - len(in_flight)


async def test_a_message_that_cannot_be_rendered_is_retried_and_the_rest_go(db, fake_slack):
    class Broken(Hook):
        def prepare(self, session, message, payload):
            raise ValueError("no such card")

        def sent(self, session, message, response):
            raise AssertionError("never sent")

    db.transact(outbox.enqueue, dedupe_key="bad", method="chat.postMessage", payload={}, purpose="broken")
    payloads = queue(db, 2)
    s = sender(db, fake_slack)
    s.hooks["broken"] = Broken()
    assert await s.drain_once() == 3
    assert sorted(posted(fake_slack), key=lambda p: p["channel"]) == payloads
    bad, *good = messages(db)
    assert (bad.status, bad.attempts, bad.last_error) == ("pending", 1, "ValueError: no such card")
    assert as_utc(bad.not_before) > utcnow() and bad.claimed_until is None
    assert [r.status for r in good] == ["sent", "sent"]


async def test_a_file_upload_goes_through_slack_sdks_three_steps(db, fake_slack):
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 100
    db.transact(outbox.enqueue, dedupe_key="chart", method="files.uploadV2", payload={
        "channel": "C0DIGEST01", "filename": "chart.png", "title": "Chart", "initial_comment": "Top areas",
        "content_b64": base64.b64encode(png).decode("ascii")})
    assert await sender(db, fake_slack).drain_once() == 1
    assert [c.method for c in fake_slack.calls] == ["files.getUploadURLExternal", "upload", "files.completeUploadExternal"]
    [upload] = fake_slack.calls_to("upload")
    assert fake_slack.uploads[upload.body["file_id"]] == png
    assert fake_slack.calls[-1].body["channel_id"] == "C0DIGEST01"
    assert [r.status for r in messages(db)] == ["sent"]


async def test_sends_the_database_could_not_record_are_written_by_the_next_batch(db, fake_slack):
    queue(db, 2)
    s = sender(db, fake_slack)
    real, down = db.run, {"now": True}

    async def flaky(fn, /, *args, **kwargs):
        if down["now"] and getattr(fn, "__name__", "") == "record":
            raise DatabaseUnavailable("connection refused")
        return await real(fn, *args, **kwargs)

    s.db = type("FlakyDatabase", (), {"run": staticmethod(flaky)})()
    with pytest.raises(DatabaseUnavailable):
        await s.drain_once()
    assert len(posted(fake_slack)) == 2
    assert all(r.status == "pending" and r.claimed_until is not None for r in messages(db))  # still claimed: not sent again
    down["now"] = False
    assert await s.drain_once() == 0
    assert [r.status for r in messages(db)] == ["sent", "sent"] and len(posted(fake_slack)) == 2


async def test_slack_answering_after_our_timeout_duplicates_at_most_the_calls_in_flight(db, fake_slack):
    """Slack posts the message, then answers after the client gave up (issue #14): the sender cannot
    tell whether it went (a DM's history is not readable with the bot's scopes), so it sends it again
    rather than lose it: at-least-once, and only for the calls in flight when Slack was slow."""
    import threading

    payloads = queue(db, 8)
    slow, lock, answer_late = [4], threading.Lock(), threading.Event()

    def posts_then_answers_late(method, body):
        with lock:
            late = slow[0] > 0
            slow[0] -= late
        if late:  # the fake posts it (it is kept in fake.calls) and answers after the client gave up
            answer_late.wait(60)
        return None

    fake_slack.fail_when = posts_then_answers_late
    client = AsyncWebClient(token=TOKEN, base_url=fake_slack.url + "/api/", timeout=LATE_TIMEOUT)
    s = OutboxSender(db, client, rates=FAST, channel_rates={}, max_in_flight=4)
    try:
        assert await s.drain_once() == 8
    finally:
        answer_late.set()
    timed_out = [r for r in messages(db) if r.status == "pending"]
    assert len(timed_out) == 4 and {r.last_error for r in timed_out} == {"TimeoutError"}

    async def all_sent():
        make_due(db)
        s.limiter("chat.postMessage").paused_until = 0  # the outage pause, on real time: skip it
        await s.drain_once()
        return all(r.status == "sent" for r in messages(db))

    await until(all_sent, what="every message sent", interval=0.1)
    wait_for(lambda: fake_slack.in_progress == 0, what="the late answers' posts")
    texts = [p["text"] for p in posted(fake_slack)]
    assert set(texts) == {p["text"] for p in payloads}  # nobody missed
    assert len(texts) - len(payloads) <= 4  # each call in flight when Slack was slow went twice at most
    assert [r.status for r in messages(db)] == ["sent"] * 8


async def test_the_next_batch_is_claimed_while_the_last_calls_of_the_one_before_finish(db, fake_slack):
    """No idle pace at a batch boundary (issue #15): once every message of a batch is in flight, the
    next batch is claimed and its calls take the free places, up to ``max_in_flight`` in all."""
    import threading

    queue(db, 9)
    now, most, lock = [0], [0], threading.Lock()

    four = threading.Event()

    def slow(method, body):
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
            if now[0] >= 4:
                four.set()
        # Held until a fourth call joins the first batch's three (the next batch's): then none is
        # held. A sender that waited for the batch to end holds each one for the 30 s and fails.
        four.wait(30)
        with lock:
            now[0] -= 1
        return None

    fake_slack.fail_when = slow
    # Batches of 3 (a burst of 1 and 2 more in batch_seconds), 4 calls in flight at most.
    s = sender(db, fake_slack, bursts={"chat.postMessage": 1}, batch_seconds=0.002, max_in_flight=4, idle_seconds=0.05)
    assert s.pacing.claim_limit("chat.postMessage", s.batch_seconds) == 3
    s.start()
    try:
        await until(lambda: all(r.status == "sent" for r in messages(db)), what="all nine sent", timeout=150, interval=0.05)
    finally:
        await s.stop()
        four.set()
    assert [r.status for r in messages(db)] == ["sent"] * 9
    assert most[0] == 4  # one batch alone never has more than 3 in flight
    assert len(posted(fake_slack)) == 9


async def test_a_channel_post_slack_answered_too_late_is_looked_up_not_sent_again(db, fake_slack):
    """Slack posts to a channel and answers after the client gave up (issue #14): the sender reads
    the channel's history (channels:history), finds its message and records it as sent."""
    import threading
    import time

    for i in range(4):
        db.transact(outbox.enqueue, dedupe_key=f"c{i}", method="chat.postMessage", payload={"channel": "C0TEAM0001", "text": f"#{i} & <ok>"})
    history, lock, answer_late = [], threading.Lock(), threading.Event()

    def slack(method, body):
        if method == "conversations.history":  # newest first, after ``oldest`` (exclusive)
            with lock:
                found = [m for m in reversed(history) if float(m["ts"]) > float(body["oldest"])]
            return 200, {"ok": True, "messages": found, "has_more": False}, {}
        if method == "chat.postMessage":
            with lock:  # posted, then answered once the client gave up
                history.append({"type": "message", "ts": f"{time.time():.6f}", "text": body["text"], "bot_id": "B0BOT0001"})
            answer_late.wait(60)
        return None

    fake_slack.fail_when = slack
    client = AsyncWebClient(token=TOKEN, base_url=fake_slack.url + "/api/", timeout=LATE_TIMEOUT)
    s = OutboxSender(db, client, rates=FAST, channel_rates={}, max_in_flight=4)
    try:
        assert await s.drain_once() == 4
    finally:
        answer_late.set()
    wait_for(lambda: fake_slack.in_progress == 0, what="the late answers")
    assert [m["text"] for m in history] == [f"#{i} & <ok>" for i in range(4)]  # in order, as Slack got them
    assert sorted(p["text"] for p in posted(fake_slack)) == [f"#{i} & <ok>" for i in range(4)]  # each once
    assert [r.status for r in messages(db)] == ["sent"] * 4
    assert len(fake_slack.calls_to("conversations.history")) == 4


def test_the_sender_hears_of_a_message_when_its_transaction_commits(db):
    # One hook in the database's transaction (issue #24) instead of a wake() after each call that
    # queues: called once the transaction that queued commits; not for one that queued nothing, nor
    # for one that rolled back (nothing was queued).
    heard = []
    db.after_queue.append(lambda: heard.append(db.transact(outbox.pending_count)))
    try:
        db.transact(outbox.enqueue, dedupe_key="wake-1", method="chat.postMessage", payload={"channel": "C1", "text": "a"})
        assert heard == [1]  # after the commit: the message is visible
        db.transact(outbox.pending_count)
        db.transact(outbox.enqueue, dedupe_key="wake-1", method="chat.postMessage", payload={"channel": "C1", "text": "a"})
        assert heard == [1]  # the same key again queued nothing

        def queue_then_fail(*, session):
            outbox.enqueue(session=session, dedupe_key="wake-2", method="chat.postMessage", payload={"channel": "C1", "text": "b"})
            raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError):
            db.transact(queue_then_fail)
        assert heard == [1]
        db.transact(outbox.enqueue_many, messages=[{"dedupe_key": "wake-3", "method": "chat.postMessage", "payload": {"channel": "C1", "text": "c"}}])
        assert heard == [1, 2]
    finally:
        db.after_queue.clear()


async def test_a_message_queued_in_a_database_thread_goes_without_waiting_for_the_idle_poll(db, fake_slack):
    # The sender idles for an hour between polls; the message queued in a worker thread (as every
    # listener and job queues, through Database.run) goes at once: the commit woke the sender.
    s = sender(db, fake_slack, idle_seconds=3600)
    db.after_queue.append(s.wake_from_any_thread)
    s.start()
    try:
        await until(lambda: s._running_loop is not None, what="the sender's loop to start")
        await db.run(outbox.enqueue, dedupe_key="woken", method="chat.postMessage", payload={"channel": "C0WOKEN01", "text": "now"})
        await until(lambda: any(c.body.get("channel") == "C0WOKEN01" for c in fake_slack.calls), what="the queued message at Slack")
    finally:
        db.after_queue.clear()
        await s.stop()


async def test_a_database_outage_is_said_once_while_it_lasts_and_once_when_it_ends(db, fake_slack, caplog):
    """The sender polls every ``idle_seconds``; a 10 s outage logged one warning per poll per
    process (CI's chaos run: some twenty lines), burying what else happened meanwhile."""
    queue(db, 1)
    s = sender(db, fake_slack, idle_seconds=0.01)
    real, down, polls = db.run, {"now": True}, {"n": 0}

    async def refusing(fn, /, *args, **kwargs):
        if down["now"]:
            polls["n"] += 1
            raise DatabaseUnavailable("connection refused")
        return await real(fn, *args, **kwargs)

    s.db = type("RefusingDatabase", (), {"run": staticmethod(refusing), "after_queue": []})()
    caplog.set_level("WARNING", logger="bot.runtime.outbox.sender")
    s.start()
    try:
        await until(lambda: polls["n"] >= 5, what="five polls refused")
        down["now"] = False
        await until(lambda: [r.status for r in messages(db)] == ["sent"], what="the message sent")
    finally:
        await s.stop()
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("outbox:")]
    assert said == ["outbox: database unavailable: connection refused; sending again when it answers",
                    "outbox: the database answers again; sending"], said
