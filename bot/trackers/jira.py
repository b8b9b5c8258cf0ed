"""Jira (Cloud and Data Center): links, webhooks, polling. Jira has no closing references of its
own: an issue is closed when it has a resolution, or when its status is in the *Done* status
category (``fields.status.statusCategory.key == "done"``) even without one: team-managed projects
and simplified workflows move issues to Done and leave ``resolution`` null.

Which resolution means "fixed": every name except the non-fix ones, which are "not planned":
Atlassian's stock non-fix resolutions (Jira Server/Data Center: Won't Fix, Duplicate, Incomplete,
Cannot Reproduce; Jira Cloud and newer Data Center: Won't Do, Duplicate, Cannot Reproduce; Jira
Service Management: Declined), the common custom ones (Not a Bug, Obsolete, Works as Designed),
and the policy's ``closing.jira_not_planned``. Names compare case-insensitively and without
apostrophes (Jira Cloud writes "Won’t Do" with U+2019). A Done-category status without a
resolution is fixed. ``jira:issue_deleted`` is a deletion.

Keys are ``PROJ-123`` in upper case. The issue's numeric ``id`` is stable when the issue moves to
another project (its key changes: the changelog has a ``Key`` item, old and new key in
``fromString``/``toString``). Sources: Atlassian "Webhooks" (jira:issue_updated, changelog),
"Managing webhooks" (Data Center: ``X-Hub-Signature: sha256=<hex>``).
"""

import base64
import hashlib
import hmac
import re
from functools import partial
from urllib.parse import parse_qs, quote

from bot.trackers.base import (
    Events,
    Identity,
    IssueEvent,
    IssueRef,
    Malformed,
    Outcome,
    PollRequest,
    Tracker,
    decode_json,
    events_of,
    iso,
    nothing,
    obj,
    same,
    string,
    text,
)

TRACKER = Tracker.jira
SECRET_SETTING = "jira_webhook_secret"
DELIVERY_HEADER = "x-atlassian-webhook-identifier"

# /browse/KEY (Data Center under a /jira context path too), and the project views: Cloud's
# /jira/software/projects/NET/issues/NET-7, /jira/software/c/projects/..., /jira/servicedesk/
# projects/SD/queues/custom/1/SD-5, Data Center's /projects/NET/issues/NET-7. Boards name the
# issue open beside them in ``selectedIssue`` (Cloud /jira/..., Data Center /secure/RapidBoard.jspa).
_PATH = re.compile(r"^(?:(?:/jira)?/browse|(?:/[\w-]+)*?/projects/[A-Za-z][A-Za-z0-9_]*(?:/[\w-]+)*?)"
                   r"/(?P<key>[A-Za-z][A-Za-z0-9_]+-\d+)/?$")
_SELECTING = re.compile(r"^(?P<context>/jira)?/(?:software|core|servicedesk|secure|issues)/")
_KEY = re.compile(r"^[A-Z][A-Z0-9_]+-\d+$")


def normalise(key: str) -> str:
    return key.upper()


def parse_url(host: str, path: str, url: str) -> IssueRef | None:
    m = _PATH.match(path)
    if not m:
        return None
    if "/browse/" in path:
        return IssueRef(TRACKER, normalise(m["key"]), url)
    origin = url[: len(url) - len(path)]  # ``url`` is scheme://netloc + path
    return IssueRef(TRACKER, normalise(m["key"]), f"{origin}/browse/{normalise(m['key'])}")


def parse_selected(path: str, query: str, origin: str) -> IssueRef | None:
    """A board, backlog or search URL with the issue open beside it (``?selectedIssue=NET-7``)."""
    if not (selecting := _SELECTING.match(path)):
        return None
    selected = parse_qs(query).get("selectedIssue") or [""]
    key = normalise(selected[0].strip())
    if not _KEY.match(key):
        return None
    context = selecting["context"] if path.startswith("/jira/secure/") else ""  # Data Center under /jira
    return IssueRef(TRACKER, key, f"{origin}{context or ''}/browse/{key}")


def verify(secret: str, body: bytes, headers) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return same(expected, text(headers.get("x-hub-signature")))


STOCK_NOT_PLANNED = ("won't fix", "won't do", "duplicate", "incomplete", "cannot reproduce", "declined",
                     "not a bug", "obsolete", "works as designed")


