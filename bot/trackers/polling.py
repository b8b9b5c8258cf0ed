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
import base64
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import quote, urlsplit

import httpx
from sqlmodel import Session, col, or_, select

from bot.runtime.config import Policy, Settings
from bot.trackers.events import IssueEvent, Outcome
from bot.trackers import Tracker
from storage.database import Database, DatabaseUnavailable
from storage.models import TrackerLink, as_utc

log = logging.getLogger(__name__)

REOPEN_WINDOW = timedelta(days=14)  # closed links are still checked this long, for reopenings
MAX_ISSUES_PER_RUN = 300  # per tracker; the least recently checked go first
DEFAULT_BACKOFF = 60.0  # seconds, when a rate-limited answer does not say how long
MAX_BACKOFF = 24 * 3600.0
TIMEOUT = httpx.Timeout(15.0)
USER_AGENT = "platform-feedback (issue polling)"

LINEAR_QUERY = "query Issue($id: String!) { issue(id: $id) { identifier url title state { type } completedAt canceledAt } }"

# Apply one event in a session: handlers.closing.apply_and_queue(session=, event=, policy=).
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


def record_answer(*, session: Session, due: Due, answer: Answer, now: datetime, policy: Policy, apply: Apply) -> int:
    """Apply what the tracker said about one issue and remember when we asked (and its ETag)."""
    applied = sum(1 for event in answer.events if apply(session=session, event=event, policy=policy))
    links = session.exec(select(TrackerLink).where(TrackerLink.tracker == due.tracker, TrackerLink.key == due.key)).all()
    for link in links:
        link.checked_at = now
        if not answer.unchanged:
            link.etag = answer.etag[:255] if answer.etag else None
        session.add(link)
    return applied


# ------------------------------------------------------------------ reading each tracker's answer


def github_events(key: str, issue: dict) -> list[IssueEvent]:
    """GET /repos/{owner}/{repo}/issues/{n}: issues and pull requests (``pull_request`` set) alike."""
    url, title = issue.get("html_url"), issue.get("title")
    if issue.get("state") == "open":
        return [IssueEvent(Tracker.github, key, Outcome.reopened, url, title)]
    if issue.get("state") != "closed":
        return []
    pr = issue.get("pull_request")
    if pr is not None:
        # A pull request fixes something only when merged; closed unmerged, nothing was fixed.
        return [IssueEvent(Tracker.github, key, Outcome.fixed, url, title)] if pr.get("merged_at") else []
    reason = issue.get("state_reason")
    outcome = Outcome.not_planned if reason in ("not_planned", "duplicate") else Outcome.fixed
    return [IssueEvent(Tracker.github, key, outcome, url, title)]


def gitlab_events(key: str, item: dict) -> list[IssueEvent]:
    """An issue (opened/closed) or a merge request (opened/closed/locked/merged)."""
    url, title, state = item.get("web_url"), item.get("title"), item.get("state")
    if state in ("opened", "reopened"):
        return [IssueEvent(Tracker.gitlab, key, Outcome.reopened, url, title)]
    if "!" in key:
        return [IssueEvent(Tracker.gitlab, key, Outcome.fixed, url, title)] if state == "merged" else []
    return [IssueEvent(Tracker.gitlab, key, Outcome.fixed, url, title)] if state == "closed" else []


def jira_events(key: str, issue: dict, *, base_url: str, not_planned: frozenset[str]) -> list[IssueEvent]:
    """A Jira issue is closed when it has a resolution; which one says fixed or not planned."""
    fields = issue.get("fields") or {}
    url, title = f"{base_url}/browse/{key}", fields.get("summary")
    resolution = fields.get("resolution")
    if not resolution:
        return [IssueEvent(Tracker.jira, key, Outcome.reopened, url, title)]
    name = str(resolution.get("name") or "").strip().lower()
    outcome = Outcome.not_planned if name in not_planned else Outcome.fixed
    return [IssueEvent(Tracker.jira, key, outcome, url, title)]


def linear_events(key: str, issue: dict) -> list[IssueEvent]:
    url, title = issue.get("url"), issue.get("title")
    state = (issue.get("state") or {}).get("type")
    if state == "completed":
        return [IssueEvent(Tracker.linear, key, Outcome.fixed, url, title)]
    if state == "canceled":
        return [IssueEvent(Tracker.linear, key, Outcome.not_planned, url, title)]
    if state:
        return [IssueEvent(Tracker.linear, key, Outcome.reopened, url, title)]
    return []


# ------------------------------------------------------------------ rate limits


def _seconds_until(value: str | None, now: float) -> float | None:
    """A reset time as trackers give it: epoch seconds or milliseconds, an HTTP date, or ISO 8601."""
    if not value:
        return None
    value = value.strip()
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if number > 1e11:  # epoch milliseconds (Linear)
            return number / 1000 - now
        if number > 1e9:  # epoch seconds (GitHub, GitLab)
            return number - now
        return number  # already a number of seconds
    for parse in (parsedate_to_datetime, datetime.fromisoformat):
        try:
            when = parse(value)
        except (TypeError, ValueError, IndexError):
            continue
        return as_utc(when).timestamp() - now
    return None


def _remaining(headers: httpx.Headers) -> str | None:
    for name in ("x-ratelimit-remaining", "ratelimit-remaining", "x-ratelimit-requests-remaining"):
        if name in headers:
            return headers[name].strip()
    return None


def _reset(headers: httpx.Headers) -> str | None:
    for name in ("x-ratelimit-reset", "ratelimit-reset", "x-ratelimit-requests-reset"):
        if name in headers:
            return headers[name]
    return None


