"""Creating a report's tracker issue from Slack, exactly once, and linking it at once.

The flow (``Creator.create``), for one report and one project of the policy:

1. **Intent** (one transaction, ``claim``): the ``issue_intent`` row for (report, tracker,
   project) is made or locked. Linked already: the link is answered, nothing is created. A call
   under way (``pending`` since less than ``PENDING_SECONDS``, e.g. a double click, Slack's retry,
   another instance): "being created", nothing more. Otherwise it is ``pending`` now, counted as
   one more attempt, with the issue's title and body; the body ends with the intent's random
   marker, the same in every attempt.
2. **Reconcile first** when an earlier attempt may have made the issue (any attempt after the
   first: it timed out, failed with a 5xx, or its process died): the tracker's newest issues are
   searched for the marker (``find_request``/``find_by_marker`` of the tracker's module), and a
   found issue is linked instead of creating another.
3. **Create** (the tracker module's ``create_request``; Linear: the team's id first). A timeout, a
   transport error or a 5xx may have created it all the same: the marker is searched for again
   before the attempt is given up.
4. **Link** (one transaction, ``finish_linked``): the intent becomes ``linked`` with the issue's
   key, URL and stable ids; the report is linked as ``/platform-feedback link`` does
   (``triage.link`` with its reporters' DMs), the link takes the stable ids at once
   (``closing.apply_issue_event`` with a ``moved`` event, as identity at link time does), and the
   card is redrawn through the outbox. Or ``finish_failed``: ``failed`` with one line saying what
   to do, nothing linked.

Bounds: each request ``TIMEOUT`` (10 s); a 429's Retry-After is waited out once when at most
``MAX_WAIT`` (5 s), else answered "try again in N s"; the whole attempt is cut off at
``ATTEMPT_SECONDS`` (90 s), under ``PENDING_SECONDS`` (120 s), so attempts never overlap. The modal is acked before any of this
(see ``bot.issue_create.listeners``). Tokens travel only in headers; nothing here logs a body.
"""

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlmodel import Session, col, select

from bot.closing import service as closing
from bot.issue_create import markup
from bot.issue_create.draft import Draft
from bot.issue_create.ids import TRACKER_NAMES as NAMES
from bot.issue_create.policy import Project
from bot.policy import Policy
from bot.references import format_ref
from bot.runtime.context import Deps
from bot.trackers import MODULES, IssueEvent, IssueRef, Outcome, Tracker
from bot.trackers.base import Created, IssueDraft, PollRequest
from bot.trackers.rate_limits import rate_limit_wait
from bot.triage import flows as triage_flow
from bot.triage import service as triage
from bot.triage.service import TriageError
from storage.database import insert_unique
from storage.models import FrictionPoint, IssueIntent, Reporter, Status, utcnow

log = logging.getLogger(__name__)

TIMEOUT = 10.0  # seconds per request
MAX_WAIT = 5.0  # seconds: a longer Retry-After is answered "try again in N s"
ATTEMPT_SECONDS = 90  # one attempt is cut off after this (then it counts as unsure: the next one searches first)
PENDING_SECONDS = 120  # an attempt older than this is dead (its process gone): a new one may start. Longer than
# ATTEMPT_SECONDS, so two attempts never overlap, and a new one always finds the old one's issue by its marker.
USER_AGENT = "platform-feedback (issue create)"

# The setting(s) a tracker's API calls need, as docs/settings.md names them.
TOKENS = {"github": "GITHUB_TOKEN", "gitlab": "GITLAB_TOKEN", "jira": "JIRA_BASE_URL and JIRA_API_TOKEN", "linear": "LINEAR_API_KEY"}


# ------------------------------------------------------------------ what the modal shows


def _check_open(point: FrictionPoint | None, prefix: str) -> FrictionPoint:
    if point is None:
        raise TriageError("That report no longer exists.")
    if point.duplicate_of_id is not None:
        raise TriageError(f"This report was merged into {format_ref(prefix, point.duplicate_of_id)}; create the issue from that one.")
    if point.status in (Status.resolved, Status.wont_fix):
        raise TriageError(f"{format_ref(prefix, point.id)} is closed; reopen it before creating an issue for it.")
    return point


