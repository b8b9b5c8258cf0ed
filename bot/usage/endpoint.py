"""``POST /events/usage``: usage events from the platform's own tools (signed, ``bot.usage.signing``).

What a request meets, in order (each refusal is one line of text, nothing stored):
- 404 while ``USAGE_SIGNING_SECRET`` is unset (the route does not exist for the world);
- 429 with ``Retry-After`` past ``USAGE_EVENTS_PER_SECOND`` per sending address (a token bucket of
  two seconds' worth), so a flood cannot take the database from Slack's acks;
- the body bounded to ``MAX_BODY`` bytes before it is read whole (``bot.runtime.guard.BodyLimit``,
  413) and within the HTTP limits of ``bot.runtime.http_limits``;
- 401 for a missing, stale or wrong signature;
- 400 for a body that is not a valid event, or names a capability the policy does not list;
- 409 for a replay: the same signature seen before within the window (``storage.replays``' table,
  the one that refuses Slack's replays; kept in the same transaction as the event);
- 503 with ``Retry-After`` when the database cannot take it, or when ``Writer.max_waiting`` events
  already wait to be written (the sender retries; nothing was acknowledged).

202 once the event is stored (``{"stored": true}``, or ``false`` for an ``id`` stored before); the
email lookup and the CSAT decision run after the answer (``bot.usage.settling``).
"""

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from sqlmodel import Session, col
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot.runtime.context import Deps
from bot.usage import csat, events, signing
from bot.usage.slack_reads import settler_for
from storage.database import DatabaseUnavailable

log = logging.getLogger(__name__)

PATH = "/events/usage"
MAX_BODY = 16_000  # bytes: an event is a few hundred
MAX_SENDERS = 10_000  # addresses whose buckets are kept (the oldest forgotten first)


