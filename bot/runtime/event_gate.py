"""Acked means kept: every Slack event is in the local spool (``bot.runtime.spool``, fsynced)
before it is acked, and leaves it only once its listener has finished. A process killed between
the two (kill -9, a host that dies holding its database connections) leaves it there, and the
replay handles it again; Slack never resends an event it saw acked. The same replay applies the
tracker deliveries that arrived while the database was down (``bot.closing.webhooks``).

- ``admit``, before the ack (HTTP route, Socket Mode handler): the event is written to the spool
  as ``live`` and ``Admitted.live`` says to handle it now, after the ack (``handle_live``: through
  the replay's Bolt app, which runs the listener to its end, then the row is dropped). While the
  spool holds events waiting for the database, a new one queues behind them (``live`` false), so
  the replay keeps Slack's order. An event already held (Slack's retry) is acked and not handled
  twice.
- The spool refusing an event (full, the disk full or failing) is ``NotKept``: the caller handles
  it before answering (``handle_now``: its listener commits to the database before the ack), and
  answers 503 (HTTP) or no ack (Socket Mode) if the database cannot take it either, so Slack
  retries.
- ``keep_request``: a listener met the outage after the ack: the app's error handler puts its
  event back to ``waiting``.
- The replay runs at start, on a tick (``TICK_SECONDS``) and when woken: it first takes back the
  rows of processes that are gone (``EventSpool.reclaim``), then replays what waits, oldest first,
  while the database answers. An event leaves the spool only once its listener has finished; one
  that met the outage again is put back and the replay waits for the next tick. Slack's
  ``event_id`` makes a second store of the same event a no-op, so a replay cut short by a crash
  is simply replayed again (duplicates at most the messages in flight: a listener's Slack calls
  made before the crash).
- A person's slash command or interaction (a button, a form, a shortcut: ``holds``) is kept too,
  while its listener runs: ``hold`` before Bolt dispatches it (in the spool as ``live``, owned by
  this process, never queued behind waiting events: the person waits for its answer), and
  ``ListenerEnd`` drops it when its listener has finished. A process killed between the ack and
  that end leaves it for the replay, which runs the listener again (its answer then goes to the
  response URL or nowhere; what it stores is stored). A listener meeting the outage after its ack
  puts it back to ``waiting``, as for events. Slack never resends these, so nothing else would.
- The spool's own trouble (a full disk) is one log line when it starts and one when it ends,
  and ``status()`` for /healthz and /metrics.
"""

import asyncio
import contextvars
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio.to_thread
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import send_async_response
from slack_bolt.adapter.socket_mode.internals import build_headers
from slack_bolt.listener.async_listener_completion_handler import AsyncListenerCompletionHandler
from slack_bolt.listener.async_listener_start_handler import AsyncListenerStartHandler
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.runtime.late_answer import LateAck, answer_late, dispatch
from bot.runtime.spool import HELD as HELD_STATE
from bot.runtime.spool import LIVE, UNANSWERED, EventSpool, Spooled, SpoolFull, signature_holds
from storage.database import Database, DatabaseUnavailable

log = logging.getLogger(__name__)

TICK_SECONDS = 5.0  # how often the replay looks at the spool when nothing wakes it
STOP_SECONDS = 5.0  # a graceful stop waits this long for events being handled live
# Set while an event is handled before its answer (the spool refused it): a listener meeting the
# outage then marks it here instead of spooling it, and the caller answers 503.
_answering: contextvars.ContextVar[dict | None] = contextvars.ContextVar("answering", default=None)

# A spooled row of another kind (a tracker's delivery): applied by ``appliers[kind](entry)``,
# which returns False when the database was unavailable (the row then waits for the next tick).
Applier = Callable[[Spooled], Awaitable[bool]]


