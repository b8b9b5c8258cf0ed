"""Works through the outbox: a batch at a time, each Slack method paced to its rate limit and
paused as a whole when Slack answers 429 Retry-After.

Guarantees, as before: a message is marked sent only after Slack said ok. What the sender learnt is
written in one transaction per batch (every ``flush_seconds`` while the batch runs, and at its end),
so a crash loses nothing: unsent messages' claims run out (``claim_seconds``, the deployment's
OUTBOX_CLAIM_SECONDS, default ``outbox.CLAIM_SECONDS``) and they go again; what may go twice is
what was in flight, or sent but not yet written (at most ``flush_seconds`` of sending). A stop
(``stop()``) writes what it knows and gives back what it did not start, so only requests cut off
mid-flight are left to their claim.

What a failure does to a message, by whose fault it is:

- **Slack asks us to wait** (HTTP 429): the method is paused for ``Retry-After`` and the message
  goes back without the attempt counting.
- **Slack, or the way to it, is failing** (HTTP 5xx or 408, a refused or broken connection, a
  timeout, or one of Slack's own TRANSIENT error codes such as ``internal_error``): an outage, not
  the message's fault, so it never fails a message for good, however long it lasts. The method is
  paused, for ``_backoff(n)`` after the n-th failure in a row (1-2 s, doubling, at most 5 minutes),
  for every sender sharing the outbox (``not_before``); while it is, one request at a time finds
  out whether Slack is back, and what the batch had not started goes back unattempted. The first
  success ends it. The message that failed comes back after the pause or its own backoff
  (``_backoff(attempts)``), whichever is longer, so one message Slack keeps failing is tried every
  few minutes without holding the others back; ``pf_outbox_oldest_age_seconds`` shows it.
- **The message's own fault**: an error code in PERMANENT fails it at once; any other (an unknown
  error code, an exception while rendering it or from slack_sdk) is retried with backoff and fails
  it once it has been attempted MAX_ATTEMPTS times (outage attempts included).
"""

import asyncio
import base64
import json
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import Session

from bot.runtime.workspaces import NotInstalled, Workspaces
from storage import outbox
from storage.database import Database, DatabaseUnavailable
from storage.models import OutboxMessage, utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8  # for errors that are the message's own; an outage never fails a message
# Slack's words for "not you, us" (every method's common errors): an outage, retried however long it
# lasts. "ratelimited" with a 429 is handled by Retry-After; "rate_limited" is chat.postMessage's
# "posted too many messages"; "team_added_to_org": a workspace "intermittently unavailable" while it
# moves into an Enterprise Grid org.
TRANSIENT = {
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "ratelimited",
    "rate_limited",
    "team_added_to_org",
}
# Errors that will not get better by retrying: record them and move on.
PERMANENT = {
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "user_not_found",
    "user_disabled",
    "account_inactive",
    "cannot_dm_bot",
    "invalid_blocks",
    "invalid_arguments",
    "msg_too_long",
    "no_text",
    "invalid_auth",
    "not_authed",
    "missing_scope",
    "thread_not_found",
    "message_not_found",
}

# Not a Web API method: slack_sdk's files_upload_v2 (getUploadURLExternal, the upload, then
# completeUploadExternal). Its outbox payload carries the file as ``content_b64``.
UPLOAD = "files.uploadV2"