def rate_limit_wait(response: httpx.Response, now: float) -> float | None:
    """None if the answer is not a rate limit; else how long to wait (None inside: not said)."""
    headers = response.headers
    spent = _remaining(headers) == "0"
    limited = response.status_code == 429 or (response.status_code == 403 and (spent or "retry-after" in headers))
    if not limited and response.status_code == 400 and "ratelimited" in response.text.lower():
        limited = True  # Linear: a GraphQL error with extensions.code RATELIMITED
    if not limited:
        return None
    waits = [_seconds_until(headers.get("retry-after"), now)]
    if spent:
        waits.append(_seconds_until(_reset(headers), now))
    waits = [w for w in waits if w is not None and w > 0]
    return max(waits) if waits else 0.0


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
        s = self.settings
        configured = {
            Tracker.github: bool(s.github_token and s.github_api_url),
            Tracker.gitlab: bool(s.gitlab_token and s.gitlab_api_url),
            Tracker.jira: bool(s.jira_base_url and s.jira_api_token),
            Tracker.linear: bool(s.linear_api_key and s.linear_api_url),
        }
        return [t for t, ok in configured.items() if ok]

    def _web_host(self, tracker: Tracker) -> str | None:
        """Where this tracker's issue links live; links elsewhere are another instance's."""
        s = self.settings
        api = {Tracker.github: s.github_api_url, Tracker.gitlab: s.gitlab_api_url, Tracker.jira: s.jira_base_url}.get(tracker)
        if not api:
            return None  # Linear: linear.app only
        host = urlsplit(api).netloc.lower()
        if tracker == Tracker.github and host.startswith("api."):
            host = host[4:]  # api.github.com -> github.com, api.acme.ghe.com -> acme.ghe.com
        return host

    def _ours(self, tracker: Tracker, urls: list[str]) -> bool:
        host = self._web_host(tracker)
        if host is None:
            return True
        return any(urlsplit(url).netloc.lower().removeprefix("www.") == host for url in urls)

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
        method, url, headers, body = self._request(due)
        if due.etag and method == "GET":
            headers["If-None-Match"] = due.etag
        response = await self._send(http, tracker, key, method, url, headers, body, result)
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
            events = self._events(due, data)
            if tracker == Tracker.github and data.get("pull_request") is not None and "merged_at" not in data["pull_request"]:
                events = await self._github_pr_merged(http, due, data, result)  # older GitHub Enterprise
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
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

    def _request(self, due: Due) -> tuple[str, str, dict, dict | None]:
        s, key = self.settings, due.key
        if due.tracker == Tracker.github:
            repo, number = key.rsplit("#", 1)
            owner, name = repo.split("/", 1)
            url = f"{s.github_api_url.rstrip('/')}/repos/{quote(owner)}/{quote(name)}/issues/{int(number)}"
            return "GET", url, {"Authorization": f"Bearer {s.github_token}", "Accept": "application/vnd.github+json",
                                "X-GitHub-Api-Version": "2022-11-28"}, None
        if due.tracker == Tracker.gitlab:
            sep = "!" if "!" in key else "#"
            project, iid = key.rsplit(sep, 1)
            kind = "merge_requests" if sep == "!" else "issues"
            url = f"{s.gitlab_api_url.rstrip('/')}/projects/{quote(project, safe='')}/{kind}/{int(iid)}"
            return "GET", url, {"PRIVATE-TOKEN": s.gitlab_token}, None
        if due.tracker == Tracker.jira:
            url = f"{s.jira_base_url.rstrip('/')}/rest/api/2/issue/{quote(key)}?fields=resolution,status,summary"
            if s.jira_email:  # Jira Cloud: email and API token
                auth = "Basic " + base64.b64encode(f"{s.jira_email}:{s.jira_api_token}".encode()).decode()
            else:  # Jira Data Center: a personal access token
                auth = f"Bearer {s.jira_api_token}"
            return "GET", url, {"Authorization": auth, "Accept": "application/json"}, None
        return "POST", s.linear_api_url, {"Authorization": s.linear_api_key, "Content-Type": "application/json"}, {
            "query": LINEAR_QUERY, "variables": {"id": key}}

    def _events(self, due: Due, data: dict) -> list[IssueEvent]:
        if due.tracker == Tracker.github:
            return github_events(due.key, data)
        if due.tracker == Tracker.gitlab:
            return gitlab_events(due.key, data)
        if due.tracker == Tracker.jira:
            not_planned = frozenset(r.lower() for r in self.policy.closing.jira_not_planned)
            return jira_events(due.key, data, base_url=self.settings.jira_base_url.rstrip("/"), not_planned=not_planned)
        issue = (data.get("data") or {}).get("issue")
        if issue is None:
            codes = [((e.get("extensions") or {}).get("code") or "error") for e in data.get("errors") or []]
            log.info("linear %s: no such issue visible to the API key (%s)", due.key, ", ".join(codes) or "null")
            return []
        return linear_events(due.key, issue)

    async def _github_pr_merged(self, http: httpx.AsyncClient, due: Due, issue: dict, result: PollResult) -> list[IssueEvent]:
        if issue.get("state") != "closed":
            return github_events(due.key, issue)
        _method, url, headers, _body = self._request(due)
        url = url.rsplit("/issues/", 1)[0] + "/pulls/" + due.key.rsplit("#", 1)[1]
        response = await self._send(http, due.tracker, due.key, "GET", url, headers, None, result)
        if response.status_code != 200:
            return []
        merged = bool(response.json().get("merged"))
        return [IssueEvent(Tracker.github, due.key, Outcome.fixed, issue.get("html_url"), issue.get("title"))] if merged else []