# Payload kinds a person sends (Slack does not send them again): kept while their listener runs.
# Not block_suggestion (a menu's options: a read, answered in the ack).
HELD_TYPES = frozenset({"block_actions", "view_submission", "view_closed", "shortcut", "message_action"})
HELD, HELD_KEY, STARTED, KEEP = "pf_spool_seq", "pf_spool_key", "pf_listener_started", "pf_keep_for_replay"


def holds(body: object) -> bool:
    """True for a slash command or an interaction (``HELD_TYPES``), by Bolt's parsed body."""
    return isinstance(body, dict) and (bool(body.get("command")) or body.get("type") in HELD_TYPES)


class NotKept(Exception):
    """The spool could not keep the event (full, or the disk refused)."""


@dataclass(frozen=True)
class Admitted:
    seq: int | None  # the spool row to drop once handled live
    live: bool  # handle it now, after the ack (False: it waits in the spool, or was there already)


class EventGate:
    def __init__(self, *, spool: EventSpool, db: Database, secret: bytes,
                 replay: Callable[[AsyncBoltRequest], Awaitable[BoltResponse | None]] | None = None, tick_seconds: float = TICK_SECONDS):
        """``secret``: the signing secret HTTP events were signed with (checked again before a
        replay). ``replay``: dispatches a request and returns once its listener has finished (the
        app factory sets it once the replay twin exists; without it, nothing replays Slack's rows)."""
        self.spool, self.db, self.secret, self.replay = spool, db, secret, replay
        self.tick_seconds = tick_seconds
        self.appliers: dict[str, Applier] = {}
        self._woken = asyncio.Event()
        self._replaying = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._live: set[asyncio.Task] = set()
        self._listening: set[asyncio.Task] = set()  # listeners of held requests, running (``ListenerStart``)
        self._resting_until = 0.0  # monotonic: after a replay met the outage again, wait a tick
        self._trouble: str | None = None  # why the last replay pass could not go on (logged once)
        # Called with the payload of an event no listener took (Bolt answered 404 after our ack):
        # the app counts it (pf_slack_unhandled) and logs it once per kind.
        self.on_unhandled: Callable[[dict], None] | None = None

    # ---------------------------------------------------------- arrivals

    async def admit(self, *, event_id: str | None, body: bytes, headers: dict[str, str], signed: bool) -> Admitted | None:
        """Before the ack. None: not an Events API delivery (Bolt answers it). Raises NotKept."""
        if not event_id:
            return None
        kept = await self._keep(event_id, body, headers, signed, live=True)
        if kept is None:
            return Admitted(None, live=False)  # held already: Slack's retry
        seq, state = kept
        live = state == LIVE
        if not live:
            log.warning("event %s kept in the spool behind the events waiting for the database", event_id)
        return Admitted(seq, live=live)

    async def _dispatch(self, request: AsyncBoltRequest) -> BoltResponse | None:
        if self.replay is None:
            raise RuntimeError("EventGate.replay is not set (bot.runtime.app.create_app sets it)")
        return await self.replay(request)

    def listening(self, task: asyncio.Task) -> None:
        """``task`` runs the listener of a held request: a graceful stop waits for it (``stop``)."""
        self._listening.add(task)
        task.add_done_callback(self._listening.discard)

    def handle_live(self, admitted: Admitted, body: bytes, headers: dict[str, str]) -> None:
        """After the ack: run the event's listener to its end, then drop its row."""
        assert admitted.seq is not None, "a live admission has its spool row"  # admit: live only with a kept row
        task = asyncio.get_running_loop().create_task(self._handle_live(admitted.seq, self.request(body, headers)))
        self._live.add(task)
        task.add_done_callback(self._live.discard)

    async def _handle_live(self, seq: int, request: AsyncBoltRequest) -> None:
        try:
            response = await self._dispatch(request)  # Bolt's error handler sees a listener's failure (and may put it back)
        except Exception:  # noqa: BLE001 - not Bolt's: the row stays, to be looked at again by a restart
            log.exception("event handling failed outside its listener; it stays in the spool")
            return
        self._unhandled(request, response)
        await anyio.to_thread.run_sync(self.spool.finish, seq, LIVE)

    async def handle_now(self, body: bytes, headers: dict[str, str]) -> bool:
        """The spool refused the event: run its listener before answering. False: the database
        could not take it either (answer so that Slack retries)."""
        outcome: dict = {}
        token = _answering.set(outcome)
        try:
            request = self.request(body, headers)
            self._unhandled(request, await self._dispatch(request))
        finally:
            _answering.reset(token)
        return not outcome.get("unavailable")

    def _unhandled(self, request: AsyncBoltRequest, response: BoltResponse | None) -> None:
        if response is not None and response.status == 404 and self.on_unhandled is not None and isinstance(request.body, dict):
            self.on_unhandled(request.body)

    @staticmethod
    def request(body: bytes, headers: dict[str, str]) -> AsyncBoltRequest:
        # "socket_mode": Bolt reads the body as the payload JSON and checks no signature (the
        # route checked it; a replay checks it again from the spool).
        bolt_headers: dict[str, str | Sequence[str]] = dict(headers)  # Bolt's type: a header may have several values
        return AsyncBoltRequest(body=body.decode("utf-8"), headers=bolt_headers, mode="socket_mode")

    async def hold(self, request: AsyncBoltRequest, *, key: str) -> None:
        """Before Bolt dispatches a person's command or interaction (``holds``): keep it, as Bolt
        parsed it (replayed in Socket Mode's shape), under ``key`` (unique per request: its
        signature, or its Socket Mode envelope id), and mark ``request.context`` for
        ``release``; its ack becomes a ``LateAck``. A spool that refuses it is logged; the request
        goes on as before."""
        if not holds(request.body):
            return
        request.context["ack"] = LateAck(request.context, request.body)
        headers = {"content-type": "application/json"}
        try:
            kept = await self._keep(key, json.dumps(request.body).encode(), headers, False, live=True, in_order=False, before_ack=True)
        except NotKept as exc:
            log.warning("a %s is handled without a copy in the spool: %s", _kind(request.body), exc)
            return
        if kept is not None:
            request.context[HELD], request.context[HELD_KEY] = kept[0], key

    async def acked(self, request: AsyncBoltRequest, response: BoltResponse) -> BoltResponse:
        """The route is about to send Bolt's ``response`` to a held request; returns what to send.
        A 200 is Slack's ack, after which the request must not be lost, so its copy turns ``live``
        (replayed if the process dies before its listener ends). Before this, a process that dies
        leaves it ``held`` and it is dropped: Slack showed the person an error, and what they send
        again is applied once. Nothing to do when its listener has ended already.

        A listener still running without an ack (past Bolt's 3 s wait: ``bot.runtime.late_answer``)
        is acked all the same, with an empty 200 (Bolt's own answer then is its "unhandled" 404):
        its answer goes to the response URL when it comes, or, if the process dies first, when the
        replay has run it again (its copy is marked ``UNANSWERED``)."""
        ack = request.context.get("ack")
        late = bool(request.context.get(STARTED)) and isinstance(ack, LateAck) and await ack.answered(response)
        if late:
            log.warning("a %s took longer than Slack's 3 s: acked now, its answer goes to the response URL", _kind(request.body))
            response = BoltResponse(status=200, body="")
        seq = request.context.get(HELD)
        if seq is None or response.status != 200:
            return response
        try:
            await anyio.to_thread.run_sync(self.spool.acked, seq, not late)
        except (OSError, sqlite3.Error) as exc:  # kept held: replayed only if this process lives on to release it
            log.warning("a %s acked without its spool mark: %s", _kind(request.body), exc)
        return response

    async def release(self, request: AsyncBoltRequest) -> None:
        """Its listener has finished (or none took it): drop the request's copy, unless the
        listener met the outage after its ack and put it back for the replay."""
        seq = request.context.get(HELD)
        if seq is None or request.context.get(KEEP):
            return
        request.context[HELD] = None
        await anyio.to_thread.run_sync(self.spool.finish, seq, LIVE)

    async def keep_request(self, request: AsyncBoltRequest) -> None:
        """A listener met the outage after the ack: keep its event (or the person's request it
        holds) for the replay, or log it lost."""
        outcome = _answering.get()
        if outcome is not None:  # handled before its answer: the caller refuses it instead
            outcome["unavailable"] = True
            return
        if request.context.get(HELD) is not None:
            key = request.context[HELD_KEY]
            try:  # held already: back to waiting, for the replay
                await self._keep(key, b"", {}, False, live=False)
            except NotKept as exc:
                log.error("a %s lost: the database was unavailable after its ack and %s", _kind(request.body), exc)
                return
            request.context[KEEP] = True
            log.warning("a %s kept in the spool: the database became unavailable after its ack", _kind(request.body))
            return
        body = request.body if isinstance(request.body, dict) else {}
        event_id = body.get("event_id")
        if not event_id:
            return
        headers = {k: v[0] for k, v in request.headers.items() if v}
        if request.mode == "socket_mode":  # live, from the socket, or a replay: the payload as JSON
            raw, signed = json.dumps(body).encode(), False
            headers["content-type"] = "application/json"
        else:
            raw, signed = request.raw_body.encode(), True
        try:
            await self._keep(event_id, raw, headers, signed, live=False)  # held already: back to waiting
        except NotKept as exc:
            log.error("event %s lost: the database was unavailable after its ack and %s", event_id, exc)
            return
        log.warning("event %s kept in the spool: the database became unavailable after its ack", event_id)

    async def keep_other(self, *, kind: str, key: str, body: bytes, headers: dict[str, str]) -> bool:
        """Keep a delivery of another kind (a tracker's) for ``appliers[kind]``; True if new here.
        Raises NotKept."""
        return await self._keep(key, body, headers, False, live=False, kind=kind) is not None

    async def _keep(self, event_id: str, body: bytes, headers: dict[str, str], signed: bool, *, live: bool,
                    kind: str = "slack", in_order: bool = True, before_ack: bool = False) -> tuple[int, str] | None:
        try:
            kept = await anyio.to_thread.run_sync(lambda: self.spool.keep(
                event_id=event_id, body=body, headers=headers, signed=signed, live=live, kind=kind, in_order=in_order,
                before_ack=before_ack))
        except SpoolFull as exc:
            raise NotKept(str(exc)) from None
        except (OSError, sqlite3.Error) as exc:
            raise NotKept(f"the spool file refused it: {exc}") from None
        if kept is None or kept[1] not in (LIVE, HELD_STATE):
            self.wake()
        return kept

    # ---------------------------------------------------------- the replay

    def wake(self) -> None:
        self._woken.set()

    def status(self) -> dict:
        """The spool's rows per state, bytes held and problem (None, or one line): for /healthz."""
        return self.spool.status()

    def start(self) -> None:
        """Replay at once, then on every tick and wake (call from the running event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="event-spool-replay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        running = self._live | self._listening
        if running:  # events and requests acked and being handled: let them finish (or stay spooled)
            await asyncio.wait(running, timeout=STOP_SECONDS)
        await anyio.to_thread.run_sync(self.spool.close)

    async def _run(self) -> None:
        while True:
            if time.monotonic() >= self._resting_until:
                try:
                    await anyio.to_thread.run_sync(self.spool.restore_reserve)
                    await self.replay_once()
                except Exception as exc:  # noqa: BLE001 - the loop must outlive one bad pass; the events stay spooled
                    trouble = " ".join(str(exc).split())[:200] or type(exc).__name__
                    if trouble != self._trouble:  # one line while it lasts, not one per tick
                        log.error("event spool replay cannot go on: %s; trying again every %g s", trouble, self.tick_seconds)
                    self._trouble = trouble
                    self.spool.problem = f"replay stopped: {trouble}"
                else:
                    if self._trouble:
                        log.warning("event spool replay goes on again")
                        if self.spool.problem == f"replay stopped: {self._trouble}":
                            self.spool.problem = None
                    self._trouble = None
            try:
                async with asyncio.timeout(self.tick_seconds):
                    await self._woken.wait()
            except TimeoutError:
                pass
            self._woken.clear()

    async def replay_once(self) -> int:
        """Replay what the spool holds, oldest first, while the database answers; how many left it."""
        async with self._replaying:
            reclaimed = await anyio.to_thread.run_sync(self.spool.reclaim)
            if reclaimed:
                log.warning("event spool: %d event(s) acked by a process that stopped before handling them go again", reclaimed)
            if not await anyio.to_thread.run_sync(self.spool.waiting):
                return 0
            try:
                await self.db.check()
            except DatabaseUnavailable:
                return 0
            done = 0
            while (entry := await anyio.to_thread.run_sync(self.spool.take)) is not None:
                if entry.kind != "slack":
                    if not await self._apply_other(entry):
                        break
                    done += 1
                    continue
                if entry.signed and not signature_holds(self.secret, entry):
                    log.error("spooled event %s dropped: its Slack signature does not hold", entry.event_id)
                    await anyio.to_thread.run_sync(self.spool.drop, entry.seq)
                    continue
                request = self.request(entry.body, entry.headers)
                response = await self._dispatch(request)  # Bolt's error handler sees a listener's failure
                if entry.headers.get(UNANSWERED):  # its ack never reached the person: it goes now
                    await answer_late(request.context, response, request.body)
                if not await anyio.to_thread.run_sync(self.spool.finish, entry.seq):
                    self._pause()
                    break
                done += 1
            if done:
                log.info("replayed %d spooled event(s); %d still spooled", done, await anyio.to_thread.run_sync(self.spool.waiting))
            return done

    async def _apply_other(self, entry: Spooled) -> bool:
        applier = self.appliers.get(entry.kind)
        if applier is None:  # its tracker is no longer configured: it waits until it is again
            log.warning("spooled %s delivery waits: no %s webhook is configured now", entry.kind, entry.kind)
            await anyio.to_thread.run_sync(lambda: self.spool.keep(event_id=entry.event_id, body=b"", headers={}, signed=False))
            return False
        if await applier(entry):
            await anyio.to_thread.run_sync(self.spool.finish, entry.seq)
            return True
        await anyio.to_thread.run_sync(lambda: self.spool.keep(event_id=entry.event_id, body=b"", headers={}, signed=False))
        self._pause()
        return False

    def _pause(self) -> None:
        self._resting_until = time.monotonic() + self.tick_seconds
        log.warning("event spool replay paused: the database is unavailable again")


def _kind(body: object) -> str:
    if isinstance(body, dict) and body.get("command"):
        return "slash command"
    return f"{body.get('type') if isinstance(body, dict) else 'request'} interaction"


class ListenerStart(AsyncListenerStartHandler):
    """Bolt's listener start handler, wrapped: marks that a listener took the request (one no
    listener or middleware took is released by the route itself, ``release_unstarted``)."""

    def __init__(self, inner: AsyncListenerStartHandler, gate: "EventGate"):
        self.inner, self.gate = inner, gate

    async def handle(self, request: AsyncBoltRequest, response: BoltResponse | None) -> None:
        request.context[STARTED] = True
        task = asyncio.current_task()
        if task is not None and request.context.get(HELD) is not None:
            self.gate.listening(task)
        await self.inner.handle(request=request, response=response)


class ListenerEnd(AsyncListenerCompletionHandler):
    """Bolt's listener completion handler, wrapped: the listener of a held request has finished
    (after its ack: Bolt runs it on past the answer), so its copy in the spool goes. Not when its
    task is being cancelled: Bolt calls this in a ``finally`` that a cancelled listener (the
    process stopping with it still running: a deploy's SIGTERM while it waits for a lock) runs
    too, and its copy went with it, acked and never done; it stays, and the replay after the
    restart runs it again."""

    def __init__(self, inner: AsyncListenerCompletionHandler, gate: "EventGate"):
        self.inner, self.gate = inner, gate

    async def handle(self, request: AsyncBoltRequest, response: BoltResponse | None) -> None:
        try:
            await self.inner.handle(request=request, response=response)
        finally:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                log.warning("a %s stopped before its listener ended: kept in the spool for the replay", _kind(request.body))
            else:
                await self.gate.release(request)


def keep_requests(app, gate: EventGate) -> None:
    """On the serving app: a held request's copy goes when its listener ends. Bolt builds these
    two handlers itself and has no setting for them (slack_bolt/app/async_app.py passes its
    defaults to ``AsyncioListenerRunner``), so they are wrapped on the runner it made;
    tests/test_acked_kept.py fails if that stops working."""
    runner = app._async_listener_runner
    runner.listener_start_handler = ListenerStart(runner.listener_start_handler, gate)
    runner.listener_completion_handler = ListenerEnd(runner.listener_completion_handler, gate)


async def release_unstarted(gate: EventGate, request: AsyncBoltRequest) -> None:
    """After Bolt's dispatch: a held request no listener took (none matched, a middleware
    answered, a malformed payload) is released here; one a listener took, by ``ListenerEnd``."""
    if not request.context.get(STARTED):
        await gate.release(request)


class SpoolingSocketModeHandler(AsyncSocketModeHandler):
    """Bolt's Socket Mode handler, with Events API envelopes kept in the spool before their ack
    and handled after it (``EventGate``); one the spool refused is handled before the ack, and
    not acked if the database could not take it either, so Slack sends it again."""

    def __init__(self, app, app_token: str, *, gate: EventGate, **kwargs):
        super().__init__(app, app_token, **kwargs)
        self.gate = gate

    async def handle(self, client, req: SocketModeRequest) -> None:
        if req.type == "events_api" and isinstance(req.payload, dict) and req.payload.get("event_id"):
            headers = {k: str(v) for k, v in (build_headers(req) or {}).items()}
            headers["content-type"] = "application/json"
            body = json.dumps(req.payload).encode()
            ack = SocketModeResponse(envelope_id=req.envelope_id)
            try:
                admitted = await self.gate.admit(event_id=req.payload["event_id"], body=body, headers=headers, signed=False)
            except NotKept as exc:
                if await self.gate.handle_now(body, headers):
                    await client.send_socket_mode_response(ack)
                else:
                    log.warning("event %s not acked, Slack will send it again: %s", req.payload.get("event_id"), exc)
                return
            await client.send_socket_mode_response(ack)
            assert admitted is not None  # it has an event_id, so admit kept it or raised NotKept
            if admitted.live:
                self.gate.handle_live(admitted, body, headers)
            return
        if req.type in ("interactive", "slash_commands") and isinstance(req.payload, dict):
            # A person's request: kept while its listener runs (``EventGate.hold``), as over HTTP.
            started = time.time()
            request = AsyncBoltRequest(mode="socket_mode", body=req.payload, headers=build_headers(req))
            await self.gate.hold(request, key=f"envelope:{req.envelope_id}")
            try:
                response = await dispatch(self.app, request)  # at the listener's ack
            finally:
                await release_unstarted(self.gate, request)
            # Before the answer leaves: from now on it is kept (and a listener past Bolt's 3 s wait is acked).
            response = await self.gate.acked(request, response)
            await send_async_response(client, req, response, started)
            return
        await super().handle(client, req)
