"""Polling trackers, for teams whose trackers cannot reach the bot with webhooks.

Each run asks every tracker that has API credentials for the state of the issues linked to data
points: open links, and links closed within ``REOPEN_WINDOW`` (to catch a reopening). The answer
becomes the same ``IssueEvent`` a webhook would give and is applied by the same function, in one
transaction per issue key, so news we already have changes nothing.

Gentle on the trackers: one request per issue key, one at a time per tracker, conditional
(``If-None-Match`` with the ETag of the last answer; 304 means unchanged). A rate-limited answer
(429, or 403 with ``Retry-After`` or a spent ``x-ratelimit-remaining``) stops that tracker until
the time the tracker names, or for a minute doubling per repeat when it names none.

Tokens travel only in request headers; nothing here logs a header, a URL with credentials, or a
response body.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import httpx
from sqlmodel import Session, col, or_, select

from bot.policy import Policy
from bot.runtime.settings import Settings
from bot.trackers import MODULES, IssueEvent, Malformed, Tracker
from bot.trackers.rate_limits import _remaining, _reset, _seconds_until, rate_limit_wait  # noqa: F401 (tests read them here)
from storage import links as link_queries
from storage.database import Database, DatabaseUnavailable
from storage.models import TrackerLink, as_utc

log = logging.getLogger(__name__)

JOB = "closing.poll"  # the scheduled job that polls
KEEP_RUNS = timedelta(days=2)  # claims of past polls are pruned after this
REOPEN_WINDOW = timedelta(days=14)  # closed links are still checked this long, for reopenings
MAX_ISSUES_PER_RUN = 300  # per tracker; the least recently checked go first
DEFAULT_BACKOFF = 60.0  # seconds, when a rate-limited answer does not say how long
MAX_BACKOFF = 24 * 3600.0
TIMEOUT = httpx.Timeout(15.0)
USER_AGENT = "platform-feedback (issue polling)"

# Apply one event in a session: bot.closing.service.apply_and_queue(session=, event=, policy=).
Apply = Callable[..., object]


@dataclass(frozen=True)
class Due:
    """One issue to ask about, with what we last heard of it."""

    tracker: Tracker
    key: str
    etag: str | None  # sent as If-None-Match: the one every link of the issue holds, or None


@dataclass
class Answer:
    """What one request told us. ``events`` empty with ``etag`` None and ``unchanged`` False: nothing usable."""

    events: list[IssueEvent] = field(default_factory=list)
    etag: str | None = None
    unchanged: bool = False  # 304: the issue is as we last heard it
    checked: bool = True  # False: no answer about the issue (do not touch checked_at)


@dataclass
class PollResult:
    requests: int = 0
    not_modified: int = 0
    applied: int = 0  # closures that changed something (reopenings are not counted)
    rate_limited: list[str] = field(default_factory=list)  # trackers that were (or are still) backing off


class RateLimited(Exception):
    def __init__(self, wait: float | None):
        self.wait = wait


class TrackerDown(Exception):
    """A transport error or a server error: stop asking this tracker for this run."""


# ------------------------------------------------------------------ database (worker threads)


def due_issues(*, session: Session, trackers: list[Tracker], now: datetime, ours: Callable[[Tracker, list[str]], bool],
               limit: int = MAX_ISSUES_PER_RUN) -> list[Due]:
    """The issues to ask about, per tracker the least recently checked first. ``ours`` says
    whether links with these URLs belong to the tracker instance we poll."""
    links = session.exec(
        select(TrackerLink).where(
            col(TrackerLink.tracker).in_([str(t) for t in trackers]),
            or_(TrackerLink.closed == False, col(TrackerLink.closed_at) >= now - REOPEN_WINDOW),  # noqa: E712
        )
    ).all()
    grouped: dict[tuple[str, str], list[TrackerLink]] = {}
    for link in links:
        grouped.setdefault((link.tracker, link.key), []).append(link)
    never = datetime.min.replace(tzinfo=timezone.utc)

    def last_checked(group: list[TrackerLink]) -> datetime:
        return min((as_utc(link.checked_at) if link.checked_at else never) for link in group)

    due: list[Due] = []
    per_tracker: dict[str, int] = {}
    for (tracker, key), group in sorted(grouped.items(), key=lambda item: (last_checked(item[1]), item[0])):
        if per_tracker.get(tracker, 0) >= limit or not ours(Tracker(tracker), [link.url for link in group]):
            continue
        per_tracker[tracker] = per_tracker.get(tracker, 0) + 1
        etags = {link.etag for link in group}
        due.append(Due(Tracker(tracker), key, etags.pop() if len(etags) == 1 else None))
    return due


def prune_runs(*, session: Session, occurrence: datetime) -> None:
    """Runs in the claim's transaction: a poll every few minutes would otherwise pile up claims."""
    link_queries.prune_runs(session=session, job=JOB, before=occurrence - KEEP_RUNS)