def facts_of(*, session: Session, point: FrictionPoint, policy: Policy) -> markup.Facts:
    """Area, severity, time lost, how many people (merged duplicates' reporters included, once
    each), the Slack messages (the report's and its duplicates'), and the duplicates' refs."""
    prefix = policy.reference_prefix
    duplicates = list(session.exec(select(FrictionPoint).where(FrictionPoint.duplicate_of_id == point.id)
                                   .order_by(col(FrictionPoint.id))).all())
    ids = [point.id, *(d.id for d in duplicates)]
    people = len(set(session.exec(select(Reporter.user_id).where(col(Reporter.friction_point_id).in_(ids))).all()))
    links = [(format_ref(prefix, p.id), p.permalink) for p in (point, *duplicates) if p.permalink]
    return markup.Facts(ref=format_ref(prefix, point.id), area=[policy.taxonomy.label(c) for c in point.categories],
                        severity=str(point.severity), minutes_lost=point.minutes_lost, people=max(people, 1),
                        links=links[:20], duplicates=[format_ref(prefix, d.id) for d in duplicates][:50])


def draft(*, session: Session, policy: Policy, point_id: int) -> Draft:
    """What the modal opens with. Raises ``TriageError`` (one line) for a report that is gone,
    merged or closed."""
    prefix = policy.reference_prefix
    point = _check_open(session.get(FrictionPoint, point_id), prefix)
    first_line = point.text.strip().splitlines()[0] if point.text.strip() else format_ref(prefix, point.id)
    return Draft(point_id=point.id, ref=format_ref(prefix, point.id), title=markup.title(first_line), description=point.text[:3000],
                 facts=facts_of(session=session, point=point, policy=policy), projects=list(policy.issues.projects),
                 default=policy.issues.default_for(point.categories), linked=[ln.key for ln in point.links])


# ------------------------------------------------------------------ the intent


@dataclass(frozen=True)
class Claim:
    """``state``: go (this call creates), busy (another call is creating it), linked (it exists)."""

    state: str
    intent_id: int
    tracker: str
    project: str
    marker: str
    attempts: int = 1
    draft: IssueDraft | None = None
    key: str | None = None
    url: str | None = None
    actor: str | None = None


def claim(*, session: Session, policy: Policy, point_id: int, project: Project, title: str, description: str,
          labels: list[str], actor: str, now: datetime | None = None) -> Claim:
    """Make or take the report's intent for ``project`` (see the module docstring, step 1).
    Raises ``TriageError`` for a report that cannot get an issue now."""
    now = now or utcnow()
    point = _check_open(triage.lock_point(session=session, point_id=point_id), policy.reference_prefix)
    where = (IssueIntent.friction_point_id == point.id, IssueIntent.tracker == project.tracker, IssueIntent.project == project.project)
    intent = session.exec(select(IssueIntent).where(*where).with_for_update()).first()
    if intent is None:
        intent = IssueIntent(friction_point_id=point.id, tracker=project.tracker, project=project.project, actor=actor,
                             title="", body="", marker=f"pf-{secrets.token_hex(8)}")
        if not insert_unique(session, intent):  # made by a twin an instant ago (it holds the lock now)
            intent = session.exec(select(IssueIntent).where(*where).with_for_update()).one()
    if intent.state == "linked":
        return Claim("linked", intent.id, intent.tracker, intent.project, intent.marker, intent.attempts, key=intent.key,
                     url=intent.url, actor=intent.actor)
    if intent.state == "pending" and intent.claimed_at is not None and intent.claimed_at > now - timedelta(seconds=PENDING_SECONDS):
        return Claim("busy", intent.id, intent.tracker, intent.project, intent.marker, intent.attempts, actor=intent.actor)
    facts = facts_of(session=session, point=point, policy=policy)
    intent.title = markup.title(title) or facts.ref
    intent.body = markup.body(project.tracker, description, facts, intent.marker)
    intent.labels = json.dumps(labels)
    intent.issue_type = project.issue_type if project.tracker == "jira" else None
    intent.state, intent.claimed_at, intent.attempts, intent.actor, intent.error = "pending", now, intent.attempts + 1, actor, None
    intent.updated_at = now
    session.add(intent)
    session.flush()
    issue = IssueDraft(title=intent.title, body=intent.body, labels=tuple(labels), issue_type=intent.issue_type)
    return Claim("go", intent.id, intent.tracker, intent.project, intent.marker, intent.attempts, draft=issue, actor=actor)


