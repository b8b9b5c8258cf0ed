"""Slack failing for a while (5xx, its own transient errors, 429, a refused connection), then
recovering: the outbox loses nothing, backs off while it lasts, and drains afterwards.

The real OutboxSender against the fake Slack over HTTP, on a simulated clock that the test moves:
the sender's monotonic clock and sleep, and the outbox's wall clock (``not_before``, claims), move
together, so ten minutes of outage take a few seconds.
"""

import asyncio
import contextlib
import heapq
import itertools
import socket
from datetime import timedelta

import pytest
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import select

import bot.runtime.outbox.sender
import storage.outbox
from bot.runtime.outbox import MAX_ATTEMPTS, OutboxSender
from storage import outbox
from storage.database import Database
from storage.models import OutboxMessage, utcnow
from tests.fake_slack import TOKEN
from tests.waiting import until

OUTAGE = 600.0  # ten minutes: well past what MAX_ATTEMPTS backed-off attempts last (2 to 4 minutes)
MESSAGES = 30
STEP = 2.0  # how often the simulated sender looks at the outbox when it has nothing to do
LONGEST_PAUSE = 300.0  # bot.runtime.outbox.pacing.backoff never waits longer than this

FAILURES = {
    "http_503": (503, {"ok": False, "error": "service_unavailable"}, {}),
    "http_502_html": (502, "<html><body><h1>502 Bad Gateway</h1></body></html>", {"Content-Type": "text/html"}),
    "http_503_text": (503, "upstream connect error or disconnect/reset before headers", {"Content-Type": "text/plain"}),
    "internal_error": (200, {"ok": False, "error": "internal_error"}, {}),
    "fatal_error": (200, {"ok": False, "error": "fatal_error"}, {}),
}


class SimClock:
    """Monotonic seconds for the sender, and a wall clock for the outbox, moving together: only
    when the sender sleeps or the test moves them. Sleepers wake one at a time, earliest first, each
    moving the clock to its own wake-up time (not by the sum of everyone's sleeps), and only once no
    Slack call is in flight (``calling``): on the simulated clock Slack answers at once, however long
    the real answer took on a loaded machine (a clock that moved on while an answer was on its way
    let a 502 arrive "5.2 s" after its call, and the sender's backoff looked wrong)."""

    def __init__(self):
        self.start = self.now = 1000.0
        self.wall_start = utcnow()
        self._sleepers: list[tuple[float, int, asyncio.Future]] = []
        self._count = itertools.count()
        self._waker: asyncio.Task | None = None
        self.in_flight = 0

    @contextlib.asynccontextmanager
    async def calling(self):
        """Around a Slack call: the clock stands still until its answer is in."""
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    def __call__(self) -> float:
        return self.now

    def wall(self):
        return self.wall_start + timedelta(seconds=self.now - self.start)

    async def sleep(self, seconds: float) -> None:
        woken = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), next(self._count), woken))
        if self._waker is None or self._waker.done():
            self._waker = asyncio.create_task(self._wake())
        await woken

    async def _wake(self) -> None:
        while self._sleepers:
            await asyncio.sleep(0.002)  # what the last one woken does next, up to its next await
            await until(lambda: self.in_flight == 0, what="Slack's answers to the calls in flight", interval=0.002)
            at, _, woken = heapq.heappop(self._sleepers)
            self.now = max(self.now, at)
            if not woken.done():  # not cancelled meanwhile
                woken.set_result(None)


@pytest.fixture
def clock(monkeypatch) -> SimClock:
    clock = SimClock()
    monkeypatch.setattr(storage.outbox, "utcnow", clock.wall)
    monkeypatch.setattr(bot.runtime.outbox.sender, "utcnow", clock.wall)
    return clock


def queue(db: Database, count: int = MESSAGES) -> list[str]:
    texts = [f"FB-{i} is filed" for i in range(count)]
    for i, text in enumerate(texts):
        db.transact(outbox.enqueue, dedupe_key=f"dm-{i}", method="chat.postMessage",
                    payload={"channel": f"U{i:08d}", "text": text})
    return texts


def statuses(db: Database) -> dict[str, int]:
    with db.session() as s:
        rows = s.exec(select(OutboxMessage)).all()
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    return counts


def make_sender(db: Database, url: str, clock: SimClock) -> tuple[OutboxSender, AsyncWebClient, list[float]]:
    """The sender with its default pacing, its client, and the clock time of every Slack call it starts."""
    # slack_sdk's default retry handler (one retry of a failed connection), without its real sleep.
    client = AsyncWebClient(token=TOKEN, base_url=url + "/api/", retry_handlers=[
        AsyncConnectionErrorRetryHandler(interval_calculator=FixedValueRetryIntervalCalculator(0.0))])
    # The fake's listen backlog is 5: more requests at once would wait on SYN retries.
    s = OutboxSender(db, client, max_in_flight=4, clock=clock, sleep=clock.sleep)
    started: list[float] = []
    real = client.api_call

    async def api_call(method, **kwargs):
        started.append(clock())
        async with clock.calling():
            return await real(method, **kwargs)

    client.api_call = api_call
    return s, client, started


