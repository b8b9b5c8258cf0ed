"""``POST /events/usage``: usage events from the platform's own tools (signed, ``bot.usage.signing``).

What a request meets, in order (each refusal is one line of text, nothing stored):
- 404 while ``USAGE_SIGNING_SECRET`` is unset (the route does not exist for the world);
- 429 with ``Retry-After`` past ``USAGE_EVENTS_PER_SECOND`` per sending address (a token bucket of
  two seconds' worth), so a flood cannot take the database from Slack's acks;
- the body bounded to ``MAX_BODY`` bytes before it is read whole (``bot.runtime.guard.BodyLimit``,
  413) and within the HTTP limits of ``bot.runtime.http_limits``;
- 401 for a missing, stale or wrong signature;
- 400 for a body that is not a valid event, or names a capability the policy does not list;
- 409 for a replay: the same signature seen before within the window (``storage.replays``, the
  table that refuses Slack's replays; kept in the same transaction as the event);
- 503 when the database cannot take it (the sender retries; nothing was acknowledged).

202 once the event is stored (``{"stored": true}``, or ``false`` for an ``id`` stored before); the
email lookup and the CSAT decision run after the answer (``bot.usage.settling``).
"""

import json
import logging
import math
import time
from datetime import datetime, timedelta, timezone

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot.usage import events, signing
from storage.database import DatabaseUnavailable
from storage.replays import first_sight

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


def _keep(*, session: Session, signature: str, expires_at: datetime, now: datetime, event: events.UsageIn) -> tuple[str, int | None]:
    """In one transaction: refuse a replay, else store the event. ("replay" | "stored" | "duplicate", the new id)."""
    if not first_sight(session=session, signature=signature, expires_at=expires_at, now=now):
        session.rollback()
        return "replay", None
    new = events.store(session=session, event=event)
    return ("stored" if new is not None else "duplicate"), new


def routes(deps) -> list[Route]:
    """The route on the serve app (``deps``: ``bot.runtime.context.Deps``; its ``usage`` settles after the answer)."""
    settings = deps.settings
    secret = settings.usage_signing_secret
    limit = RateLimit(settings.usage_events_per_second)

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
            outcome, new = await deps.db.run(_keep, signature=request.headers[signing.SIGNATURE_HEADER], expires_at=expires, now=now,
                                        event=event)
        except DatabaseUnavailable:
            return PlainTextResponse("database unavailable: send it again in a minute", status_code=503, headers={"Retry-After": "60"})
        if outcome == "replay":
            return PlainTextResponse("replayed request (this signature was seen before): sign each request when it is sent",
                                     status_code=409)
        if new is not None and deps.usage is not None:
            deps.usage.kick(new)
        return Response(json.dumps({"ok": True, "stored": outcome == "stored"}), status_code=202, media_type="application/json")

    return [Route(PATH, usage_event, methods=["POST"])]