def finish_linked(*, session: Session, policy: Policy, intent_id: int, created: Created, actor: str) -> FrictionPoint:
    """The issue exists: the intent records it, the report is linked with the issue's stable ids,
    its reporters are told as for any link, and its card is redrawn (all in this transaction)."""
    intent = session.exec(select(IssueIntent).where(IssueIntent.id == intent_id).with_for_update()).one()
    tracker = Tracker(intent.tracker)
    point_id = intent.friction_point_id
    merged_into = session.exec(select(FrictionPoint.duplicate_of_id).where(FrictionPoint.id == point_id)).first()
    if merged_into:  # merged while the tracker was asked: the issue belongs to the report it joined
        point_id = merged_into
    intent.state, intent.key, intent.url = "linked", created.key, created.url[:3000]
    intent.issue_id, intent.project_id, intent.error, intent.updated_at = created.issue_id, created.project_id, None, utcnow()
    session.add(intent)
    applied = triage_flow.apply_and_notify(session=session, action=triage.link, prefix=policy.reference_prefix,
                                           point_id=point_id, actor=actor,
                                           issue=IssueRef(tracker, created.key, created.url[:3000]))
    session.flush()
    if created.issue_id:
        closing.apply_issue_event(session=session, event=IssueEvent(tracker, created.key, Outcome.moved, created.url,
                                                                   issue_id=created.issue_id, project_id=created.project_id))
    triage.sync_card(session=session, point=applied.point, why=f"issue-created:{intent.id}")
    return applied.point


def finish_failed(*, session: Session, intent_id: int, error: str) -> None:
    """Nothing was made (or none can be found): the intent is ``failed`` with what to do; a new
    attempt may start at once (it searches for the marker first)."""
    intent = session.get(IssueIntent, intent_id)
    if intent is not None and intent.state == "pending":
        intent.state, intent.error, intent.updated_at = "failed", error[:1000], utcnow()
        session.add(intent)


# ------------------------------------------------------------------ the calls


@dataclass(frozen=True)
class Result:
    """What a host is told: ``ok`` with the issue's ``key``/``url``; else ``message`` (one line)."""

    ok: bool
    message: str
    key: str | None = None
    url: str | None = None
    busy: bool = False


class Failed(Exception):
    """An attempt that made nothing we can find: ``str()`` is the line for the host."""


def configured(settings, tracker: str) -> bool:
    return MODULES[Tracker(tracker)].poll_configured(settings)


def problem(tracker: str, project: str, status: int, answer: object, wait: float | None = None) -> str:
    """One line for the host from the tracker's error answer (its own words where it gave them)."""
    name, detail = NAMES[tracker], MODULES[Tracker(tracker)].create_problem(status, answer)
    said = f" ({detail})" if detail else ""
    if wait is not None:
        return f"{name} is rate limiting the bot: try again in {max(1, round(wait))} s."
    if status == 401:
        return f"{name} refused the token (HTTP 401){said}: set a valid {TOKENS[tracker]} and try again."
    if status == 403:
        return f"{name} does not let the token create issues in {project} (HTTP 403){said}: give it that access, or pick another project."
    if status == 404:
        return f"{name} has no project {project} the token can see (HTTP 404){said}: check issues.projects in the policy."
    if status == 410:
        return f"Issues are turned off in {project} (HTTP 410): turn them on, or pick another project."
    if status >= 500:
        return f"{name} had an error (HTTP {status}) and no issue was made: try again in a minute."
    if "required" in detail.lower():
        return f"{name} refused the issue: the project requires a field the bot does not fill{said}. Make it optional, or pick another project."
    http = f" (HTTP {status})" if status != 200 else ""  # GraphQL (Linear) refuses with 200 and ``errors``
    return f"{name} refused the issue{http}{said}: fix that, or pick another project."


def creator_for(deps: Deps) -> "Creator":
    """The app's one creator (``deps.once(creator_for)``), for the modal's listener."""
    return Creator(settings=deps.settings, policy=deps.policy, db=deps.db)


