"""What happens to a Slack event while the database is down: it is kept in the local spool
(``bot.runtime.spool``) and acked, then replayed in arrival order once the database answers again.

- ``admit``, before Bolt sees an event (HTTP route, Socket Mode handler): the database answers a
  ``SELECT 1`` → dispatch it; it does not → keep the event, ack it. While the spool holds events,
  new ones queue behind them, so the replay keeps Slack's order.
- ``keep_request``: a listener found the database gone after the ack (the instant between the
  check and its write): the app's error handler keeps that event too.
- The replay runs at start, on a tick (``TICK_SECONDS``) and when woken, through a Bolt app that
  runs each listener to its end before answering (``process_before_response``), so an event
  leaves the spool only once its listener has finished; a listener that met the outage again puts
  it back and the replay waits for the next tick. Slack's ``event_id`` makes a second store of
  the same event a no-op, so a replay cut short by a crash is simply replayed again.
- The spool refusing an event (full, disk error) is ``NotKept``: HTTP answers 503 and Socket Mode
  does not ack, and Slack retries it.
"""

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable

import anyio.to_thread
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.internals import build_headers
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.runtime.spool import EventSpool, SpoolFull, signature_holds
from storage.database import Database, DatabaseUnavailable

log = logging.getLogger(__name__)

TICK_SECONDS = 5.0  # how often the replay looks at the spool when nothing wakes it


class NotKept(Exception):
    """The spool could not keep the event (full, or the disk refused): refuse it so Slack retries."""


class EventGate:
    def __init__(self, *, spool: EventSpool, db: Database, secret: bytes,
                 replay: Callable[[AsyncBoltRequest], Awaitable[BoltResponse | None]], tick_seconds: float = TICK_SECONDS):
        """``secret``: the signing secret HTTP events were signed with (checked again before a
        replay). ``replay``: dispatches a request and returns once its listener has finished."""
        self.spool, self.db, self.secret, self.replay = spool, db, secret, replay
        self.tick_seconds = tick_seconds
        self._woken = asyncio.Event()
        self._replaying = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._resting_until = 0.0  # monotonic: after a replay met the outage again, wait a tick

    # ---------------------------------------------------------- arrivals

    async def admit(self, *, event_id: str | None, body: bytes, headers: dict[str, str], signed: bool) -> bool:
        """True: dispatch the event now. False: it was kept in the spool; ack it. Raises NotKept."""
        if not event_id:
            return True  # not an Events API delivery Slack sent: Bolt answers it
        if not await anyio.to_thread.run_sync(self.spool.held):
            try:
                await self.db.check()
                return True
            except DatabaseUnavailable as exc:
                log.warning("event %s kept in the spool, database unavailable: %s", event_id, exc)
        await self._keep(event_id, body, headers, signed)
        return False

    async def keep_request(self, request: AsyncBoltRequest) -> None:
        """A listener met the outage after the ack: keep its event for the replay (or log it lost)."""
        body = request.body if isinstance(request.body, dict) else {}
        event_id = body.get("event_id")
        if not event_id:
            return
        headers = {k: v[0] for k, v in request.headers.items() if v}
        if request.mode == "socket_mode":  # from the socket, or a replay: the payload as JSON
            raw, signed = json.dumps(body).encode(), False
            headers["content-type"] = "application/json"
        else:
            raw, signed = request.raw_body.encode(), True
        try:
            await self._keep(event_id, raw, headers, signed)
        except NotKept as exc:
            log.error("event %s lost: the database was unavailable after its ack and %s", event_id, exc)
            return
        log.warning("event %s kept in the spool: the database became unavailable after its ack", event_id)

    async def _keep(self, event_id: str, body: bytes, headers: dict[str, str], signed: bool) -> None:
        try:
            await anyio.to_thread.run_sync(lambda: self.spool.keep(event_id=event_id, body=body, headers=headers, signed=signed))
        except SpoolFull as exc:
            raise NotKept(str(exc)) from None
        except (OSError, sqlite3.Error) as exc:
            raise NotKept(f"the spool file refused it: {exc}") from None
        self.wake()

    # ---------------------------------------------------------- the replay

    def wake(self) -> None:
        self._woken.set()

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
        await anyio.to_thread.run_sync(self.spool.close)

    async def _run(self) -> None:
        while True:
            if time.monotonic() >= self._resting_until:
                try:
                    await self.replay_once()
                except Exception:  # noqa: BLE001 - the loop must outlive one bad pass; the events stay spooled
                    log.exception("event spool replay failed; trying again on the next tick")
            try:
                async with asyncio.timeout(self.tick_seconds):
                    await self._woken.wait()
            except TimeoutError:
                pass
            self._woken.clear()

    async def replay_once(self) -> int:
        """Replay what the spool holds, oldest first, while the database answers; how many left it."""
        async with self._replaying:
            if not await anyio.to_thread.run_sync(self.spool.held):
                return 0
            try:
                await self.db.check()
            except DatabaseUnavailable:
                return 0
            done = 0
            while (entry := await anyio.to_thread.run_sync(self.spool.take)) is not None:
                if entry.signed and not signature_holds(self.secret, entry):
                    log.error("spooled event %s dropped: its Slack signature does not hold", entry.event_id)
                    await anyio.to_thread.run_sync(self.spool.drop, entry.seq)
                    continue
                request = AsyncBoltRequest(body=entry.body.decode("utf-8"), headers=entry.headers, mode="socket_mode")
                await self.replay(request)  # Bolt's error handler sees a listener's failure
                if not await anyio.to_thread.run_sync(self.spool.finish, entry.seq):
                    self._resting_until = time.monotonic() + self.tick_seconds
                    log.warning("event spool replay paused: the database is unavailable again")
                    break
                done += 1
            if done:
                log.info("replayed %d spooled event(s); %d still spooled", done, self.spool.held())
            return done


class SpoolingSocketModeHandler(AsyncSocketModeHandler):
    """Bolt's Socket Mode handler, with Events API envelopes admitted through the gate first: one
    kept in the spool is acked at once; one the spool refused is not acked, so Slack sends it again."""

    def __init__(self, app, app_token: str, *, gate: EventGate, **kwargs):
        super().__init__(app, app_token, **kwargs)
        self.gate = gate

    async def handle(self, client, req: SocketModeRequest) -> None:
        if req.type == "events_api" and isinstance(req.payload, dict):
            headers = {k: str(v) for k, v in (build_headers(req) or {}).items()}
            headers["content-type"] = "application/json"
            try:
                admitted = await self.gate.admit(event_id=req.payload.get("event_id"), body=json.dumps(req.payload).encode(),
                                                 headers=headers, signed=False)
            except NotKept as exc:
                log.warning("event %s not acked, Slack will send it again: %s", req.payload.get("event_id"), exc)
                return
            if not admitted:
                await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
                return
        await super().handle(client, req)