def record_answer(*, session: Session, due: Due, answer: Answer, now: datetime, policy: Policy, apply: Apply) -> int:
    """Apply what the tracker said about one issue and remember when we asked (and its ETag).
    The answer's ids fill in the links' identity; a moved issue's links take its new key."""
    applied = sum(1 for event in answer.events if getattr(apply(session=session, event=event, policy=policy), "closure", None))
    keys = [due.key, *(e.key for e in answer.events)]
    links = session.exec(select(TrackerLink).where(TrackerLink.tracker == due.tracker, col(TrackerLink.key).in_(keys))).all()
    for link in links:
        link.checked_at = now
        if not answer.unchanged:
            link.etag = answer.etag[:255] if answer.etag else None
        session.add(link)
    return applied


def ours(settings: Settings, tracker: Tracker, urls: list[str]) -> bool:
    """Whether issue links with these URLs live on the tracker instance the settings' API serves
    (links elsewhere are another instance's: never asked about with this token)."""
    api = {Tracker.github: settings.github_api_url, Tracker.gitlab: settings.gitlab_api_url,
           Tracker.jira: settings.jira_base_url}.get(tracker)
    if not api:
        return True  # Linear: linear.app only
    host = urlsplit(api).netloc.lower()
    if tracker == Tracker.github and host.startswith("api."):
        host = host[4:]  # api.github.com -> github.com, api.acme.ghe.com -> acme.ghe.com
    return any(urlsplit(url).netloc.lower().removeprefix("www.") == host for url in urls)


# ------------------------------------------------------------------ the poller