class RateLimit:
    """A token bucket per sending address: ``rate`` per second, ``burst`` at most saved up."""

    def __init__(self, rate: float, burst: float | None = None, clock=time.monotonic):
        self.rate, self.burst, self.clock = rate, burst or max(1.0, 2 * rate), clock
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, at)

    def take(self, who: str) -> float:
        """0 if a request from ``who`` may go now (a token taken), else the seconds until one may."""
        now = self.clock()
        tokens, at = self._buckets.pop(who, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[who] = (tokens, now)  # re-inserted: the dict's order is least recently seen first
        while len(self._buckets) > MAX_SENDERS:
            self._buckets.pop(next(iter(self._buckets)))
        return wait


class Busy(Exception):
    """More events are waiting to be written than ``Writer.max_waiting``."""


class Writer:
    """Group commit: events arriving together are written together. Each request waits for the
    transaction that holds its event (and its signature, for the replay check) to commit before it
    is answered, so an event is never acknowledged unstored; a burst of events costs a few
    transactions instead of one (and one commit's flush) each. At most ``max_waiting`` events wait
    at once: past it a request is answered 503 with ``Retry-After`` (the flood is bounded in memory
    and in the database's load, before a byte of it is written)."""

    def __init__(self, db, *, settled: "Callable[[events.UsageIn], bool]" = lambda _event: False, batch: int = 500,
                 max_waiting: int = 5000):
        self.db, self.settled, self.batch, self.max_waiting = db, settled, batch, max_waiting
        self._waiting: list[tuple[str, datetime, events.UsageIn, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    async def keep(self, signature: str, expires_at: datetime, event: events.UsageIn) -> tuple[str, int | None]:
        """("replay" | "stored" | "duplicate", the new id); DatabaseUnavailable, or Busy."""
        if len(self._waiting) >= self.max_waiting:
            raise Busy()
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((signature, expires_at, event, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:self.batch], self._waiting[self.batch:]
            try:
                results = await self.db.run(keep_many, items=[(sig, exp, ev) for sig, exp, ev, _ in batch], now=datetime.now(timezone.utc),
                                            settled=self.settled)
            except Exception as exc:  # noqa: BLE001 - each waiting request answers it (DatabaseUnavailable: 503)
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (*_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


def keep_many(*, session: Session, items: list[tuple[str, datetime, events.UsageIn]], now: datetime,
              settled: Callable[[events.UsageIn], bool] = lambda _event: False) -> list[tuple[str, int | None]]:
    """In one transaction: each signature seen for the first time (``storage.replays``' table, the
    first of twins in the batch) stores its event unless its id is stored already (the first of
    twins wins); an event ``settled`` says needs no after-ack work is stored settled. Per item, in
    order: ("replay" | "stored" | "duplicate", the new id)."""
    from sqlalchemy import delete

    from storage.database import insert_or_skip
    from storage.models import SeenRequest, UsageEvent

    first_of_sig: dict[str, int] = {}
    for i, (sig, _exp, _ev) in enumerate(items):
        first_of_sig.setdefault(sig[:80], i)
    rows = [{"signature": sig[:80], "expires_at": items[i][1]} for sig, i in first_of_sig.items()]
    new_sigs = set(session.execute(insert_or_skip(session, SeenRequest).values(rows).returning(SeenRequest.signature)).scalars())
    session.execute(delete(SeenRequest).where(col(SeenRequest.expires_at) < now))
    fresh = [i for sig, i in first_of_sig.items() if sig in new_sigs]
    first_of_key: dict[str, int] = {}
    for i in fresh:
        first_of_key.setdefault(items[i][2].key, i)
    stored: dict[str, int] = {}
    if first_of_key:
        received = datetime.now(timezone.utc)
        values = [{**{k: v for k, v in items[i][2].row().items() if k != "email"}, "pending_email": items[i][2].email,
                   "received_at": received, "settled": settled(items[i][2])} for i in first_of_key.values()]
        stored = {key: new_id for new_id, key in
                  session.execute(insert_or_skip(session, UsageEvent).values(values).returning(UsageEvent.id, UsageEvent.key)).all()}
    out: list[tuple[str, int | None]] = []
    for i, (sig, _exp, event) in enumerate(items):
        if first_of_sig[sig[:80]] != i or sig[:80] not in new_sigs:
            out.append(("replay", None))
        elif first_of_key.get(event.key) == i and event.key in stored:
            out.append(("stored", stored[event.key]))
        else:
            out.append(("duplicate", None))
    return out


def routes(deps: Deps) -> list[Route]:
    """The route on the serve app (``deps``: ``bot.runtime.context.Deps``; ``deps.once(settler_for)`` settles after the answer)."""
    settings = deps.settings
    secret = settings.usage_signing_secret
    limit = RateLimit(settings.usage_events_per_second)
    # An event with a user id that is not sampled for the question has no after-ack work: stored settled.
    writer = Writer(deps.db, settled=lambda e: e.user_id is not None and not csat.may_ask(e, deps.policy.usage))

    async def usage_event(request: Request) -> Response:
        if not secret:
            return PlainTextResponse("Not Found", status_code=404)
        who = request.client.host if request.client else "?"
        wait = limit.take(who)
        if wait:
            return PlainTextResponse(f"too many events from {who}: at most {settings.usage_events_per_second:g} per second",
                                     status_code=429, headers={"Retry-After": str(max(1, math.ceil(wait)))})
        body = await request.body()  # at most MAX_BODY bytes: BodyLimit stopped reading there
        problem = signing.verify(secret, body, request.headers)
        if problem:
            return PlainTextResponse(problem, status_code=401)
        now = datetime.now(timezone.utc)
        try:
            event = events.parse(body, deps.policy.usage, now)
        except events.BadEvent as exc:
            return PlainTextResponse(str(exc), status_code=400)
        ts = int(request.headers[signing.TIMESTAMP_HEADER])
        expires = datetime.fromtimestamp(ts, timezone.utc) + timedelta(seconds=signing.WINDOW + 60)  # a minute for clock skew
        try:
            outcome, new = await writer.keep(request.headers[signing.SIGNATURE_HEADER], expires, event)
        except DatabaseUnavailable:
            return PlainTextResponse("database unavailable: send it again in a minute", status_code=503, headers={"Retry-After": "60"})
        except Busy:
            return PlainTextResponse(f"busy: {writer.max_waiting} events are waiting to be written; send it again shortly",
                                     status_code=503, headers={"Retry-After": "1"})
        if outcome == "replay":
            return PlainTextResponse("replayed request (this signature was seen before): sign each request when it is sent",
                                     status_code=409)
        if new is not None and not writer.settled(event):
            deps.once(settler_for).kick(new)
        return Response(json.dumps({"ok": True, "stored": outcome == "stored"}), status_code=202, media_type="application/json")

    return [Route(PATH, usage_event, methods=["POST"])]
