"""Linear: links, webhooks, polling. Linear closes issues from its own GitHub/GitLab integration,
so the bot only reads the issue's workflow state.

Keys are ``ENG-123`` in upper case; the issue's UUID (``data.id``) stays when it moves to another
team, and ``data.previousIdentifiers`` lists its old keys. Sources: linear/linear
packages/sdk/src/schema.graphql (IssueWebhookPayload, EntityWebhookPayload) and
packages/sdk/src/webhooks/client.ts (``linear-signature``: HMAC-SHA256 hex of the raw body;
``webhookTimestamp`` in ms, refused when more than a minute off).
"""

import hashlib
import hmac
import re
import time

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

TRACKER = Tracker.linear
SECRET_SETTING = "linear_webhook_secret"
DELIVERY_HEADER = "linear-delivery"
MAX_AGE_MS = 60_000  # the SDK's own limit
# Workflow state types that close an issue without a fix. The schema's WorkflowState.type: "One of
# "triage", "backlog", "unstarted", "started", "completed", "canceled", "duplicate"" (an issue
# marked as a duplicate of another is closed, not fixed, and not open).
NOT_PLANNED = ("canceled", "duplicate")

_PATH = re.compile(r"^/[\w-]+/issue/(?P<key>[A-Za-z][A-Za-z0-9]+-\d+)(?:/[\w-]*)?/?$")
QUERY = ("query Issue($id: String!) { issue(id: $id) { id identifier url title updatedAt "
         "previousIdentifiers state { type } team { id } completedAt canceledAt } }")


def normalise(key: str) -> str:
    return key.upper()


def parse_url(host: str, path: str, url: str) -> IssueRef | None:
    if host != "linear.app":
        return None
    m = _PATH.match(path)
    return IssueRef(TRACKER, normalise(m["key"]), url) if m else None


def verify(secret: str, body: bytes, headers) -> bool:
    if not same(hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(), text(headers.get("linear-signature"))):
        return False
    try:  # the signed body carries its own timestamp: refuse replays
        sent = decode_json(body).get("webhookTimestamp")
    except Malformed:
        return False
    if not isinstance(sent, (int, float)) or isinstance(sent, bool):
        return False
    return abs(time.time() * 1000 - sent) <= MAX_AGE_MS


def read(body: bytes, headers, policy=None) -> Events:
    from bot.trackers.github import _marker

    data = decode_json(body)
    progress = progress_events(data, _marker(policy))
    return events(data) if progress is None else progress


def identifier(data: dict) -> str | None:
    """The issue's key: ``identifier``, or (payloads without it, e.g. some ``remove`` deliveries)
    its team's key and its ``number``, which is what Linear's identifier is made of."""
    key = data.get("identifier")
    if isinstance(key, str):
        return key
    team, number = obj(data.get("team")).get("key"), data.get("number")
    if isinstance(team, str) and isinstance(number, int) and not isinstance(number, bool):
        return f"{team}-{number}"
    return None


def _identity(data: dict) -> Identity:
    previous = [normalise(p) for p in data.get("previousIdentifiers") or [] if isinstance(p, str)]
    # Webhooks carry ``teamId``; the GraphQL API the ``team { id }`` asked for.
    team = string(data.get("teamId")) or string(obj(data.get("team")).get("id"))
    return Identity(issue_id=string(data.get("id")), project_id=team,
                       at=iso(data.get("updatedAt")), old_keys=tuple(previous))


def _label(value: object) -> str:
    return re.sub(r"[^a-z0-9_.:-]", "", text(value).lower())[:40]


def events(payload: dict) -> Events:
    """``Issue`` ``update``: a state change into completed/canceled (closed) or out of them
    (reopened), or a team move (``updatedFrom.teamId``); ``Issue`` ``remove``: the issue was
    deleted (moved to Linear's trash). Anything else is no event, with the reason (``Events``)."""
    kind, action = payload.get("type"), payload.get("action")
    if kind != "Issue":
        return nothing("event", f"{_label(kind) or 'unnamed'} events are not read")
    if action not in ("update", "remove"):
        return nothing("action", f"Issue.{_label(action) or 'unnamed'} changes no issue's state")
    data, before = obj(payload.get("data")), obj(payload.get("updatedFrom"))
    key = identifier(data)
    if key is None:
        raise Malformed("no data.identifier")
    key, url, title = normalise(key), string(data.get("url")), string(data.get("title"))
    ident = _identity(data)
    if action == "remove":
        return events_of([IssueEvent(TRACKER, key, Outcome.deleted, url, title, **(ident | Identity(at=None)))])
    return events_of(_update(key, url, title, ident, data, before))


