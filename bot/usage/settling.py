"""After the ack: what an event still needs once it is stored, done off the request's path
(``POST /events/usage`` answers as soon as the event is in the database, never before).

- An event sent with an email: ``users.lookupByEmail`` (Tier 3), cached per process for
  ``CACHE_SECONDS``; the user id is stored and the email erased from the row. An address Slack does
  not know (``users_not_found``) drops the event: it counts for nobody.
- The moment-of-use question (``bot.usage.csat``): sampling and caps first, then the person's time
  zone (``users.info``'s ``tz``, Tier 4, cached; the lookup by email brings it too), then the ask
  and its DM in one transaction with the event marked settled.

An event stays unsettled while Slack cannot answer; the minute's sweep (``bot.usage.jobs``) takes
every unsettled event again, so a crash between the ack and this work loses nothing. Within a
process one settling runs at a time; across processes ``bot.usage.csat.ask`` takes a lock per
person, so two uses of one person cannot both pass the per-person cap.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlmodel import Session

from bot.usage import csat
from bot.usage.policy import UsagePolicy
from storage import usage as store
from storage.database import Database, DatabaseUnavailable
from storage.models import UsageEvent, utcnow

log = logging.getLogger(__name__)

CACHE_SECONDS = 3600.0
CACHE_SIZE = 10_000
Read = Callable[..., Awaitable[dict]]  # read("users_info", user="U1") -> the Web API answer's data


class SlackUnanswered(Exception):
    """Slack did not answer a read now: the event is left for the next sweep."""


class SlackRefused(Exception):
    """Slack answered a read with ``ok: false``; ``error`` is its error code (``users_not_found``).
    Raised by the ``read`` the surface gives (``bot.usage.slack_reads.slack_read``), so that this
    module needs no Slack client."""

    def __init__(self, error: str | None):
        super().__init__(error)
        self.error = error


class Settler:
    def __init__(self, *, db: Database, policy: UsagePolicy, read: Read, clock: Callable[[], datetime] = utcnow):
        self.db, self.policy, self.read, self.clock = db, policy, read, clock
        self._emails: dict[str, tuple[float, str | None]] = {}  # email -> (cached at, user id or None: unknown)
        self._zones: dict[str, tuple[float, str | None]] = {}
        self._lock: asyncio.Lock | None = None
        self._runner: asyncio.Task | None = None
        self._more = False

    def kick(self, event_id: int) -> None:
        """Settle new events soon, after the answer: one task of the serving loop settles whatever is
        unsettled, again while kicks keep coming (so a burst of events costs a few batches, not a
        task and a few transactions each)."""
        self._more = True
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self._more:
            self._more = False
            await self._quietly(self.settle())

    async def idle(self) -> None:
        """Wait for the settling under way (tests, shutdown)."""
        while self._runner is not None and not self._runner.done():
            await asyncio.gather(self._runner, return_exceptions=True)

    async def _quietly(self, work: Awaitable[int]) -> None:
        try:
            await work
        except DatabaseUnavailable as exc:
            log.warning("usage events: settling waits for the database (%s); the sweep takes it again", exc)
        except Exception:
            log.exception("usage events: settling failed; the sweep takes it again")

    async def settle(self, ids: list[int] | None = None) -> int:
        """Settle ``ids`` (None: every unsettled event, oldest first, 500 at a time). How many were settled."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        done = 0
        async with self._lock:
            while True:
                events = await self.db.run(store.unsettled, ids=ids)
                # Most events need nothing but the flag: a known user and no question to consider.
                plain = [e.id for e in events if e.user_id is not None and not csat.may_ask(e, self.policy)]
                if plain:
                    await self.db.run(store.settle_many, event_ids=plain)
                progress, done_ids = len(plain), set(plain)
                for event in (e for e in events if e.id not in done_ids):
                    try:
                        progress += await self._one(event)
                    except SlackUnanswered as exc:
                        log.warning("usage events: Slack did not answer (%s); unsettled events wait for the next sweep", exc)
                        return done + progress
                done += progress
                if ids is not None or len(events) < 500 or not progress:
                    return done

    async def _one(self, event: UsageEvent) -> int:
        user = event.user_id
        if user is None:
            user = await self._user_of(event.pending_email or "")
            if user is None:
                await self.db.run(store.drop_event, event_id=event.id)
                return 1
        now = self.clock()
        wanted = await self.db.run(csat.candidate, event=event, user_id=user, policy=self.policy, now=now)
        tz = await self._zone(user) if wanted else None
        await self.db.run(self._finish, event_id=event.id, user_id=user, tz=tz, now=now, ask=wanted is not None)
        return 1

    def _finish(self, *, session: Session, event_id: int, user_id: str, tz: str | None, now: datetime, ask: bool) -> None:
        event = session.get(UsageEvent, event_id)
        if event is None or event.settled:
            return  # settled meanwhile (another instance's sweep)
        if ask:
            csat.ask(session=session, event=event, user_id=user_id, policy=self.policy, tz=tz, now=now)
        store.settle(session=session, event_id=event_id, user_id=user_id)

    # ---------------------------------------------------------- Slack reads, cached

    async def _user_of(self, email: str) -> str | None:
        hit = self._cached(self._emails, email)
        if hit is not False:
            return hit
        try:
            data = await self.read("users_lookupByEmail", email=email)
        except SlackRefused as exc:
            error = exc.error
            # docs.slack.dev's users.lookupByEmail page says users_not_found; older copies of the
            # method's docs (the hex.pm slack package's users.lookupByEmail.json) say user_not_found.
            if error in ("users_not_found", "user_not_found"):
                self._put(self._emails, email, None)
                log.info("usage events: an event's email is not a member of the workspace; dropped")
                return None
            raise SlackUnanswered(f"users.lookupByEmail: {error}") from None
        except (OSError, asyncio.TimeoutError) as exc:
            raise SlackUnanswered(f"users.lookupByEmail: {type(exc).__name__}") from None
        member = data.get("user") or {}
        user = member.get("id") if isinstance(member.get("id"), str) else None
        self._put(self._emails, email, user)
        if user and isinstance(member.get("tz"), str):
            self._put(self._zones, user, member["tz"])
        return user

    async def _zone(self, user: str) -> str | None:
        hit = self._cached(self._zones, user)
        if hit is not False:
            return hit
        try:
            data = await self.read("users_info", user=user)
        except SlackRefused as exc:
            error = exc.error
            if error not in ("user_not_found", "users_not_found"):
                raise SlackUnanswered(f"users.info: {error}") from None
            data = {}  # a person Slack does not know (deleted since): asked on UTC's clock
        except (OSError, asyncio.TimeoutError) as exc:
            raise SlackUnanswered(f"users.info: {type(exc).__name__}") from None
        tz = (data.get("user") or {}).get("tz")
        tz = tz if isinstance(tz, str) else None
        self._put(self._zones, user, tz)
        return tz

    @staticmethod
    def _cached(cache: dict, key: str):
        hit = cache.get(key)
        if hit is None or time.monotonic() - hit[0] > CACHE_SECONDS:
            return False
        return hit[1]

    @staticmethod
    def _put(cache: dict, key: str, value) -> None:
        if len(cache) >= CACHE_SIZE:
            cache.pop(next(iter(cache)))
        cache[key] = (time.monotonic(), value)