async def run_until(s: OutboxSender, clock: SimClock, until: float, done=lambda: False) -> None:
    """What run_forever does, on the simulated clock: a batch, and a short wait when idle."""
    while clock.now < until and not done():
        await s.drain_once()
        clock.now += STEP


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens there once closed


def rounds(started: list[float], within: float = 0.0) -> list[float]:
    """When each round of calls began: calls less than ``within`` seconds after the previous one
    belong to its round (a paced batch's requests sent before the first answer came back)."""
    begun: list[float] = []
    last = None
    for t in sorted(started):
        if last is None or t - last > within:
            begun.append(t)
        last = t
    return begun


def probe_gaps(started: list[float], within: float = 0.0) -> list[float]:
    """The time between successive rounds of calls."""
    begun = rounds(started, within)
    return [b - a for a, b in zip(begun, begun[1:], strict=False)]


async def outage_then_recovery(db, fake, clock, *, break_slack, mend_slack) -> tuple[OutboxSender, list[float], int]:
    texts = queue(db)
    s, client, started = make_sender(db, fake.url, clock)
    break_slack(client)
    outage_start = clock.now
    await run_until(s, clock, outage_start + OUTAGE)
    during = len(started)
    assert statuses(db) == {"pending": MESSAGES}, "a message was given up on during the outage"

    mend_slack(client)
    recovered = clock.now
    calls_before = len(fake.calls)
    await run_until(s, clock, recovered + LONGEST_PAUSE + 2 * STEP, done=lambda: statuses(db).get("pending", 0) == 0)
    assert statuses(db) == {"sent": MESSAGES}, "the queue did not drain after Slack came back"
    delivered = [c.body["text"] for c in fake.calls[calls_before:] if c.method == "chat.postMessage"]
    assert sorted(delivered) == sorted(texts), "each message must be delivered exactly once"
    return s, started, during


@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
async def test_a_slack_outage_loses_nothing_backs_off_and_drains_after(db, fake_slack, clock, failure):
    def down(client):
        fake_slack.fail_when = lambda method, body: failure

    def up(client):
        fake_slack.fail_when = None

    s, started, during = await outage_then_recovery(db, fake_slack, clock, break_slack=down, mend_slack=up)
    # Backed off: a probe now and then, not every message again and again. Exponential pauses up to
    # five minutes fit about a dozen probes into ten minutes (plus the first batch's requests in flight).
    assert during <= 20, f"{during} calls during the outage"
    gaps = probe_gaps(started[:during])
    assert gaps[0] < 5 and max(gaps) >= 100, f"the pauses did not grow from seconds to minutes: {gaps}"


async def test_connection_refused_for_a_while_loses_nothing(db, fake_slack, clock):
    def down(client):
        client.base_url = closed_port() + "/api/"

    def up(client):
        client.base_url = fake_slack.url + "/api/"

    s, started, during = await outage_then_recovery(db, fake_slack, clock, break_slack=down, mend_slack=up)
    assert during <= 20, f"{during} calls during the outage"
    gaps = probe_gaps(started[:during])
    assert gaps[0] < 5 and max(gaps) >= 100, f"the pauses did not grow from seconds to minutes: {gaps}"


async def test_429_for_a_while_loses_nothing_and_waits_as_told(db, fake_slack, clock):
    def down(client):
        fake_slack.fail_when = lambda method, body: (429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "30"})

    def up(client):
        fake_slack.fail_when = None

    s, started, during = await outage_then_recovery(db, fake_slack, clock, break_slack=down, mend_slack=up)
    # Paced at 2 a second, a round's few requests go before the first 429 is back; then nothing for 30 s.
    begun = rounds(started[:during], within=5.0)
    assert all(gap >= 30 for gap in probe_gaps(started[:during], within=5.0)), "went again before Retry-After"
    assert len(begun) <= OUTAGE / 30 + 1 and during <= len(begun) * s.max_in_flight


async def test_one_message_slack_keeps_failing_does_not_hold_back_the_others(db, fake_slack, clock):
    """A message Slack answers 500 every time (a payload that trips Slack up) is retried with its own
    growing backoff, and is never failed for a transient error; the rest of the queue flows."""
    texts = queue(db, 10)
    fake_slack.fail_when = lambda method, body: (500, {"ok": False, "error": "internal_error"}, {}) if body.get("text") == texts[0] else None
    s, _, started = make_sender(db, fake_slack.url, clock)
    start = clock.now
    await run_until(s, clock, start + 60, done=lambda: statuses(db).get("pending", 0) <= 1)
    assert clock.now - start < 30, "the others waited on the failing one"
    assert statuses(db) == {"sent": 9, "pending": 1}
    await run_until(s, clock, start + 3 * 3600)
    poisoned = [c for c in fake_slack.calls if c.body.get("text") == texts[0]]
    assert statuses(db) == {"sent": 9, "pending": 1}  # three hours on, still kept
    assert MAX_ATTEMPTS < len(poisoned) <= 3 * 3600 / (LONGEST_PAUSE / 2) + 12  # tried at most every few minutes
    fake_slack.fail_when = None
    await run_until(s, clock, clock.now + LONGEST_PAUSE + 2 * STEP, done=lambda: statuses(db).get("pending", 0) == 0)
    assert statuses(db) == {"sent": 10}