def read(body: bytes, headers, policy) -> Events:
    from bot.trackers.github import _marker

    data = decode_json(body)
    progress = progress_events(data, _marker(policy))
    if progress is not None:
        return progress
    found = events(data, not_planned=_not_planned(policy))
    started = _started(data) if data.get("webhookEvent") == "jira:issue_updated" else []
    return events_of([*found, *started]) if started else found


def resolution_name(name: object) -> str:
    """A resolution's name as compared: lower case, no apostrophes, single spaces."""
    return " ".join(re.sub(r"['\u2019\u2018`]", "", text(name)).lower().split())


def _not_planned(policy) -> frozenset[str]:
    return frozenset(resolution_name(r) for r in (*STOCK_NOT_PLANNED, *policy.closing.jira_not_planned))


def _done(fields: dict) -> bool:
    """The issue's status is in the Done category (the key is "done" on Cloud and Data Center alike)."""
    return obj(obj(fields.get("status")).get("statusCategory")).get("key") == "done"


def _browse_url(issue: dict, key: str) -> str | None:
    m = re.match(r"^(https?://[^/]+(?:/jira)?)/rest/", text(issue.get("self")))
    return f"{m.group(1)}/browse/{key}" if m else None


def events(payload: dict, *, not_planned: frozenset[str]) -> Events:
    """``jira:issue_updated``: a Key change (project move), a resolution change (set: closed, fixed
    or not planned by its name; cleared: reopened, unless the status is still Done), a status change
    with no resolution (into the Done category: fixed; out of it: reopened); ``jira:issue_deleted``.
    Timed by the delivery's ``timestamp``."""
    hook = payload.get("webhookEvent")
    if hook not in ("jira:issue_updated", "jira:issue_created", "jira:issue_deleted"):
        return nothing("event", f"{_label(hook) or 'unnamed'} events are not read")
    issue = obj(payload.get("issue"))
    key = issue.get("key")
    if not isinstance(key, str) or not _KEY.match(key.upper()):
        raise Malformed("no issue.key")
    key, fields = normalise(key), obj(issue.get("fields"))
    event = partial(IssueEvent, TRACKER, key, url=_browse_url(issue, key), title=string(fields.get("summary")),
                    issue_id=string(issue.get("id")), at=iso(payload.get("timestamp")) or iso(fields.get("updated")))
    if hook == "jira:issue_deleted":
        return events_of([event(Outcome.deleted, at=None)])
    items = [obj(i) for i in obj(payload.get("changelog")).get("items") or [] if isinstance(i, dict)]
    changes = {i.get("field"): i for i in items}
    found = []
    moved = changes.get("Key")
    if moved and isinstance(moved.get("fromString"), str):
        found.append(event(Outcome.moved, old_keys=(normalise(moved["fromString"]),)))
    old_keys = found[0].old_keys if found else ()
    resolution, status = changes.get("resolution"), changes.get("status")
    if resolution is not None:  # what closes or reopens an issue, on Cloud and Data Center
        if resolution.get("to") is None and not resolution.get("toString"):
            outcome = Outcome.fixed if _done(fields) else Outcome.reopened
        else:
            outcome = Outcome.not_planned if resolution_name(resolution.get("toString")) in not_planned else Outcome.fixed
        found.append(event(outcome, old_keys=old_keys))
    elif status is not None and not fields.get("resolution") and obj(fields.get("status")):
        # A workflow without resolutions: the status category says closed or open.
        found.append(event(Outcome.fixed if _done(fields) else Outcome.reopened, old_keys=old_keys))
    if not found:
        return nothing("no_state_change", f"{hook} changes no resolution, Done status or key")
    return events_of(found)


def _label(value: object) -> str:
    return re.sub(r"[^a-z0-9_.:-]", "", text(value).lower())[:40]


# ------------------------------------------------------------------ polling


def poll_configured(settings) -> bool:
    return bool(settings.jira_base_url and settings.jira_api_token)


