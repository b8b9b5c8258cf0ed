"""The outbox sender: claims a batch (claiming.py), paces each call (pacing.py), makes it and reads
its failure (sending.py), and records the outcome before the next call may take its place
(recording.py).

Guarantees: a message is marked sent only after Slack said ok, and each outcome is written before
its place among the ``max_in_flight`` requests in flight is given up, so a crash loses nothing and
what may go twice is at most the calls in flight at that moment (their claims run out and they go
again). A stop (``stop()``) writes what it knows and gives back what it did not start, so only
requests cut off mid-flight are left to their claims. ``run_forever`` claims the next batch as soon
as every message of the one before is in flight, so the pace does not idle at batch boundaries.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Protocol

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import Session

from bot.runtime.outbox import claiming
from bot.runtime.outbox.claiming import DONE, IN_FLIGHT, Batch
from bot.runtime.outbox.pacing import CHANNEL_BURST, MethodLimiter, Pacing, backoff
from bot.runtime.outbox.recording import Recorder
from bot.runtime.outbox.sending import MAX_ATTEMPTS, Failure, call, classify, find_post
from bot.runtime.workspaces import Workspaces
from storage import outbox
from storage.database import Database, DatabaseUnavailable
from storage.models import OutboxMessage, utcnow

log = logging.getLogger(__name__)


class OutboxHook(Protocol):
    """For messages whose payload is rendered when sent (``OutboxMessage.purpose``). The hooks are
    registered in one place, the wiring table (``handlers.outbox_hooks``); a hook subclasses ``Hook``
    for the defaults."""

    discreet: bool
    """Whether it goes says something about a person: paced before ``prepare``, its row erased
    whether it went, was dropped or failed for good; chained by channel."""
    by_channel: bool
    """Its messages do not depend on each other (no post before its updates), so they are chained
    by channel like unhooked ones, not one after another."""

    async def ready(self, db: Database, message: OutboxMessage) -> None:
        """Slow work done before ``prepare``, outside its transaction (the triage card's duplicate
        scoring); DatabaseUnavailable gives the message back."""

    def prepare(self, session: Session, message: OutboxMessage, payload: dict) -> tuple[str, dict] | None:
        """The (method, payload) to send now, or None to drop the message."""

    def sent(self, session: Session, message: OutboxMessage, response: dict) -> None:
        """Record what Slack answered (e.g. where a card was posted)."""


class Hook:
    """An ``OutboxHook``'s defaults: not discreet, its messages one after another, nothing to do
    before ``prepare``, nothing to record when sent."""

    discreet = False
    by_channel = False

    async def ready(self, db: Database, message: OutboxMessage) -> None:
        return None

    def sent(self, session: Session, message: OutboxMessage, response: dict) -> None:
        return None


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
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        claim_seconds: float = outbox.CLAIM_SECONDS,
    ):
        """``rates`` (calls per second) and ``bursts`` per method, workspace-wide, over pacing's
        DEFAULT_RATES and DEFAULT_BURSTS; ``channel_rates`` per method and channel (default
        CHANNEL_RATES; ``{}`` for none). At most ``max_in_flight`` requests at once. A batch claims
        about ``batch_seconds`` of sending per method, each message for ``claim_seconds``
        (claiming.py). ``clock`` and ``sleep`` are for tests."""
        self.db = db
        # Each message goes out with its workspace's token (several workspaces), or the one client's.
        self.workspaces = client if isinstance(client, Workspaces) else Workspaces(client=client)
        self.idle_seconds = idle_seconds
        # Told of every send: (method, Slack's error code or None when sent); /metrics counts them.
        self.observer: Callable[[str, str | None], None] | None = None
        # Purposes whose sends are neither counted for the observer nor logged with the message's id
        # (survey DMs and reminders: their number over time would say who had not answered).
        self.quiet: set[str] = set()
        self.pacing = Pacing(rates=rates, bursts=bursts, channel_rates=channel_rates,
                             channel_burst=channel_burst, clock=clock, sleep=sleep)
        self.max_in_flight = max_in_flight
        self.batch_seconds = batch_seconds
        self.claim_seconds = claim_seconds
        self.hold_seconds = claiming.hold_seconds(batch_seconds, claim_seconds)
        self.hooks: dict[str, OutboxHook] = {}
        self.recorder = Recorder(self._sent)
        self._clock = clock
        self._wake = asyncio.Event()
        self._running_loop: asyncio.AbstractEventLoop | None = None  # set by run_forever
        self._task: asyncio.Task | None = None
        self._in_flight: asyncio.Semaphore | None = None
        self._unavailable = False  # said once while the database cannot be reached, not per poll

    @property
    def rates(self) -> dict[str, float]:
        return self.pacing.rates

    @property
    def bursts(self) -> dict[str, int]:
        return self.pacing.bursts

    @property
    def channel_rates(self) -> dict[str, float]:
        return self.pacing.channel_rates

    def limiter(self, method: str) -> MethodLimiter:
        """The method's workspace-wide pace (and pause)."""
        return self.pacing.limiter(method)

    def wake_from_any_thread(self) -> None:
        """``wake`` from a database worker thread (``Database.after_queue``: a transaction that
        queued a message committed); a plain ``wake`` while the sender's loop is not running."""
        loop = self._running_loop
        if loop is None or loop.is_closed():
            self._wake.set()
            return
        try:
            if asyncio.get_running_loop() is loop:
                self._wake.set()
                return
        except RuntimeError:  # no loop in this thread: a database worker thread
            pass
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing to wake
            loop.call_soon_threadsafe(self._wake.set)

    def wake(self) -> None:
        """Something was queued: send it now rather than at the next poll."""
        self._wake.set()

    # ------------------------------------------------------------------ a batch

    async def drain_once(self, started: asyncio.Event | None = None) -> int:
        """Claim a batch of due messages and send it, paced. Returns how many were attempted
        (a Slack call made, or dropped as nothing to send); messages of a method Slack has paused
        are left in the outbox until the pause is over. Raises DatabaseUnavailable when what it
        learnt cannot be written (kept, and written by a later batch). ``started`` is set once
        every message of the batch is in flight or done (run_forever then claims the next batch
        while the last calls finish)."""
        await self.recorder.commit(self.db)  # what an earlier batch could not write (database down)
        batch = await claiming.claim(
            self.db,
            limit_for=lambda method: self.pacing.claim_limit(method, self.batch_seconds),
            skip_methods=self.pacing.paused_methods(),
            claim_seconds=self.claim_seconds,
        )
        if not batch:
            return 0
        if self._in_flight is None:  # one for every batch: two overlap while the first one's last calls finish
            self._in_flight = asyncio.Semaphore(self.max_in_flight)
        run = Batch(batch, latest=self._clock() + self.hold_seconds, semaphore=self._in_flight, all_started=started)
        try:
            async with asyncio.TaskGroup() as group:
                for chain in claiming.chains(run, self.hooks):
                    group.create_task(self._send_chain(chain, run))
        finally:
            # Stopped (cancelled) before their turn: give them back now rather than at claim expiry.
            # Requests cut off in flight keep their claim: Slack may have them.
            self.recorder.pending.released.extend((i, 0.0, None) for i in run.not_started())
            await self.recorder.commit(self.db)
        return run.attempted

    async def _send_chain(self, chain: list[OutboxMessage], run: Batch) -> None:
        """Messages for one channel (or one hook), in order: one goes back, the rest follow it."""
        for n, message in enumerate(chain):
            back_in = await self._send(message, run)
            if back_in is not None:
                for later in chain[n + 1 :]:
                    self.recorder.pending.released.append((later.id, back_in, None))
                    run.mark(later.id, DONE)
                return

    def _render(self, *, session: Session, message: OutboxMessage, payload: dict) -> tuple[str, dict] | None:
        hook = self.hooks.get(message.purpose or "")
        return hook.prepare(session, message, payload) if hook else (message.method, payload)

    def _sent(self, *, session: Session, message: OutboxMessage, response: dict) -> None:
        outbox.mark_sent(session=session, message_id=message.id)
        hook = self.hooks.get(message.purpose or "")
        if hook:
            hook.sent(session, message, response)

    async def _send(self, message: OutboxMessage, run: Batch) -> float | None:
        """Send one message and record the outcome. Returns None, or the delay after which it went
        back to the outbox unattempted (its method is paused, or its turn is too far off)."""
        results = self.recorder.pending
        if run.unrecorded:  # sends cannot be recorded: start no more than are already unrecorded
            return self._give_back(message, 0.0, run)
        hook = self.hooks.get(message.purpose or "")
        discreet = hook is not None and hook.discreet
        if discreet:  # paced as stored, asked after its turn: a drop takes the same turns as a send
            method, payload = message.method, run.payloads[message.id]
        else:
            rendered = await self._prepare(message, run)
            if not isinstance(rendered, tuple):
                return rendered
            method, payload = rendered
        # The channel's turn first (its chain waits, not the others), then a place among the
        # requests in flight, then the method's turn.
        channel_limiter = self.pacing.channel_limiter(method, payload.get("channel"))
        if channel_limiter is not None and not await self.pacing.turn(channel_limiter, run.latest):
            return self._give_back(message, self._wait_for(channel_limiter), run)
        async with self.pacing.outage_gate(method), run.semaphore:
            limiter = self.pacing.limiter(method)
            if not await self.pacing.turn(limiter, run.latest):
                return self._give_back(message, self._wait_for(limiter), run)
            if discreet:
                rendered = await self._prepare(message, run)
                if not isinstance(rendered, tuple):
                    return rendered
                method, payload = rendered
            run.mark(message.id, IN_FLIGHT)
            run.attempted += 1
            since, response, failure = time.time() - 1.0, None, None  # a second's leeway for Slack's clock
            try:
                client = await self.workspaces.client(message.workspace)
                response = (await call(client, method, payload)).data
                self.pacing.answered(method)
            except Exception as exc:
                failure = classify(exc)
                if failure.maybe_sent and method == "chat.postMessage":
                    response = await find_post(client, payload, since)
                    if response is not None:  # Slack posted it and answered too late: not sent again
                        log.info("outbox %s: %s, but Slack has it", self._name(message), failure.error)
            if response is None:
                assert failure is not None  # no answer only when the call raised (and Slack has no such post)
                back_in = self._failed(message, method, failure, run)
            else:
                back_in = None
                self._observe(message, method, None)
                if discreet:
                    results.erased.append(message.id)
                elif message.purpose in self.hooks:
                    results.sent_hooked.append((message, response))
                else:
                    results.sent.append(message.id)
            run.mark(message.id, DONE)
            # Recorded before this place in flight is given up: what Slack has and the outbox does
            # not know of is never more than the calls in flight. A hook's next message (a card's
            # update) renders from what this recorded.
            try:
                await self.recorder.commit(self.db)
            except DatabaseUnavailable as exc:  # kept, and written with a later commit
                run.unrecorded = True
                log.warning("outbox: could not record a send yet: %s", exc)
        return back_in

    async def _prepare(self, message: OutboxMessage, run: Batch) -> tuple[str, dict] | float | None:
        """The (method, payload) to send; else what ``_send`` returns: the delay it went back for
        (database down), or None (dropped by its hook, or not renderable: retried as a failure)."""
        hook = self.hooks.get(message.purpose or "")
        hooked = hook is not None
        try:
            if hook is not None:  # slow work its hook does outside the rendering's transaction
                await hook.ready(self.db, message)
            if hooked:  # rendered now, from the latest state
                rendered = await self.db.run(self._render, message=message, payload=run.payloads[message.id])
            else:  # sent as stored
                rendered = (message.method, run.payloads[message.id])
        except DatabaseUnavailable:
            return self._give_back(message, 1.0, run)
        except Exception as exc:  # a message that cannot be rendered must not stop the others
            log.exception("outbox %s could not be rendered", self._name(message))
            self._broken(message, f"{type(exc).__name__}: {exc}", run)
            return None
        if rendered is None:
            self._done(message, "nothing to send")
            run.mark(message.id, DONE)
            run.attempted += 1
            return None
        return rendered

    def _done(self, message: OutboxMessage, error: str) -> None:
        """Not sent, for good: failed with ``error``, or erased if its hook is discreet."""
        hook = self.hooks.get(message.purpose or "")
        if hook is not None and hook.discreet:
            self.recorder.pending.erased.append(message.id)
        else:
            self.recorder.pending.failed.append((message.id, error))

    def _name(self, message: OutboxMessage) -> str:
        """How the log names a message: by id, or for a quiet purpose only by its purpose."""
        return f"a {message.purpose} message" if message.purpose in self.quiet else f"message {message.id}"

    def _observe(self, message: OutboxMessage, method: str, error: str | None) -> None:
        if self.observer is not None and message.purpose not in self.quiet:
            self.observer(method, error)

    def _wait_for(self, limiter: MethodLimiter) -> float:
        return max(0.0, limiter.next_start() - self._clock())

    def _give_back(self, message: OutboxMessage, back_in: float, run: Batch) -> float:
        """Back to the outbox, due again in ``back_in`` seconds, unattempted."""
        self.recorder.pending.released.append((message.id, back_in, None))
        run.mark(message.id, DONE)
        return back_in

    def _broken(self, message: OutboxMessage, error: str, run: Batch) -> None:
        """Retried later like a transient error, and failed for good after MAX_ATTEMPTS."""
        if message.attempts >= MAX_ATTEMPTS:
            self._done(message, error)
        else:
            self.recorder.pending.retry.append((message.id, backoff(message.attempts), error))
        run.mark(message.id, DONE)
        run.attempted += 1

    def _failed(self, message: OutboxMessage, method: str, failure: Failure, run: Batch) -> float | None:
        """Note what ``failure`` means for the message (sending.py's docstring). Returns the delay
        after which it comes back when the rest of its chain should wait for it, else None."""
        results = self.recorder.pending
        if failure.metric is not None:
            self._observe(message, method, failure.metric)
        if failure.kind == "ratelimited":
            # Per method per workspace: pause the method, here and (through not_before) for every
            # sender sharing the outbox, and send this one again after the pause, not counted.
            self.pacing.limiter(method).pause(failure.retry_after)
            results.defer(method, utcnow() + timedelta(seconds=failure.retry_after))
            results.released.append((message.id, failure.retry_after, failure.error))
            log.info("outbox: %s rate-limited, paused for %.0f s", method, failure.retry_after)
            return failure.retry_after
        if failure.kind == "outage":
            return self._outage(message, method, failure.error)
        if failure.kind == "permanent":  # also not_installed: no token will ever come
            log.warning("outbox %s failed for good: %s", self._name(message), failure.error)
            self._done(message, failure.error)
            return None
        if failure.metric is None:  # not Slack's answer: e.g. arguments slack_sdk refuses
            log.error("outbox %s: %s failed", self._name(message), method, exc_info=failure.exc)
        elif message.attempts >= MAX_ATTEMPTS:
            log.warning("outbox %s failed for good: %s", self._name(message), failure.error)
        self._broken(message, failure.error, run)
        run.attempted -= 1  # counted when it went in flight
        return None

    def _outage(self, message: OutboxMessage, method: str, error: str) -> float:
        """Slack, or the way to it, is failing: pause the method (longer after each failure in a row)
        for every sender, and send this one again after the pause or its own backoff. Never failed
        for good for this. Returns the delay (the rest of its channel's chain follows it)."""
        pause = self.pacing.failing(method)
        if pause is not None:
            self.recorder.pending.defer(method, utcnow() + timedelta(seconds=pause))
            log.warning("outbox: %s failing (%s), %d in a row: paused for %.0f s",
                        method, error, self.pacing.failures(method), pause)
        delay = max(self.pacing.limiter(method).paused_until - self._clock(), backoff(message.attempts))
        self.recorder.pending.retry.append((message.id, delay, error))
        return delay

    # ------------------------------------------------------------------ running

    async def run_forever(self) -> None:
        async with self._one_session():
            await self._loop()

    @contextlib.asynccontextmanager
    async def _one_session(self):
        """Every call through one aiohttp session (keep-alive, one connection pool), unless the
        client already has one (``serve`` gives it the app's). Without it slack_sdk makes a session,
        and a connection, per call: a large share of the sender's time at 100 calls a second."""
        client = self.workspaces.single
        owner = client if client is not None else self.workspaces
        if owner.session is not None:
            yield
            return
        timeout = aiohttp.ClientTimeout(total=client.timeout if client is not None else 30)
        owner.session = session = aiohttp.ClientSession(timeout=timeout)
        try:
            yield
        finally:
            owner.session = None
            await session.close()

    async def _loop(self) -> None:
        """A batch at a time, except that the next is claimed as soon as every message of the one
        before is in flight or done: its last calls' round trips and records, and the next claim,
        would otherwise leave the pace idle at every batch boundary."""
        self._running_loop = asyncio.get_running_loop()
        tail: asyncio.Task | None = None  # the batch before, finishing its last calls
        batch: asyncio.Task | None = None
        try:
            while True:
                # Cleared before the claim, not after it: a wake that comes while this batch is
                # claimed is for a message it may have missed, so the wait below must not sleep.
                self._wake.clear()
                started = asyncio.Event()
                batch = asyncio.create_task(self._drain_logged(started))
                waiter = asyncio.create_task(started.wait())
                try:
                    await asyncio.wait({batch, waiter}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                if tail is not None:
                    await tail
                    tail = None
                if not batch.done():  # every message started: claim the next while these finish
                    tail = batch
                    continue
                if batch.result():
                    continue
                await _wait(self._wake, self.idle_seconds)
        finally:
            for task in (tail, batch):
                if task is not None and not task.done():
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)

    async def _drain_logged(self, started: asyncio.Event) -> int:
        try:
            sent = await self.drain_once(started)
        except DatabaseUnavailable as exc:
            if not self._unavailable:
                log.warning("outbox: database unavailable: %s; sending again when it answers", exc)
            self._unavailable = True
        except Exception:  # a bug in one batch must not stop the sending for good
            log.exception("outbox: a batch failed")
        else:
            if self._unavailable:
                log.warning("outbox: the database answers again; sending")
            self._unavailable = False
            return sent
        return 0

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