def _update(key: str, url, title, ident: Identity, data: dict, before: dict) -> list[IssueEvent]:
    state = obj(data.get("state")).get("type")
    if "stateId" in before:
        if state == "completed":
            return [IssueEvent(TRACKER, key, Outcome.fixed, url, title, **ident)]
        if state in NOT_PLANNED:
            return [IssueEvent(TRACKER, key, Outcome.not_planned, url, title, **ident)]
        if before.get("completedAt") or before.get("canceledAt"):
            # updatedFrom holds the previous values: it was completed or canceled, and is not any more.
            return [IssueEvent(TRACKER, key, Outcome.reopened, url, title, **ident)]
    if "teamId" in before or "identifier" in before:
        return [IssueEvent(TRACKER, key, Outcome.moved, url, title, **ident)]
    return []


# ------------------------------------------------------------------ polling


def poll_configured(settings) -> bool:
    return bool(settings.linear_api_key and settings.linear_api_url)


def poll_request(settings, key: str) -> PollRequest:
    return PollRequest("POST", settings.linear_api_url, {"Authorization": settings.linear_api_key,
                                                         "Content-Type": "application/json"},
                       {"query": QUERY, "variables": {"id": key}})


def poll_events(key: str, data: dict, settings=None, policy=None) -> list[IssueEvent]:
    """The GraphQL answer ``{"data": {"issue": ...}}``; an issue moved to another team is
    answered under its new identifier."""
    issue = obj(obj(data.get("data")).get("issue"))
    if not issue:
        return []
    current = normalise(text(issue.get("identifier")) or key)
    ident = _identity(issue)
    ident["old_keys"] = tuple(dict.fromkeys([*ident["old_keys"], *([key] if current != key else [])]))
    url, title = string(issue.get("url")), string(issue.get("title"))
    state = obj(issue.get("state")).get("type")
    if state == "completed":
        return [IssueEvent(TRACKER, current, Outcome.fixed, url, title, **ident)]
    if state in NOT_PLANNED:
        return [IssueEvent(TRACKER, current, Outcome.not_planned, url, title, **ident)]
    if state:
        started = [IssueEvent(TRACKER, current, Outcome.started, url, title, **ident)] if state == "started" else []
        return [IssueEvent(TRACKER, current, Outcome.reopened, url, title, **ident), *started]
    return []


# ------------------------------------------------------------------ identity at link time


def identity_request(settings, key: str, answers: list[dict]) -> PollRequest | None:
    """The GraphQL ``issue(id: "KEY-1")`` query (an identifier is accepted as the id): ``id`` (the
    issue's UUID), ``identifier``, ``team { id }``. Source: Linear's GraphQL API docs ("Queries":
    fetching an issue by identifier) and schema (Issue.id, Issue.team)."""
    return None if answers else poll_request(settings, key)


def identity_event(key: str, answers: list[dict], settings=None) -> IssueEvent | None:
    issue = obj(obj((answers[0] if answers else {}).get("data")).get("issue"))
    if string(issue.get("id")) is None:
        return None
    current = normalise(text(issue.get("identifier")) or key)
    ident = _identity(issue)
    old = tuple(dict.fromkeys([*ident["old_keys"], *([key] if current != key else [])]))
    return IssueEvent(TRACKER, current, Outcome.moved, string(issue.get("url")), string(issue.get("title")),
                      issue_id=ident["issue_id"], project_id=ident["project_id"], old_keys=old)


# ------------------------------------------------------------------ creating issues (bot.issue_create)
# Sources: Linear's GraphQL API docs (linear.app/developers/graphql: ``Authorization: <API_KEY>``;
# errors in the standard GraphQL ``errors`` list, with ``extensions.code``/``userPresentableMessage``;
# "Creating issues": ``issueCreate(input: {teamId, title, description, labelIds})`` ->
# ``{success, issue {id identifier url}}``) and its schema (``teams(filter: {key: {eq}})``,
# ``IssueFilter.description`` string comparator ``contains``).

TEAM_QUERY = "query Team($key: String!) { teams(filter: {key: {eq: $key}}) { nodes { id key labels { nodes { id name } } } } }"
CREATE = ("mutation Create($input: IssueCreateInput!) { issueCreate(input: $input) { success "
          "issue { id identifier url team { id } } } }")
FIND = ("query Find($key: String!, $marker: String!) { issues(first: 5, filter: {team: {key: {eq: $key}}, "
        "description: {contains: $marker}}) { nodes { id identifier url team { id } } } }")