# Pacing. Slack limits calls "per API method per app per workspace" in per-minute windows
# (api.slack.com/apis/rate-limits; SLACK_FACTS.md §5 for each method's tier):
#   Tier 2 "20+ per minute", "occasional bursts"; Tier 3 "50+ per minute", "sporadic bursts are
#   welcome"; Tier 4 "100+ per minute", "generous burst behavior".
#   chat.postMessage (Special): "It will generally allow an app to post 1 message per second to a
#   specific channel. There are limits governing your app's relationship with the entire workspace
#   above that, limiting posting to several hundred messages per minute. Generous burst behavior is
#   also granted." (docs.slack.dev/reference/methods/chat.postMessage, quoted in slackapi/java-slack-sdk
#   MethodsRateLimitTier). And: "Posting messages: 1 per second. Short bursts >1 allowed. If you
#   attempt bursts, there is no guarantee that messages will be stored or displayed".
# So each method is paced workspace-wide at the floor of its tier, with a burst that keeps any minute
# under the floor plus a little; chat.postMessage at 2/s (120 a minute, well under "several hundred")
# and, per channel, at 1/s with bursts of 3. Override per workspace: OutboxSender(rates=..., bursts=...).
DEFAULT_RATES: dict[str, float] = {  # calls per second, workspace-wide
    "chat.postMessage": 2.0,  # Special: "several hundred messages per minute"
    "chat.update": 50 / 60,  # Tier 3
    "chat.postEphemeral": 100 / 60,  # Tier 4
    "conversations.open": 50 / 60,  # Tier 3
    "views.publish": 100 / 60,  # Tier 4
    "views.update": 100 / 60,  # Tier 4
    UPLOAD: 100 / 60,  # files.getUploadURLExternal + files.completeUploadExternal, Tier 4 each
}
DEFAULT_BURSTS: dict[str, int] = {  # calls back to back after a quiet spell
    "chat.postMessage": 20,  # "generous burst behavior": a minute never sees more than 140
    "chat.update": 10,  # "sporadic bursts are welcome"
    "chat.postEphemeral": 20,
    "views.publish": 20,
    "views.update": 20,
}
DEFAULT_RATE, DEFAULT_BURST = 20 / 60, 3  # any other method: Tier 2, the lowest the bot could meet
CHANNEL_RATES: dict[str, float] = {"chat.postMessage": 1.0}  # per channel, on top of the above
CHANNEL_BURST = 3  # "short bursts >1 allowed", kept short: a burst may not be displayed
RATELIMITED_PAUSE = 1.0  # a 429 without Retry-After: what slack_sdk's own retry handler waits


class OutboxHook(Protocol):
    """For messages whose payload is rendered when sent (``OutboxMessage.purpose``)."""

    def prepare(self, session: Session, message: OutboxMessage, payload: dict) -> tuple[str, dict] | None:
        """The (method, payload) to send now, or None to drop the message."""

    def sent(self, session: Session, message: OutboxMessage, response: dict) -> None:
        """Record what Slack answered (e.g. where a card was posted)."""


