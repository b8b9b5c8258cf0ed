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
    return events(decode_json(body))


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


def _identity(data: dict) -> dict:
    previous = [normalise(p) for p in data.get("previousIdentifiers") or [] if isinstance(p, str)]
    # Webhooks carry ``teamId``; the GraphQL API the ``team { id }`` asked for.
    team = string(data.get("teamId")) or string(obj(data.get("team")).get("id"))
    return dict(issue_id=string(data.get("id")), project_id=team,
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
        return events_of([IssueEvent(TRACKER, key, Outcome.deleted, url, title, **{**ident, "at": None})])
    return events_of(_update(key, url, title, ident, data, before))


def _update(key: str, url, title, ident: dict, data: dict, before: dict) -> list[IssueEvent]:
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
        return [IssueEvent(TRACKER, current, Outcome.reopened, url, title, **ident)]
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