def _post(settings, query: str, variables: dict) -> PollRequest:
    return PollRequest("POST", settings.linear_api_url, {"Authorization": settings.linear_api_key, "Content-Type": "application/json"},
                       {"query": query, "variables": variables})


def _team(answer: dict) -> dict:
    nodes = obj(obj(obj(answer).get("data")).get("teams")).get("nodes") or []
    return obj(nodes[0]) if nodes else {}


def create_request(settings, project: str, draft, answers: list) -> PollRequest | None:
    """Two requests: the team by its key (its id and labels), then ``issueCreate`` with the labels
    the team has (Linear takes label ids; a name the team lacks is left out)."""
    if not answers:
        return _post(settings, TEAM_QUERY, {"key": project})
    if len(answers) > 1:
        return None
    team = _team(answers[0])
    if not team.get("id"):
        return None
    wanted = {label.lower() for label in draft.labels}
    labels = [obj(n).get("id") for n in obj(team.get("labels")).get("nodes") or [] if text(obj(n).get("name")).lower() in wanted]
    payload = {"teamId": team["id"], "title": draft.title, "description": draft.body}
    if labels:
        payload["labelIds"] = labels
    return _post(settings, CREATE, {"input": payload})


def _created(issue: dict):
    from bot.trackers.base import Created

    key = identifier(issue)
    if key is None or string(issue.get("id")) is None:
        return None
    return Created(normalise(key), text(issue.get("url")), string(issue.get("id")), string(obj(issue.get("team")).get("id")))


def created(project: str, answers: list, settings=None):
    if len(answers) < 2:
        return None
    result = obj(obj(obj(answers[-1]).get("data")).get("issueCreate"))
    return _created(obj(result.get("issue"))) if result.get("success") is True else None


def find_request(settings, project: str, marker: str) -> PollRequest:
    return _post(settings, FIND, {"key": project, "marker": marker})


def find_by_marker(project: str, answer: object, marker: str, settings=None):
    nodes = obj(obj(obj(answer).get("data")).get("issues")).get("nodes") or []
    return _created(obj(nodes[0])) if nodes else None


def create_problem(status: int, answer: object) -> str:
    """The GraphQL errors' user-presentable messages (else ``message``), as one line; an unknown
    team (the first answer found none) says so."""
    data = obj(answer)
    found = data.get("errors")
    errors = found if isinstance(found, list) else []
    if not errors and "teams" in obj(data.get("data")) and not _team(data):
        return "no team with this key is visible to the API key"
    return "; ".join(text(obj(obj(e).get("extensions")).get("userPresentableMessage")) or text(obj(e).get("message"))
                     for e in errors[:3])[:300]


def access_request(settings, project: str) -> PollRequest:
    return _post(settings, TEAM_QUERY, {"key": project})


def can_create(status: int, answer: object) -> tuple[bool, str]:
    """A team the key sees is one its user can create issues in (Linear gives members that right)."""
    if status != 200 or obj(answer).get("errors"):
        return False, f"HTTP {status}: {create_problem(status, answer) or 'no answer'}"
    return (True, "can create issues") if _team(obj(answer)).get("id") else (False, "no team with this key is visible to the API key")


# ------------------------------------------------------------------ progress (bot.progress)
# Sources: Linear "Webhooks" (data change events: ``type`` Issue/Comment, ``action`` create/update,
# ``data``, ``updatedFrom``); workflow state types backlog, unstarted, started, completed, canceled.


def progress_events(payload: dict, marker: str | None) -> Events | None:
    from bot.trackers.github import marked

    kind, action = payload.get("type"), payload.get("action")
    data, before = obj(payload.get("data")), obj(payload.get("updatedFrom"))
    if kind == "Issue" and action == "update" and "stateId" in before and obj(data.get("state")).get("type") == "started":
        key = identifier(data)
        if key is None:
            raise Malformed("no data.identifier")
        # Out of completed/canceled into started is a reopen as well: both, in that order.
        return events_of([*events(payload), IssueEvent(TRACKER, normalise(key), Outcome.started, string(data.get("url")),
                                                       string(data.get("title")), **_identity(data))])
    if kind == "Comment" and action == "create":
        note = marked(text(data.get("body")), marker)
        issue = obj(data.get("issue"))
        issue_id = string(data.get("issueId")) or string(issue.get("id"))
        if note is None or issue_id is None:
            return None  # an ordinary comment: not read, as before
        key = identifier(issue) or ""
        return events_of([IssueEvent(TRACKER, normalise(key), Outcome.update, string(issue.get("url")), string(issue.get("title")),
                                     issue_id=issue_id, at=iso(data.get("createdAt")), note=note, note_id=string(data.get("id")))])
    return None