class MethodLimiter:
    """Paces one method: ``rate`` calls a second, ``burst`` of them back to back after a quiet
    spell, and none at all until a pause (429 Retry-After) is over. Turns are handed out in the
    order asked for (a virtual schedule, GCRA), so waiting callers never crowd one instant."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.interval = 1.0 / rate
        self.burst = burst
        self.clock = clock
        self.paused_until = -math.inf
        self._tat = -math.inf  # when the schedule is next free, were there no burst allowance

    def next_start(self) -> float:
        """The earliest time the next turn could start."""
        now = self.clock()
        return max(now, self._tat - (self.burst - 1) * self.interval, self.paused_until)

    def reserve(self, latest: float = math.inf) -> float | None:
        """Take the next turn and return when it starts, or None (nothing taken) if after ``latest``."""
        start = self.next_start()
        if start > latest:
            return None
        self._tat = max(self._tat, self.clock(), start) + self.interval
        return start

    def pause(self, seconds: float) -> None:
        """Slack said wait: nothing starts before ``seconds`` from now, then at the plain rate."""
        until = self.clock() + seconds
        self.paused_until = max(self.paused_until, until)
        self._tat = max(self._tat, self.paused_until + (self.burst - 1) * self.interval)

    def paused(self) -> bool:
        return self.clock() < self.paused_until

    def idle(self) -> bool:
        """Nothing reserved ahead and no pause: forgetting it changes nothing."""
        return self._tat <= self.clock() and not self.paused()


@dataclass
class _Results:
    """What the sender learnt and has not written yet; written in one transaction."""

    sent: list[int] = field(default_factory=list)
    sent_hooked: list[tuple[OutboxMessage, dict]] = field(default_factory=list)
    retry: list[tuple[int, float, str]] = field(default_factory=list)  # id, delay, error
    failed: list[tuple[int, str]] = field(default_factory=list)
    released: list[tuple[int, float, str | None]] = field(default_factory=list)  # id, delay, error
    deferred: dict[str, datetime] = field(default_factory=dict)  # method -> paused until (wall clock)

    def __bool__(self) -> bool:
        return any((self.sent, self.sent_hooked, self.retry, self.failed, self.released, self.deferred))

    def merge(self, other: "_Results") -> None:
        self.sent[:0] = other.sent
        self.sent_hooked[:0] = other.sent_hooked
        self.retry[:0] = other.retry
        self.failed[:0] = other.failed
        self.released[:0] = other.released
        for method, until in other.deferred.items():
            self.deferred[method] = max(until, self.deferred.get(method, until))


# Where a claimed message is, for a stop in the middle of a batch.
_CLAIMED, _IN_FLIGHT, _DONE = "claimed", "in_flight", "done"


@dataclass
class _Batch:
    latest: float  # no turn may start after this (clock time): the claim must outlast the sending
    semaphore: asyncio.Semaphore
    state: dict[int, str]
    attempted: int = 0


class OutboxSender:
    def __init__(
        self,
        db: Database,
        client: AsyncWebClient | Workspaces,
        *,
        idle_seconds: float = 2.0,
        rates: dict[str, float] | None = None,
        bursts: dict[str, int] | None = None,
        channel_rates: dict[str, float] | None = None,
        channel_burst: int = CHANNEL_BURST,
        max_in_flight: int = 8,
        batch_seconds: float = 5.0,
        flush_seconds: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        claim_seconds: float = outbox.CLAIM_SECONDS,
    ):
        """``rates`` (calls per second) and ``bursts`` per method, workspace-wide, over DEFAULT_RATES
        and DEFAULT_BURSTS (DEFAULT_RATE and DEFAULT_BURST for any other method); ``channel_rates``
        per method and channel (default CHANNEL_RATES; ``{}`` for none). At most ``max_in_flight``
        requests at once. A batch claims about ``batch_seconds`` of sending per method; a message
        whose turn would come later than twice that after the claim goes back to the outbox
        unattempted, so a claim (``claim_seconds``, of which the sending takes at most half)
        always outlasts the sending. ``clock`` and ``sleep`` are for tests."""
        self.db = db
        # Each message goes out with its workspace's token (several workspaces), or the one client's.
        self.workspaces = client if isinstance(client, Workspaces) else Workspaces(client=client)
        self.idle_seconds = idle_seconds
        # Told of every send: (method, Slack's error code or None when sent); /metrics counts them.
        self.observer: Callable[[str, str | None], None] | None = None
        self.rates = DEFAULT_RATES | (rates or {})
        self.bursts = DEFAULT_BURSTS | (bursts or {})
        self.channel_rates = CHANNEL_RATES if channel_rates is None else channel_rates
        self.channel_burst = channel_burst
        self.max_in_flight = max_in_flight
        self.batch_seconds = batch_seconds
        self.claim_seconds = claim_seconds
        self.hold_seconds = min(2 * batch_seconds, claim_seconds / 2)
        self.flush_seconds = flush_seconds
        self.hooks: dict[str, OutboxHook] = {}
        self._clock = clock
        self._sleep = sleep
        self._limiters: dict[str, MethodLimiter] = {}
        self._channel_limiters: dict[tuple[str, str], MethodLimiter] = {}
        self._outages: dict[str, int] = {}  # method -> failures in a row while Slack is failing it
        self._outage_gates: dict[str, asyncio.Lock] = {}
        self._results = _Results()
        self._flush_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def wake(self) -> None:
        """Something was queued: send it now rather than at the next poll."""
        self._wake.set()

    def limiter(self, method: str) -> MethodLimiter:
        """The method's workspace-wide pace (and pause)."""
        if method not in self._limiters:
            rate, burst = self.rates.get(method, DEFAULT_RATE), self.bursts.get(method, DEFAULT_BURST)
            self._limiters[method] = MethodLimiter(rate, burst, self._clock)
        return self._limiters[method]

    def _channel_limiter(self, method: str, channel: str | None) -> MethodLimiter | None:
        if not channel or method not in self.channel_rates:
            return None
        key = (method, channel)
        if key not in self._channel_limiters:
            if len(self._channel_limiters) > 10_000:  # forget channels that have been quiet
                self._channel_limiters = {k: v for k, v in self._channel_limiters.items() if not v.idle()}
            self._channel_limiters[key] = MethodLimiter(self.channel_rates[method], self.channel_burst, self._clock)
        return self._channel_limiters[key]

    def _claim_limit(self, method: str) -> int:
        rate, burst = self.rates.get(method, DEFAULT_RATE), self.bursts.get(method, DEFAULT_BURST)
        return min(500, burst + int(rate * self.batch_seconds))

    # ------------------------------------------------------------------ a batch

    async def drain_once(self) -> int:
        """Claim a batch of due messages and send it, paced. Returns how many were attempted
        (a Slack call made, or dropped as nothing to send); messages of a method Slack has paused
        are left in the outbox until the pause is over."""
        await self._flush()  # what an earlier batch could not write (database down)
        paused = {method for method, limiter in self._limiters.items() if limiter.paused()}
        batch = await self.db.run(
            outbox.claim_batch, limit_for=self._claim_limit, skip_methods=paused, claim_seconds=self.claim_seconds
        )
        if not batch:
            return 0
        run = _Batch(
            latest=self._clock() + self.hold_seconds,
            semaphore=asyncio.Semaphore(self.max_in_flight),
            state={m.id: _CLAIMED for m in batch},
        )
        stop = asyncio.Event()
        flusher = asyncio.create_task(self._flush_every(stop))
        try:
            async with asyncio.TaskGroup() as group:
                for chain in _chains(batch, self.hooks):
                    group.create_task(self._send_chain(chain, run))
        finally:
            stop.set()
            await flusher
            # Stopped (cancelled) before their turn: give them back now rather than at claim expiry.
            # Requests cut off in flight keep their claim: Slack may have them.
            not_started = [i for i, s in run.state.items() if s == _CLAIMED]
            self._results.released.extend((i, 0.0, None) for i in not_started)
            await self._flush()
        return run.attempted

    async def _send_chain(self, chain: list[OutboxMessage], run: _Batch) -> None:
        """Messages for one channel (or one hook), in order: one goes back, the rest follow it."""
        for n, message in enumerate(chain):
            back_in = await self._send(message, run)
            if back_in is not None:
                for later in chain[n + 1 :]:
                    self._results.released.append((later.id, back_in, None))
                    run.state[later.id] = _DONE
                return

    def _render(self, *, session: Session | None, message: OutboxMessage) -> tuple[str, dict] | None:
        payload = json.loads(message.payload)
        hook = self.hooks.get(message.purpose or "")
        return hook.prepare(session, message, payload) if hook else (message.method, payload)

    def _sent(self, *, session: Session, message: OutboxMessage, response: dict) -> None:
        outbox.mark_sent(session=session, message_id=message.id)
        hook = self.hooks.get(message.purpose or "")
        if hook:
            hook.sent(session, message, response)

    async def _send(self, message: OutboxMessage, run: _Batch) -> float | None:
        """Send one message and note the outcome. Returns None, or the delay after which it went
        back to the outbox unattempted (its method is paused, or its turn is too far off)."""
        hooked = (message.purpose or "") in self.hooks
        try:
            if hooked:  # rendered now, from the latest state
                rendered = await self.db.run(self._render, message=message)
            else:
                rendered = self._render(session=None, message=message)
        except DatabaseUnavailable:
            self._results.released.append((message.id, 1.0, None))
            run.state[message.id] = _DONE
            return 1.0
        except Exception as exc:  # a message that cannot be rendered must not stop the others
            log.exception("outbox message %s could not be rendered", message.id)
            self._broken(message, exc, run)
            return None
        if rendered is None:
            self._results.failed.append((message.id, "nothing to send"))
            run.state[message.id] = _DONE
            run.attempted += 1
            return None
        method, payload = rendered
        # The channel's turn first (its chain waits, not the others), then a place among the
        # requests in flight, then the method's turn.
        channel_limiter = self._channel_limiter(method, payload.get("channel"))
        if channel_limiter is not None and not await self._turn(channel_limiter, run.latest):
            return self._give_back(message, channel_limiter, run)
        async with self._outage_gate(method), run.semaphore:
            limiter = self.limiter(method)
            if not await self._turn(limiter, run.latest):
                return self._give_back(message, limiter, run)
            run.state[message.id] = _IN_FLIGHT
            run.attempted += 1
            try:
                response = await self._call(message, method, payload)
            except NotInstalled as exc:  # uninstalled, or never installed: no token will ever come
                run.state[message.id] = _DONE
                log.warning("outbox message %s failed for good: %s", message.id, exc)
                self._results.failed.append((message.id, "not_installed"))
                self._observe(method, "not_installed")
                return None
            except SlackApiError as exc:
                run.state[message.id] = _DONE
                status, error = _status_and_error(exc)
                self._observe(method, error)
                return self._failed(message, method, status, error, exc)
            except (OSError, asyncio.TimeoutError, aiohttp.ClientError) as exc:  # connection trouble: an outage
                run.state[message.id] = _DONE
                self._observe(method, type(exc).__name__)
                return self._outage(message, method, type(exc).__name__)
            except Exception as exc:  # e.g. arguments slack_sdk refuses: this message only
                run.state[message.id] = _DONE
                status = _upload_status(exc)
                if status is not None and _transient(status, ""):  # files_upload_v2's upload step got a 5xx
                    self._observe(method, f"http_{status}")
                    return self._outage(message, method, f"upload: http_{status}")
                log.exception("outbox message %s: %s failed", message.id, method)
                self._broken(message, exc, run)
                run.attempted -= 1  # counted above, when it went in flight
                return None
        run.state[message.id] = _DONE
        self._outages.pop(method, None)  # Slack answered: whatever outage there was is over
        self._observe(method, None)
        if hooked:
            # Written at once: the hook's next message (a card's update) renders from what this recorded.
            self._results.sent_hooked.append((message, response.data))
            try:
                await self._flush()
            except DatabaseUnavailable as exc:  # kept, and written with the next flush
                log.warning("outbox: could not record a send yet: %s", exc)
        else:
            self._results.sent.append(message.id)
        return None

    def _observe(self, method: str, error: str | None) -> None:
        if self.observer is not None:
            self.observer(method, error)

    async def _call(self, message: OutboxMessage, method: str, payload: dict):
        client = await self.workspaces.client(message.workspace)
        if method == UPLOAD:
            args = dict(payload)
            content = base64.b64decode(args.pop("content_b64"))
            return await client.files_upload_v2(content=content, **args)
        return await client.api_call(method, json=payload)

    def _broken(self, message: OutboxMessage, exc: Exception, run: _Batch) -> None:
        """Retried later like a transient error, and failed for good after MAX_ATTEMPTS."""
        error = f"{type(exc).__name__}: {exc}"
        if message.attempts >= MAX_ATTEMPTS:
            self._results.failed.append((message.id, error))
        else:
            self._results.retry.append((message.id, _backoff(message.attempts), error))
        run.state[message.id] = _DONE
        run.attempted += 1

    def _give_back(self, message: OutboxMessage, limiter: MethodLimiter, run: _Batch) -> float:
        """Its turn is too far off to keep it claimed: back to the outbox until then, unattempted."""
        back_in = max(0.0, limiter.next_start() - self._clock())
        self._results.released.append((message.id, back_in, None))
        run.state[message.id] = _DONE
        return back_in

    async def _turn(self, limiter: MethodLimiter, latest: float) -> bool:
        """Wait for the method's next turn. False (nothing taken) if it would start after ``latest``."""
        while True:
            start = limiter.reserve(latest)
            if start is None:
                return False
            delay = start - self._clock()
            if delay > 0:
                await self._sleep(delay)
                if self._clock() - start > limiter.interval:
                    # Woken a whole turn late (the loop was busy): this turn has passed. Going now
                    # would bunch with the turns after it, a burst the limit never allowed.
                    continue
            if not limiter.paused():
                return True
            # A 429 paused the method while we waited: take a turn after the pause.

    @asynccontextmanager
    async def _outage_gate(self, method: str):
        """While Slack is failing ``method``, one request of it at a time: each waits for the one
        before it to find out whether Slack is back (and, if not, for the longer pause it brought)."""
        if method not in self._outages:
            yield
            return
        async with self._outage_gates.setdefault(method, asyncio.Lock()):
            yield

    def _outage(self, message: OutboxMessage, method: str, error: str) -> float:
        """Slack, or the way to it, is failing: pause the method (longer after each failure in a row)
        for every sender, and send this one again after the pause or its own backoff. Never failed
        for good for this. Returns the delay (the rest of its channel's chain follows it)."""
        limiter = self.limiter(method)
        if not limiter.paused():  # a failure arriving during a pause was in flight before it: no escalation
            failures = self._outages[method] = self._outages.get(method, 0) + 1
            pause = _backoff(failures)
            limiter.pause(pause)
            until = utcnow() + timedelta(seconds=pause)
            self._results.deferred[method] = max(until, self._results.deferred.get(method, until))
            log.warning("outbox: %s failing (%s), %d in a row: paused for %.0f s", method, error, failures, pause)
        delay = max(limiter.paused_until - self._clock(), _backoff(message.attempts))
        self._results.retry.append((message.id, delay, error))
        return delay

    def _failed(
        self, message: OutboxMessage, method: str, status: int | None, error: str, exc: SlackApiError
    ) -> float | None:
        if status == 429:
            # Per method per workspace: pause the method, here and (through not_before) for every
            # sender sharing the outbox, and send this one again after the pause, not counted.
            retry_after = _retry_after(exc.response.headers)
            self.limiter(method).pause(retry_after)
            until = utcnow() + timedelta(seconds=retry_after)
            self._results.deferred[method] = max(until, self._results.deferred.get(method, until))
            self._results.released.append((message.id, retry_after, error))
            log.info("outbox: %s rate-limited, paused for %.0f s", method, retry_after)
            return retry_after
        if _transient(status, error):
            return self._outage(message, method, error)
        if error in PERMANENT or message.attempts >= MAX_ATTEMPTS:
            log.warning("outbox message %s failed for good: %s", message.id, error)
            self._results.failed.append((message.id, error))
            return None
        self._results.retry.append((message.id, _backoff(message.attempts), error))
        return None

    # ------------------------------------------------------------------ writing what happened

    def _record(self, *, session: Session, results: _Results) -> None:
        outbox.mark_sent_many(session=session, message_ids=results.sent)
        for message, response in results.sent_hooked:
            self._sent(session=session, message=message, response=response)
        for message_id, delay, error in results.retry:
            outbox.mark_retry(session=session, message_id=message_id, delay_seconds=delay, error=error)
        for message_id, error in results.failed:
            outbox.mark_failed(session=session, message_id=message_id, error=error)
        groups: dict[tuple[float, str | None], list[int]] = {}
        for message_id, delay, error in results.released:
            groups.setdefault((round(delay, 1), error), []).append(message_id)
        for (delay, error), ids in groups.items():
            outbox.release(session=session, message_ids=ids, delay_seconds=delay, error=error)
        for method, until in results.deferred.items():
            outbox.defer_method(session=session, method=method, until=until)

    async def _flush(self) -> None:
        """Write what has been learnt, in one transaction. If the database is down it is kept
        for the next try (DatabaseUnavailable is raised)."""
        async with self._flush_lock:
            results, self._results = self._results, _Results()
            if not results:
                return
            try:
                await self.db.run(self._record, results=results)
            except BaseException:
                self._results.merge(results)
                raise

    async def _flush_every(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await _wait(stop, self.flush_seconds)
            if stop.is_set():
                return
            try:
                await self._flush()
            except DatabaseUnavailable as exc:
                log.warning("outbox: could not record sends yet: %s", exc)

    # ------------------------------------------------------------------ running

    async def run_forever(self) -> None:
        while True:
            try:
                sent = await self.drain_once()
            except DatabaseUnavailable as exc:
                log.warning("outbox: database unavailable: %s", exc)
                sent = 0
            except Exception:  # a bug in one batch must not stop the sending for good
                log.exception("outbox: a batch failed")
                sent = 0
            if sent:
                continue
            self._wake.clear()
            await _wait(self._wake, self.idle_seconds)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run_forever(), name="outbox-sender")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Until ``event`` is set or ``seconds`` pass. Not ``asyncio.wait_for``: on Python 3.11 it can
    swallow a cancel that lands as its timeout fires, and ``stop()`` then waits for ever."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        pass