def poll_request(settings, key: str) -> PollRequest:
    url = f"{settings.jira_base_url.rstrip('/')}/rest/api/2/issue/{quote(key)}?fields=resolution,status,summary,updated"
    if settings.jira_email:  # Jira Cloud: email and API token
        auth = "Basic " + base64.b64encode(f"{settings.jira_email}:{settings.jira_api_token}".encode()).decode()
    else:  # Jira Data Center: a personal access token
        auth = f"Bearer {settings.jira_api_token}"
    return PollRequest("GET", url, {"Authorization": auth, "Accept": "application/json"})


def poll_events(key: str, issue: dict, settings, policy) -> list[IssueEvent]:
    """A Jira issue is closed when it has a resolution; which one says fixed or not planned. The
    API answers a moved issue's old key with the issue under its new key: follow it."""
    fields = obj(issue.get("fields"))
    current = normalise(text(issue.get("key")) or key)
    url = f"{settings.jira_base_url.rstrip('/')}/browse/{current}"
    common = Identity(issue_id=string(issue.get("id")), at=iso(fields.get("updated")), old_keys=(key,) if current != key else ())
    resolution = fields.get("resolution")
    if not resolution:
        # No resolution: a status in the Done category is closed all the same; In Progress has started.
        outcome = Outcome.fixed if _done(fields) else Outcome.reopened
        found = [IssueEvent(TRACKER, current, outcome, url, string(fields.get("summary")), **common)]
        if obj(obj(fields.get("status")).get("statusCategory")).get("key") == "indeterminate":
            found.append(IssueEvent(TRACKER, current, Outcome.started, url, string(fields.get("summary")), **common))
        return found
    name = resolution_name(obj(resolution).get("name"))
    outcome = Outcome.not_planned if name in _not_planned(policy) else Outcome.fixed
    return [IssueEvent(TRACKER, current, outcome, url, string(fields.get("summary")), **common)]


# ------------------------------------------------------------------ identity at link time


def identity_request(settings, key: str, answers: list[dict]) -> PollRequest | None:
    """GET /rest/api/2/issue/{key}: ``id`` and ``key`` (the same shape as v3 on Cloud, and v2 also
    answers on Data Center). A moved issue answers its old key with the new one. Source: Atlassian
    "Jira Cloud platform REST API: Issues" (Get issue)."""
    return None if answers else poll_request(settings, key)


def identity_event(key: str, answers: list[dict], settings) -> IssueEvent | None:
    issue = answers[0] if answers else {}
    if string(issue.get("id")) is None:
        return None
    current = normalise(text(issue.get("key")) or key)
    return IssueEvent(TRACKER, current, Outcome.moved, f"{settings.jira_base_url.rstrip('/')}/browse/{current}",
                      string(obj(issue.get("fields")).get("summary")), issue_id=string(issue.get("id")),
                      old_keys=(key,) if current != key else ())


# ------------------------------------------------------------------ creating issues (bot.issue_create)
# Sources: Atlassian "Jira REST API: Issues" (Create issue: POST /rest/api/2/issue with ``fields``
# {project {key}, summary, description (wiki markup in v2), issuetype {name}, labels}; 201
# {id, key, self}; 400 {errorMessages, errors {field: message}} e.g. "Field 'x' is required.", 401,
# 403), "Issue search" (Cloud: GET /rest/api/2/search/jql; Data Center: GET /rest/api/2/search;
# ``issues`` [{id, key, fields}]), "Permissions" (Get my permissions: GET
# /rest/api/2/mypermissions?projectKey=&permissions=CREATE_ISSUES -> permissions.CREATE_ISSUES.havePermission).

FIND_PAGE = 50


def create_request(settings, project: str, draft, answers: list) -> PollRequest | None:
    if answers:
        return None
    fields = {"project": {"key": project}, "summary": draft.title, "description": draft.body,
              "issuetype": {"name": draft.issue_type or "Task"}}
    if draft.labels:
        fields["labels"] = [re.sub(r"\s+", "-", label) for label in draft.labels]  # Jira labels hold no spaces
    return PollRequest("POST", f"{settings.jira_base_url.rstrip('/')}/rest/api/2/issue",
                       {**poll_request(settings, "X-1").headers, "Content-Type": "application/json"}, {"fields": fields})