class Poller:
    """Asks the trackers; ``run`` is one polling pass. Keeps, between runs, when each tracker may
    be asked again. One ``httpx.AsyncClient`` per pass unless one is given (tests)."""

    def __init__(self, *, settings: Settings, policy: Policy, db: Database, apply: Apply,
                 http: httpx.AsyncClient | None = None, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.policy = policy
        self.db = db
        self.apply = apply
        self.http = http
        self.clock = clock
        self.blocked_until: dict[Tracker, float] = {}
        self._strikes: dict[Tracker, int] = {}

    # -------------------------------------------------------------- configuration

    @property
    def trackers(self) -> list[Tracker]:
        """Trackers with API credentials set."""
        return [t for t, module in MODULES.items() if module.poll_configured(self.settings)]

    def _ours(self, tracker: Tracker, urls: list[str]) -> bool:
        return ours(self.settings, tracker, urls)

    # -------------------------------------------------------------- a pass

    async def run(self, occurrence: datetime | None = None) -> PollResult:
        trackers = self.trackers
        result = PollResult()
        if not trackers:
            return result
        now = self.clock()
        when = datetime.fromtimestamp(now, timezone.utc)
        due = await self.db.run(due_issues, trackers=trackers, now=when, ours=self._ours)
        by_tracker: dict[Tracker, list[Due]] = {}
        for item in due:
            by_tracker.setdefault(item.tracker, []).append(item)
        if not by_tracker:
            return result
        if self.http is not None:
            await self._poll_all(self.http, by_tracker, result)
        else:
            async with httpx.AsyncClient(timeout=TIMEOUT, headers={"User-Agent": USER_AGENT}) as http:
                await self._poll_all(http, by_tracker, result)
        log.info("polled trackers: %d request(s), %d unchanged, %d closure(s) applied%s", result.requests,
                 result.not_modified, result.applied,
                 f", backing off: {', '.join(result.rate_limited)}" if result.rate_limited else "")
        return result

    async def _poll_all(self, http: httpx.AsyncClient, by_tracker: dict[Tracker, list[Due]], result: PollResult) -> None:
        outcomes = await asyncio.gather(
            *(self._poll_tracker(http, tracker, items, result) for tracker, items in by_tracker.items()),
            return_exceptions=True,
        )
        # Every tracker finishes its pass before a failure in one of them is reported.
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _poll_tracker(self, http: httpx.AsyncClient, tracker: Tracker, items: list[Due], result: PollResult) -> None:
        for due in items:
            if self.clock() < self.blocked_until.get(tracker, 0.0):
                result.rate_limited.append(str(tracker))
                return
            try:
                answer = await self._ask(http, due, result)
            except RateLimited as limited:
                self._back_off(tracker, limited.wait)
                result.rate_limited.append(str(tracker))
                return
            except TrackerDown:
                return
            if not answer.checked:
                continue
            try:
                applied = await self.db.run(record_answer, due=due, answer=answer,
                                            now=datetime.fromtimestamp(self.clock(), timezone.utc),
                                            policy=self.policy, apply=self.apply)
            except DatabaseUnavailable as exc:
                log.warning("polling %s stopped: database unavailable: %s", tracker, exc)
                return
            result.applied += applied

    def _back_off(self, tracker: Tracker, wait: float | None) -> None:
        strikes = self._strikes.get(tracker, 0) + 1
        self._strikes[tracker] = strikes
        if not wait:
            # Said nothing: a minute, doubling while it keeps happening (GitHub's advice).
            wait = DEFAULT_BACKOFF * 2 ** (strikes - 1)
        wait = min(wait, MAX_BACKOFF)
        self.blocked_until[tracker] = self.clock() + wait
        log.warning("%s API rate limit reached: not asking it again for %d s", tracker, round(wait))

    # -------------------------------------------------------------- one request

    async def _ask(self, http: httpx.AsyncClient, due: Due, result: PollResult) -> Answer:
        tracker, key = due.tracker, due.key
        request = MODULES[tracker].poll_request(self.settings, key)
        headers = dict(request.headers)
        if due.etag and request.method == "GET":
            headers["If-None-Match"] = due.etag
        response = await self._send(http, tracker, key, request.method, request.url, headers, request.json, result)
        if response.status_code == 304:
            result.not_modified += 1
            return Answer(unchanged=True)
        if response.status_code in (404, 410):
            log.info("%s %s: not found (HTTP %d); deleted, moved, or the token cannot see it", tracker, key, response.status_code)
            return Answer()
        if response.status_code in (401, 403):
            log.warning("%s %s: HTTP %d; check the %s credentials", tracker, key, response.status_code, tracker)
            if response.status_code == 401:
                raise TrackerDown()  # the same token will fail for every other issue too
            return Answer()
        if response.status_code >= 500:
            log.warning("%s %s: HTTP %d; trying again next run", tracker, key, response.status_code)
            raise TrackerDown()
        if response.status_code != 200:
            log.warning("%s %s: unexpected HTTP %d", tracker, key, response.status_code)
            return Answer(checked=False)
        try:
            data = response.json()
            events = MODULES[tracker].poll_events(key, data, self.settings, self.policy)
            if tracker == Tracker.linear and not events:
                codes = [str((e.get("extensions") or {}).get("code") or "error") for e in data.get("errors") or []]
                log.info("linear %s: no such issue visible to the API key (%s)", key, ", ".join(codes) or "null")
        except (ValueError, TypeError, AttributeError, KeyError, RecursionError, Malformed) as exc:
            log.warning("%s %s: unreadable answer (%s)", tracker, key, type(exc).__name__)
            return Answer(checked=False)
        return Answer(events=events, etag=response.headers.get("etag"))

    async def _send(self, http: httpx.AsyncClient, tracker: Tracker, key: str, method: str, url: str,
                    headers: dict, body: dict | None, result: PollResult) -> httpx.Response:
        result.requests += 1
        try:
            response = await http.request(method, url, headers=headers, json=body)
        except httpx.HTTPError as exc:
            log.warning("%s %s: %s; trying again next run", tracker, key, type(exc).__name__)
            raise TrackerDown() from None
        wait = rate_limit_wait(response, self.clock())
        if wait is not None:
            raise RateLimited(wait)
        self._strikes.pop(tracker, None)
        if _remaining(response.headers) == "0":  # this answer was the last one allowed: wait for the reset
            reset = _seconds_until(_reset(response.headers), self.clock())
            if reset and reset > 0:
                self.blocked_until[tracker] = self.clock() + min(reset, MAX_BACKOFF)
        return response