def _chains(batch: list[OutboxMessage], hooks: dict[str, OutboxHook]) -> list[list[OutboxMessage]]:
    """Split a batch (oldest first) into what must go in order: one channel's messages, or one
    hook's (a card's post before its updates). Different chains go concurrently."""
    chains: dict[str, list[OutboxMessage]] = {}
    for message in batch:
        if (message.purpose or "") in hooks:
            key = f"hook:{message.purpose}"
        else:
            channel = json.loads(message.payload).get("channel")
            key = f"channel:{channel}" if channel else f"message:{message.id}"
        chains.setdefault(key, []).append(message)
    return list(chains.values())


def _status_and_error(exc: SlackApiError) -> tuple[int | None, str]:
    """The HTTP status and Slack's error code of a failed call. slack_sdk's response holds a dict
    for JSON, a str for a text/plain body (a proxy's "upstream connect error"), {} for HTML; for a
    body that says JSON and is not, it is aiohttp's own response (``status``, no ``data``)."""
    response = exc.response
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    data = getattr(response, "data", None)
    error = data.get("error") if isinstance(data, dict) else None
    return status, str(error or (f"http_{status}" if status and status != 200 else "unreadable_response"))


def _transient(status: int | None, error: str) -> bool:
    """Slack, or the way to it, failing rather than the message: an outage."""
    return error in TRANSIENT or (status is not None and (status >= 500 or status == 408))


_UPLOAD_FAILED = re.compile(r"^Failed to upload a file \(status: (\d{3}),")  # slack_sdk's files_upload_v2


def _upload_status(exc: Exception) -> int | None:
    """The HTTP status when files_upload_v2's upload step (not a Web API call) got an error answer."""
    match = _UPLOAD_FAILED.match(str(exc)) if isinstance(exc, SlackRequestError) else None
    return int(match.group(1)) if match else None


def _retry_after(headers) -> float:
    value = headers.get("Retry-After", headers.get("retry-after"))
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return RATELIMITED_PAUSE


def _backoff(attempt: int) -> float:
    return min(300.0, 2.0**attempt) * (0.5 + random.random() / 2)