def _created(issue: dict, settings):
    from bot.trackers.base import Created

    key = text(issue.get("key"))
    if not _KEY.match(key.upper()) or string(issue.get("id")) is None:
        return None
    key = normalise(key)
    return Created(key, f"{settings.jira_base_url.rstrip('/')}/browse/{key}", string(issue.get("id")))


def created(project: str, answers: list, settings=None):
    return _created(obj(answers[-1]), settings) if answers else None


def find_request(settings, project: str, marker: str) -> PollRequest:
    """The project's issues made in the last two days, newest first (the marker is then looked
    for in their descriptions: JQL's text search matches words, not a token like ours)."""
    from urllib.parse import urlencode

    jql = f'project = "{project}" AND created >= -2d ORDER BY created DESC'
    path = "/rest/api/2/search/jql" if settings.jira_email else "/rest/api/2/search"  # Cloud / Data Center
    query = urlencode({"jql": jql, "fields": "summary,description", "maxResults": FIND_PAGE})
    return PollRequest("GET", f"{settings.jira_base_url.rstrip('/')}{path}?{query}", poll_request(settings, "X-1").headers)


def find_by_marker(project: str, answer: object, marker: str, settings=None):
    for issue in obj(answer).get("issues") or []:
        if marker in text(obj(obj(issue).get("fields")).get("description")):
            return _created(obj(issue), settings)
    return None


def create_problem(status: int, answer: object) -> str:
    """Jira's ``errorMessages`` and ``errors`` (field: message) as one line."""
    data = obj(answer)
    said = data.get("errorMessages")
    messages = [text(m) for m in (said if isinstance(said, list) else [])[:3]]
    messages += [f"{field}: {text(problem)}" for field, problem in list(obj(data.get("errors")).items())[:3]]
    return "; ".join(filter(None, messages))[:300]


def access_request(settings, project: str) -> PollRequest:
    return PollRequest("GET", f"{settings.jira_base_url.rstrip('/')}/rest/api/2/mypermissions?projectKey={quote(project)}"
                       "&permissions=CREATE_ISSUES", poll_request(settings, "X-1").headers)


def can_create(status: int, answer: object) -> tuple[bool, str]:
    if status != 200:
        return False, f"HTTP {status}: {create_problem(status, answer) or 'no answer'}"
    if obj(obj(obj(answer).get("permissions")).get("CREATE_ISSUES")).get("havePermission") is True:
        return True, "can create issues"
    return False, "the token's user lacks the Create Issues permission in this project"


# ------------------------------------------------------------------ progress (bot.progress)
# Sources: Atlassian "Webhooks": jira:issue_updated with a ``status`` changelog item (status
# category key "indeterminate" is In Progress), comment_created (``comment`` {id, body, created}, ``issue``).


def progress_events(payload: dict, marker: str | None) -> Events | None:
    from bot.trackers.github import marked

    hook = payload.get("webhookEvent")
    issue = obj(payload.get("issue"))
    key = text(issue.get("key"))
    if hook == "comment_created":
        comment = obj(payload.get("comment"))
        note = marked(text(comment.get("body")), marker)
        if note is None or not _KEY.match(key.upper()):
            return None  # an ordinary comment: not read, as before
        key = normalise(key)
        return events_of([IssueEvent(TRACKER, key, Outcome.update, _browse_url(issue, key),
                                     string(obj(issue.get("fields")).get("summary")), issue_id=string(issue.get("id")),
                                     at=iso(comment.get("created")) or iso(payload.get("timestamp")), note=note,
                                     note_id=string(comment.get("id")))])
    return None


def _started(payload: dict) -> list[IssueEvent]:
    """A status change into the In Progress category (``indeterminate``) as a started event."""
    issue = obj(payload.get("issue"))
    fields = obj(issue.get("fields"))
    items = [obj(i) for i in obj(payload.get("changelog")).get("items") or [] if isinstance(i, dict)]
    if not any(i.get("field") == "status" for i in items):
        return []
    if obj(obj(fields.get("status")).get("statusCategory")).get("key") != "indeterminate":
        return []
    key = normalise(text(issue.get("key")))
    return [IssueEvent(TRACKER, key, Outcome.started, _browse_url(issue, key), string(fields.get("summary")),
                       issue_id=string(issue.get("id")), at=iso(payload.get("timestamp")) or iso(fields.get("updated")))]
