"""What every tracker module gives the bot, and the shapes it gives them in. No I/O here.

A tracker module (``bot/trackers/github.py`` ...) exposes the names of :class:`TrackerModule`;
``bot.trackers.MODULES`` lists them, so adding a tracker is adding a module and one line there.
"""

from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from enum import StrEnum
from typing import Protocol, TypedDict


class Tracker(StrEnum):
    github = "github"
    gitlab = "gitlab"
    jira = "jira"
    linear = "linear"


@dataclass(frozen=True)
class IssueRef:
    """An issue as a person linked it: ``key`` is normalised (see each module's ``normalise``)."""

    tracker: Tracker
    key: str
    url: str


class Outcome(StrEnum):
    fixed = "fixed"
    not_planned = "not_planned"
    reopened = "reopened"
    moved = "moved"  # the issue has a new key or id (transfer, project move): follow it, notify nobody
    renamed = "renamed"  # a project/repository renamed: ``old_keys`` and ``key`` are key prefixes
    deleted = "deleted"  # the issue is gone (GitHub issues.deleted, Jira jira:issue_deleted, Linear remove)
    # Progress (bot/progress): work on the issue started (assigned, a PR/MR opened, In Progress,
    # Linear "started"), and a tracker comment starting with the policy's marker (``note``).
    started = "started"
    update = "update"


@dataclass(frozen=True)
class IssueEvent:
    """One thing a tracker told us about one issue.

    ``key`` is the normalised key after the event; ``old_keys`` keys it had before (a transfer, a
    Jira Key change, Linear's ``previousIdentifiers``). ``issue_id`` is the tracker's stable id of
    the issue after the event (GitHub/GitLab numeric id, Jira ``issue.id``, Linear UUID) and
    ``old_ids`` ids it had before (a GitHub transfer or GitLab move makes a new issue).
    ``project_id`` is GitHub's repository id or GitLab's project id. ``at`` is the tracker's own
    time of the state it reports (ISO 8601, or None when the tracker gave none): a link's state
    only moves forward in that time.
    """

    tracker: Tracker
    key: str
    outcome: Outcome
    url: str | None = None
    title: str | None = None
    issue_id: str | None = None
    project_id: str | None = None
    at: str | None = None
    old_keys: tuple[str, ...] = ()
    old_ids: tuple[str, ...] = ()
    note: str | None = None  # ``update``: the comment's text after the marker
    note_id: str | None = None  # ``update``: the comment's id in its tracker (one relay per comment)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "IssueEvent":
        return cls(**{**data, "tracker": Tracker(data["tracker"]), "outcome": Outcome(data["outcome"]),
                      "old_keys": tuple(data.get("old_keys") or ()), "old_ids": tuple(data.get("old_ids") or ())})


class Identity(TypedDict, total=False):
    """Which issue an answer is about and as of when (``IssueEvent``'s fields of those names), typed:
    a reader reads it once and gives it to each event it makes as ``**identity``."""

    issue_id: str | None
    project_id: str | None
    at: str | None
    old_keys: tuple[str, ...]


class Events(list):
    """What one delivery says: its ``IssueEvent`` items. When there are none, ``reason`` says why
    in a short fixed code (a /metrics label: ``event``, ``action``, ``not_merged``,
    ``no_state_change``) and ``detail`` in words for the answer's body. ``dropped``: closing
    references named beyond the per-body cap (``github.MAX_REFERENCES``), counted, not applied."""

    reason: str | None = None
    detail: str = ""
    dropped: int = 0


def nothing(reason: str, detail: str) -> Events:
    """No events, and why (see ``Events``)."""
    found = Events()
    found.reason, found.detail = reason, detail
    return found


def events_of(items, dropped: int = 0) -> Events:
    found = Events(items)
    found.dropped = dropped
    return found


class Malformed(ValueError):
    """A correctly signed body that is not what the tracker documents: answered with 400."""


@dataclass(frozen=True)
class PollRequest:
    method: str
    url: str
    headers: dict
    json: dict | None = None