class Creator:
    """Runs ``create`` for the listeners (and tests): its own ``httpx.AsyncClient`` per call unless given one."""

    def __init__(self, *, settings, policy: Policy, db, http: httpx.AsyncClient | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.settings, self.policy, self.db, self.http, self.sleep = settings, policy, db, http, sleep

    async def create(self, *, point_id: int, project: Project, title: str, description: str, labels: list[str], actor: str) -> Result:
        """Create (or find) and link the report's issue in ``project``; the ``Result`` to show.
        Raises ``TriageError`` (the report cannot get one now) and ``DatabaseUnavailable``."""
        if not configured(self.settings, project.tracker):
            return Result(False, f"{NAMES[project.tracker]} is not connected: set {TOKENS[project.tracker]} (docs/settings.md), then try again.")
        got = await self.db.run(claim, policy=self.policy, point_id=point_id, project=project, title=title,
                                description=description, labels=labels, actor=actor)
        if got.state == "linked":
            return Result(True, f"Already created: {got.key}.", got.key, got.url)
        if got.state == "busy":
            return Result(False, f"<@{got.actor}> is creating this issue right now; the card shows it once it exists.", busy=True)
        try:
            found = await asyncio.wait_for(self._attempt(got), ATTEMPT_SECONDS)
        except TimeoutError:
            failed = (f"{NAMES[got.tracker]} did not answer in time, and the bot cannot tell yet whether the issue was made: "
                      "try again in a minute (the bot looks for it first, so no second issue is made).")
            await self.db.run(finish_failed, intent_id=got.intent_id, error=failed)
            return Result(False, failed)
        except Failed as failed:
            await self.db.run(finish_failed, intent_id=got.intent_id, error=str(failed))
            return Result(False, str(failed))
        except Exception:
            log.exception("%s %s: creating the issue failed", got.tracker, got.project)
            await self.db.run(finish_failed, intent_id=got.intent_id, error="unexpected error")
            raise
        await self.db.run(finish_linked, policy=self.policy, intent_id=got.intent_id, created=found, actor=actor)
        return Result(True, f"Created {found.key} and linked it.", found.key, found.url)

    async def _attempt(self, got: Claim) -> Created:
        module = MODULES[Tracker(got.tracker)]
        if self.http is not None:
            return await self._attempt_with(self.http, module, got)
        async with httpx.AsyncClient(headers={"User-Agent": USER_AGENT}) as http:
            return await self._attempt_with(http, module, got)

    async def _attempt_with(self, http: httpx.AsyncClient, module, got: Claim) -> Created:
        if got.attempts > 1 and (found := await self._find(http, module, got, strict=False)) is not None:
            log.info("%s %s: an earlier attempt made %s; linking it", got.tracker, got.project, found.key)
            return found
        answers: list = []
        while (request := module.create_request(self.settings, got.project, got.draft, answers)) is not None:
            try:
                response = await self._send(http, request)
            except httpx.HTTPError as exc:
                log.warning("%s %s: create request failed (%s); looking for the issue", got.tracker, got.project, type(exc).__name__)
                return await self._after_unsure(http, module, got, f"{NAMES[got.tracker]} did not answer in time")
            data = _json(response)
            if response.status_code >= 500:
                return await self._after_unsure(http, module, got, f"{NAMES[got.tracker]} had an error (HTTP {response.status_code})")
            if response.status_code not in (200, 201) or obj_errors(data):
                raise Failed(problem(got.tracker, got.project, response.status_code, data, _wait(response)))
            answers.append(data)
        found = module.created(got.project, answers, self.settings)
        if found is None:
            raise Failed(problem(got.tracker, got.project, 400, answers[-1] if answers else {}))
        return found

    async def _after_unsure(self, http, module, got: Claim, what: str) -> Created:
        """After a timeout or 5xx: the issue may exist. Found by its marker: it; else ``Failed``."""
        found = await self._find(http, module, got, strict=True)
        if found is not None:
            return found
        raise Failed(f"{what}, and no issue with this report's marker is there: try again in a minute "
                     "(the bot looks for it first, so no second issue is made).")

    async def _find(self, http, module, got: Claim, *, strict: bool) -> Created | None:
        """The issue holding the marker, or None. ``strict``: a failed search is ``Failed``
        (creating again could make a second issue); otherwise it is logged and None."""
        try:
            response = await self._send(http, module.find_request(self.settings, got.project, got.marker))
        except httpx.HTTPError as exc:
            if strict:
                raise Failed(f"{NAMES[got.tracker]} did not answer, and the bot cannot tell whether the issue was made: "
                             "try again in a minute.") from exc
            raise Failed(f"{NAMES[got.tracker]} did not answer when the bot looked for an earlier attempt's issue: "
                         "try again in a minute.") from exc
        if response.status_code != 200:
            raise Failed(problem(got.tracker, got.project, response.status_code, _json(response), _wait(response)))
        return module.find_by_marker(got.project, _json(response), got.marker, self.settings)

    async def _send(self, http: httpx.AsyncClient, request: PollRequest) -> httpx.Response:
        """One request; a 429 asking for at most ``MAX_WAIT`` is waited out and tried once more."""
        for attempt in range(2):
            response = await http.request(request.method, request.url, headers=request.headers, json=request.json,
                                          timeout=TIMEOUT, follow_redirects=False)
            wait = _wait(response)
            if wait is None or attempt or wait > MAX_WAIT:
                return response
            await self.sleep(max(wait, 0.5))
        return response


def _wait(response: httpx.Response) -> float | None:
    wait = rate_limit_wait(response, time.time())
    return None if wait is None else (wait or 1.0)


def _json(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return {}


def obj_errors(data: object) -> bool:
    """A GraphQL answer (Linear) carrying ``errors``: a failure whatever its HTTP status."""
    return isinstance(data, dict) and bool(data.get("errors"))