class TrackerModule(Protocol):
    """The interface of one tracker module (module-level names, not a class)."""

    TRACKER: Tracker
    SECRET_SETTING: str  # the Settings field holding the webhook secret (None there: route 404)
    DELIVERY_HEADER: str | None  # the header naming a delivery (redeliveries repeat it)

    def parse_url(self, host: str, path: str, url: str) -> IssueRef | None: ...
    def normalise(self, key: str) -> str: ...
    def verify(self, secret: str, body: bytes, headers) -> bool: ...
    def read(self, body: bytes, headers, policy) -> "Events": ...  # raises Malformed
    def poll_configured(self, settings) -> bool: ...
    def poll_request(self, settings, key: str) -> PollRequest: ...
    def poll_events(self, key: str, data: dict, settings, policy) -> list[IssueEvent]: ...  # raises Malformed
    # Identity at link time (bot.trackers.identity): the next request given the answers so far
    # (None: done), then the issue's stable ids as a ``moved`` event (None: not an issue we can read).
    def identity_request(self, settings, key: str, answers: list[dict]) -> PollRequest | None: ...
    def identity_event(self, key: str, answers: list[dict], settings) -> IssueEvent | None: ...
    # Creating an issue (bot.issue_create): see ``bot.issue_create.trackers`` for the shapes.
    def create_request(self, settings, project: str, draft: "IssueDraft") -> PollRequest: ...
    def created(self, project: str, answer: dict, settings) -> "Created | None": ...
    def find_request(self, settings, project: str, marker: str) -> PollRequest: ...
    def find_by_marker(self, project: str, answer: dict, marker: str, settings) -> "Created | None": ...
    def create_problem(self, status: int, answer: object) -> str: ...
    def access_request(self, settings, project: str) -> PollRequest: ...
    def can_create(self, status: int, answer: object) -> tuple[bool, str]: ...


@dataclass(frozen=True)
class IssueDraft:
    """What a host submits to create an issue: ``body`` is the tracker's own markup (Markdown, or
    Jira wiki markup) with people's words escaped, and ends with the bot's hidden marker."""

    title: str
    body: str
    labels: tuple[str, ...] = ()
    issue_type: str | None = None  # Jira: the project's issue type name (e.g. "Task")


@dataclass(frozen=True)
class Created:
    """An issue the tracker made (or that reconciling found by its marker): its normalised key,
    browser URL and stable ids (as ``IssueEvent.issue_id``/``project_id``)."""

    key: str
    url: str
    issue_id: str | None = None
    project_id: str | None = None


def text(value: object) -> str:
    """A header value as text for comparison; ``None`` and odd types become ''."""
    return value if isinstance(value, str) else ""


def same(expected: str, given: str) -> bool:
    """Constant-time comparison that never raises: a header may hold any bytes (Starlette decodes
    them as Latin-1, and ``hmac.compare_digest`` refuses non-ASCII ``str``)."""
    import hmac

    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8", "surrogatepass"))


def iso(value: object) -> str | None:
    """A tracker timestamp as ISO 8601 UTC, or None: ISO strings ("2019-05-15T15:21:18Z", GitLab's
    older "2013-12-03 17:23:34 UTC") and epoch milliseconds (Jira's ``timestamp``)."""
    when = parse_time(value)
    return when.isoformat() if when else None


def parse_time(value: object) -> datetime | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(value / 1000, timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or len(value) > 64:
        return None
    raw = value.strip().replace(" UTC", "+00:00")
    if raw.endswith("Z"):
        raw = raw[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def obj(value: object) -> dict:
    """``value`` if it is a JSON object, else {}: fields we read may be missing or of another type."""
    return value if isinstance(value, dict) else {}


def string(value: object) -> str | None:
    """A JSON string or number as text (ids come as either), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (str, int)):
        return str(value)
    return None


def decode_json(body: bytes | str) -> dict:
    """A JSON object from a webhook body. Raises Malformed for anything else, including bodies
    nested too deep for the decoder (RecursionError) and invalid UTF-8."""
    import json

    try:
        payload = json.loads(body)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise Malformed(f"not JSON: {type(exc).__name__}") from None
    if not isinstance(payload, dict):
        raise Malformed("not a JSON object")
    return payload
