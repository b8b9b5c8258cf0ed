"""GitHub (github.com and Enterprise Server): links, webhooks, closing references, polling.

Keys are ``owner/repo#N`` in lower case: GitHub owner and repository names are case-insensitive
and deliveries name them in their canonical case. Sources: docs.github.com "Webhook events and
payloads" (issues, pull_request, repository), "Validating webhook deliveries" (X-Hub-Signature-256,
either content type), "Linking a pull request to an issue" (closing keywords, default branch only).
"""

import hashlib
import hmac
import re
from urllib.parse import parse_qs, quote, urlsplit

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
from bot.trackers.markdown import blank_code

TRACKER = Tracker.github
SECRET_SETTING = "github_webhook_secret"
DELIVERY_HEADER = "x-github-delivery"

# A pull request's tabs (/files, /commits/<sha>, /checks) are the same pull request.
_PATH = re.compile(r"^/(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+)/(?P<kind>issues|pull)/(?P<n>\d+)(?:/[^?#]*)?$")
# "Linking a pull request to an issue": one keyword per reference, optional colon; the reference
# is #N, owner/repo#N, or the issue's URL. Keywords are matched case-insensitively by GitHub.
# Linear in the body's length (issue #26 item 4): the whitespace around the colon is possessive
# (``\s*:?\s+`` backtracked quadratically over a run of spaces), and the reference's parts are
# separated by characters their classes exclude, so no part can give back what the next needs.
# The keyword's first letter comes first and the "not inside a word, path or ref" check after it
# (a 2-character lookbehind): a pattern that opens with a literal set lets the regex engine skip
# to candidate letters instead of trying every position, 5x less CPU on a 64 KiB hostile body
# (bench/adversarial_bodies.py), during which the event loop cannot run. Same matches.
_CLOSING = re.compile(
    r"[cfr](?<![\w/#-][cfr])(?:(?<=c)lose[sd]?|(?<=f)ix(?:e[sd])?|(?<=r)esolve[sd]?)(?:\s*+:)?+\s++"
    r"(?:(?P<repo>[\w.-]++/[\w.-]++)?#(?P<n>\d++)|(?P<url>https?://[^\s)<>\]]+/(?:issues|pull)/\d++))(?!\w)",
    re.IGNORECASE,
)
MAX_REFERENCES = 50  # closing references read per body (issue #26 item 5): the rest are counted, not applied


def normalise(key: str) -> str:
    return key.lower()


def parse_url(host: str, path: str, url: str) -> IssueRef | None:
    """github.com, or a GitHub Enterprise host serving the same paths (issues and PRs share numbers)."""
    m = _PATH.match(path)
    return IssueRef(TRACKER, normalise(f"{m['owner']}/{m['repo']}#{m['n']}"), url) if m else None


def verify(secret: str, body: bytes, headers) -> bool:
    """X-Hub-Signature-256: ``sha256=`` + HMAC-SHA256 hex of the raw body, whatever the content type."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return same(expected, text(headers.get("x-hub-signature-256")))


def payload(body: bytes, headers) -> dict:
    """The JSON payload of either content type GitHub offers: ``application/json``, or
    ``application/x-www-form-urlencoded`` with the JSON in the form field ``payload``."""
    if text(headers.get("content-type")).split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        try:
            fields = parse_qs(body.decode("utf-8"), strict_parsing=True, max_num_fields=10)
        except (ValueError, UnicodeDecodeError):
            raise Malformed("not a form") from None
        values = fields.get("payload") or []
        if len(values) != 1:
            raise Malformed("form without one payload field")
        return decode_json(values[0])
    return decode_json(body)


def _label(value: object) -> str:
    """An event or action name as the vendor sent it, cut to what a log line and an answer can show."""
    return re.sub(r"[^a-z0-9_.:-]", "", text(value).lower())[:40]


def read(body: bytes, headers, policy=None) -> Events:
    name, data = text(headers.get("x-github-event")), payload(body, headers)
    progress = progress_events(name, data, _marker(policy))
    return events(name, data) if progress is None else progress


def _marker(policy) -> str | None:
    """The policy's update marker when updates are relayed (bot.issue_create.policy.Progress)."""
    issues = getattr(policy, "issues", None)
    return issues.progress.marker if issues is not None and issues.progress.updates else None


def _repo(payload: dict) -> dict:
    repo = obj(payload.get("repository"))
    if not isinstance(repo.get("full_name"), str):
        raise Malformed("no repository.full_name")
    return repo


def _issue_event(repo_name: str, repo_id, item: dict, outcome: Outcome, at, *, pull: bool = False) -> IssueEvent:
    """``pull``: ``item`` is a ``pull_request``, whose ``id`` is not an issue id (another sequence,
    and not the id the issues API gives the same pull request): it is matched by key alone."""
    number = item.get("number")
    if not isinstance(number, int) or isinstance(number, bool):
        raise Malformed("no issue number")
    return IssueEvent(TRACKER, normalise(f"{repo_name}#{number}"), outcome, string(item.get("html_url")),
                      string(item.get("title")), issue_id=None if pull else string(item.get("id")),
                      project_id=string(repo_id), at=iso(at))


def _repo_of(item: dict, fallback: str) -> str:
    """The repository an issue belongs to, from its API URL (a transfer delivery's ``repository``
    may be the other one), else ``fallback``."""
    m = re.match(r"^https?://[^/]+(?:/api/v3)?/repos/([^/]+/[^/]+)$", text(item.get("repository_url")))
    return m.group(1) if m else fallback


def events(event_name: str, payload: dict) -> Events:
    """The issue events in one delivery. ``issues`` closed/reopened/deleted/transferred/
    opened-by-transfer, ``pull_request`` closed (merged) / reopened, ``repository``
    renamed/transferred; anything else is no event, with the reason (``Events``)."""
    action = payload.get("action")
    if event_name == "repository" and action in ("renamed", "transferred"):
        return events_of(_repository_change(payload, action))
    if event_name not in ("issues", "pull_request"):
        return nothing("event", f"{_label(event_name) or 'unnamed'} events are not read")
    repo = _repo(payload)
    name, repo_id = repo["full_name"], repo.get("id")
    if event_name == "issues":
        issue = obj(payload.get("issue"))
        if action == "transferred":
            changes = obj(payload.get("changes"))
            new_issue, new_repo = obj(changes.get("new_issue")), obj(changes.get("new_repository"))
            if not isinstance(new_repo.get("full_name"), str):
                raise Malformed("transfer without changes.new_repository")
            old = _issue_event(_repo_of(issue, name), None, issue, Outcome.moved, None)
            new = _issue_event(new_repo["full_name"], new_repo.get("id"), new_issue, Outcome.moved, new_issue.get("updated_at"))
            return events_of([IssueEvent(**{**new.to_json(), "old_keys": (old.key,), "old_ids": tuple(filter(None, [old.issue_id]))})])
        if action == "opened" and obj(payload.get("changes")).get("old_issue"):
            changes = obj(payload.get("changes"))
            old_issue, old_repo = obj(changes.get("old_issue")), obj(changes.get("old_repository"))
            old = _issue_event(text(old_repo.get("full_name")) or _repo_of(old_issue, name), None, old_issue, Outcome.moved, None)
            new = _issue_event(name, repo_id, issue, Outcome.moved, issue.get("updated_at"))
            return events_of([IssueEvent(**{**new.to_json(), "old_keys": (old.key,), "old_ids": tuple(filter(None, [old.issue_id]))})])
        if action == "reopened":
            return events_of([_issue_event(name, repo_id, issue, Outcome.reopened, issue.get("updated_at"))])
        if action == "deleted":
            # Gone for good (only an admin can delete an issue); untimed: nothing can follow it.
            return events_of([_issue_event(name, repo_id, issue, Outcome.deleted, None)])
        if action == "closed":
            # state_reason: completed | not_planned | duplicate | null on old closes.
            reason = issue.get("state_reason")
            outcome = Outcome.not_planned if reason in ("not_planned", "duplicate") else Outcome.fixed
            return events_of([_issue_event(name, repo_id, issue, outcome, issue.get("updated_at") or issue.get("closed_at"))])
        return nothing("action", f"issues.{_label(action)} changes no issue's state")
    pr = obj(payload.get("pull_request"))
    if action == "reopened":
        return events_of([_issue_event(name, repo_id, pr, Outcome.reopened, pr.get("updated_at"), pull=True)])
    if action != "closed":
        return nothing("action", f"pull_request.{_label(action)} changes no issue's state")
    if pr.get("merged") is not True:
        return nothing("not_merged", "a pull request closed without merging fixes nothing")
    at = pr.get("merged_at") or pr.get("updated_at")
    found, dropped = [_issue_event(name, repo_id, pr, Outcome.fixed, at, pull=True)], 0
    base = obj(pr.get("base"))
    default = repo.get("default_branch") or obj(base.get("repo")).get("default_branch")
    if default and base.get("ref") == default:
        # Closing keywords act only when the pull request targets the default branch.
        host = urlsplit(text(repo.get("html_url")) or "https://github.com").netloc.lower()
        keys, dropped = counted_references(text(pr.get("body")), name, host)
        for key in keys:
            found.append(IssueEvent(TRACKER, key, Outcome.fixed, string(pr.get("html_url")), string(pr.get("title")), at=iso(at)))
    return events_of(list({e.key: e for e in reversed(found)}.values())[::-1], dropped)


def closing_references(body: str, repo: str, host: str = "github.com") -> list[str]:
    """Normalised keys a pull request body closes on merge: ``Fixes #1``, ``closes owner/repo#2``,
    ``Resolves: https://github.com/owner/repo/issues/3``; one keyword per reference (GitHub's
    "Linking a pull request to an issue": "use full syntax for each issue"). Not in code or HTML
    comments: GitHub renders no reference there; and when GitHub does close an issue, the issue's
    own ``closed`` delivery says so, so a reference missed here costs nothing while one read
    wrongly tells a reporter it is fixed. At most ``MAX_REFERENCES`` (see ``counted_references``)."""
    return counted_references(body, repo, host)[0]


def counted_references(body: str, repo: str, host: str = "github.com") -> tuple[list[str], int]:
    """The first ``MAX_REFERENCES`` distinct keys ``body`` closes, and how many references it
    names after them (each mention counted: past the cap nothing is built per reference, so a
    body of thousands costs little more than reading it). Linear in the body (its first 64 KiB):
    see ``bot.trackers.markdown``."""
    keys: dict[str, None] = {}
    shown = blank_code(body[:65536])
    for m in _CLOSING.finditer(shown):
        if len(keys) >= MAX_REFERENCES:
            return list(keys), 1 + len(_CLOSING.findall(shown, m.end()))
        if m["url"]:
            parts = urlsplit(m["url"])
            ref = parse_url(parts.netloc.lower(), parts.path, m["url"]) if parts.netloc.lower() == host else None
            if ref:
                keys[ref.key] = None
        else:
            keys[normalise(f"{m['repo'] or repo}#{m['n']}")] = None
    return list(keys), 0


def _repository_change(payload: dict, action: str) -> list[IssueEvent]:
    repo = _repo(payload)
    new = repo["full_name"]
    owner, name = new.split("/", 1) if "/" in new else ("", new)
    changes = obj(payload.get("changes"))
    if action == "renamed":
        old_name = text(obj(obj(obj(changes.get("repository")).get("name"))).get("from"))
        old = f"{owner}/{old_name}" if old_name else ""
    else:
        was = obj(obj(changes.get("owner")).get("from"))
        old_owner = text(obj(was.get("user")).get("login")) or text(obj(was.get("organization")).get("login"))
        old = f"{old_owner}/{name}" if old_owner else ""
    return [IssueEvent(TRACKER, normalise(new), Outcome.renamed, project_id=string(repo.get("id")),
                       old_keys=(normalise(old),) if old else ())]


# ------------------------------------------------------------------ polling


def poll_configured(settings) -> bool:
    return bool(settings.github_token and settings.github_api_url)


def poll_request(settings, key: str) -> PollRequest:
    """GET /repos/{owner}/{repo}/issues/{n}: issues and pull requests alike."""
    repo, number = key.rsplit("#", 1)
    owner, name = repo.split("/", 1)
    url = f"{settings.github_api_url.rstrip('/')}/repos/{quote(owner)}/{quote(name)}/issues/{int(number)}"
    return PollRequest("GET", url, {"Authorization": f"Bearer {settings.github_token}",
                                    "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"})


def poll_events(key: str, issue: dict, settings=None, policy=None) -> list[IssueEvent]:
    """An issue or pull request (``pull_request`` set) as the REST API returns it."""
    url, title, at = string(issue.get("html_url")), string(issue.get("title")), iso(issue.get("updated_at"))
    ident = Identity(issue_id=string(issue.get("id")), at=at)
    state = issue.get("state")
    if state == "open":
        # Assigned: work started (bot.progress); a pull request's assignee is not the issue's.
        started = [IssueEvent(TRACKER, key, Outcome.started, url, title, **ident)] if issue.get("assignees") and "pull_request" not in issue else []
        return [IssueEvent(TRACKER, key, Outcome.reopened, url, title, **ident), *started]
    if state != "closed":
        return []
    pr = issue.get("pull_request")
    if pr is not None:
        # A pull request fixes something only when merged; closed unmerged, nothing was fixed.
        return [IssueEvent(TRACKER, key, Outcome.fixed, url, title, **ident)] if obj(pr).get("merged_at") else []
    reason = issue.get("state_reason")
    outcome = Outcome.not_planned if reason in ("not_planned", "duplicate") else Outcome.fixed
    return [IssueEvent(TRACKER, key, outcome, url, title, **ident)]


# ------------------------------------------------------------------ identity at link time


def identity_request(settings, key: str, answers: list[dict]) -> PollRequest | None:
    """First the issue (GET /repos/{owner}/{repo}/issues/{n}: ``id``, ``node_id``,
    ``repository_url``); then, as the issue's answer names no ``repository.id``, its repository
    (GET /repos/{owner}/{repo}: ``id``), under the repository the issue is in now (a transferred
    issue answers from its new one). Source: docs.github.com "REST API endpoints for issues" (Get
    an issue) and "REST API endpoints for repositories" (Get a repository)."""
    if not answers:
        return poll_request(settings, key)
    issue = answers[0]
    if len(answers) > 1 or obj(issue.get("repository")).get("id") is not None or not isinstance(issue.get("number"), int):
        return None
    owner, _, name = _repo_of(issue, key.rsplit("#", 1)[0]).partition("/")
    url = f"{settings.github_api_url.rstrip('/')}/repos/{quote(owner)}/{quote(name)}"
    return PollRequest("GET", url, poll_request(settings, key).headers)


def identity_event(key: str, answers: list[dict], settings=None) -> IssueEvent | None:
    """The issue's stable ids (and its key now: a transfer moves it) as a ``moved`` event."""
    issue = answers[0] if answers else {}
    number = issue.get("number")
    if not isinstance(number, int) or isinstance(number, bool) or string(issue.get("id")) is None:
        return None
    repo = obj(issue.get("repository")) or (answers[1] if len(answers) > 1 else {})
    current = normalise(f"{_repo_of(issue, key.rsplit('#', 1)[0])}#{number}")
    return IssueEvent(TRACKER, current, Outcome.moved, string(issue.get("html_url")), string(issue.get("title")),
                      issue_id=string(issue.get("id")), project_id=string(repo.get("id")),
                      old_keys=(key,) if current != key else ())


# ------------------------------------------------------------------ creating issues (bot.issue_create)
# Sources: docs.github.com "REST API endpoints for issues" (Create an issue: POST
# /repos/{owner}/{repo}/issues, 201 with the issue; 403, 404, 410 "issues are disabled", 422
# "Validation Failed" with ``errors`` [{resource, field, code}], 503; "Any user with pull access to
# a repository can create an issue"), (List repository issues: ``state``, ``sort=created``,
# ``direction``, ``per_page`` up to 100; pull requests are listed too, with ``pull_request``), and
# "REST API endpoints for repositories" (Get a repository: ``has_issues``, ``permissions``).

FIND_PAGE = 100  # the newest issues read when looking for a marker (the list API's largest page)


def _repo_url(settings, project: str) -> str:
    owner, name = project.split("/", 1)
    return f"{settings.github_api_url.rstrip('/')}/repos/{quote(owner)}/{quote(name)}"


def _headers(settings) -> dict:
    return {"Authorization": f"Bearer {settings.github_token}", "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28"}


def create_request(settings, project: str, draft, answers: list) -> PollRequest | None:
    """POST /repos/{owner}/{repo}/issues with title, body (Markdown) and labels (GitHub makes a
    label it does not have). One request: None once answered."""
    if answers:
        return None
    return PollRequest("POST", f"{_repo_url(settings, project)}/issues", _headers(settings),
                       {"title": draft.title, "body": draft.body, "labels": list(draft.labels)})


def _created(issue: dict):
    from bot.trackers.base import Created

    number, repo = issue.get("number"), _repo_of(issue, "")
    if not isinstance(number, int) or isinstance(number, bool) or not repo or string(issue.get("id")) is None:
        return None
    repository = obj(issue.get("repository"))
    return Created(normalise(f"{repo}#{number}"), text(issue.get("html_url")), string(issue.get("id")),
                   string(repository.get("id")))


def created(project: str, answers: list, settings=None):
    """The created issue from the 201 answer, or None."""
    return _created(obj(answers[-1])) if answers else None


def find_request(settings, project: str, marker: str) -> PollRequest:
    """The newest issues of the repository (open or closed): a just-made issue is among them at
    once, where the search API's index may lag."""
    return PollRequest("GET", f"{_repo_url(settings, project)}/issues?state=all&sort=created&direction=desc&per_page={FIND_PAGE}",
                       _headers(settings))


def find_by_marker(project: str, answer: object, marker: str, settings=None):
    """The issue (not a pull request) whose body holds ``marker``, or None."""
    for issue in answer if isinstance(answer, list) else []:
        issue = obj(issue)
        if "pull_request" not in issue and marker in text(issue.get("body")):
            return _created(issue)
    return None


def create_problem(status: int, answer: object) -> str:
    """What GitHub said, as one line: its ``message`` and, for a 422, each ``errors`` entry."""
    data = obj(answer)
    message, errors = text(data.get("message"))[:200], data.get("errors")
    details = [" ".join(filter(None, (text(obj(e).get("field")), text(obj(e).get("code")), text(obj(e).get("message")))))
               for e in (errors if isinstance(errors, list) else [])[:3]]
    return "; ".join(filter(None, [message, *details]))[:300]


def access_request(settings, project: str) -> PollRequest:
    return PollRequest("GET", _repo_url(settings, project), _headers(settings))


def can_create(status: int, answer: object) -> tuple[bool, str]:
    """From Get a repository: issues on, and the token sees the repository (pull access is enough)."""
    data = obj(answer)
    if status != 200:
        return False, f"HTTP {status}: {create_problem(status, answer) or 'no answer'}"
    if data.get("has_issues") is False:
        return False, "issues are turned off in this repository"
    permissions = obj(data.get("permissions"))
    if permissions and not any(permissions.get(p) for p in ("pull", "triage", "push", "maintain", "admin")):
        return False, "the token has no access to this repository"
    return True, "can create issues"


# ------------------------------------------------------------------ progress (bot.progress)
# Sources: docs.github.com "Webhook events and payloads": issues ``assigned`` (``assignee``),
# pull_request ``opened`` (``pull_request.body``), issue_comment ``created`` (``comment.id``,
# ``comment.body``, ``issue``; ``issue.pull_request`` set on a pull request's comments).

_MENTION = re.compile(r"(?<![\w/#-])(?:(?P<repo>[\w.-]++/[\w.-]++))?#(?P<n>\d++)(?!\w)")


def mentioned(body: str, repo: str, host: str = "github.com") -> list[str]:
    """Keys of the issues a pull request body names (``#N``, ``owner/repo#N``, an issue URL, with
    or without a closing keyword), outside code; at most ``MAX_REFERENCES``."""
    shown = blank_code(body[:65536])
    keys = dict.fromkeys(counted_references(body, repo, host)[0])
    for m in _MENTION.finditer(shown):
        if len(keys) >= MAX_REFERENCES:
            break
        keys[normalise(f"{m['repo'] or repo}#{m['n']}")] = None
    for m in re.finditer(r"https?://[^\s)<>\]]+/issues/\d+", shown):
        parts = urlsplit(m.group(0))
        if parts.netloc.lower() == host and (ref := parse_url(host, parts.path, m.group(0))):
            keys[ref.key] = None
    return list(keys)[:MAX_REFERENCES]


def progress_events(event_name: str, payload: dict, marker: str | None) -> Events | None:
    """Started (an issue assigned; a pull request opened that names issues) and update (an issue
    comment starting with ``marker``) events; None: not a progress delivery."""
    action = payload.get("action")
    if event_name == "issues" and action == "assigned":
        repo = _repo(payload)
        issue = obj(payload.get("issue"))
        return events_of([_issue_event(repo["full_name"], repo.get("id"), issue, Outcome.started, issue.get("updated_at"))])
    if event_name == "pull_request" and action == "opened":
        repo = _repo(payload)
        pr = obj(payload.get("pull_request"))
        host = urlsplit(text(repo.get("html_url")) or "https://github.com").netloc.lower()
        at = iso(pr.get("created_at") or pr.get("updated_at"))
        keys = mentioned(text(pr.get("body")), repo["full_name"], host)
        if not keys:
            return nothing("action", "pull_request.opened names no issue")
        return events_of([IssueEvent(TRACKER, key, Outcome.started, string(pr.get("html_url")), string(pr.get("title")), at=at)
                          for key in keys])
    if event_name == "issue_comment" and action == "created":
        repo = _repo(payload)
        issue, comment = obj(payload.get("issue")), obj(payload.get("comment"))
        note = marked(text(comment.get("body")), marker)
        if note is None or "pull_request" in issue:
            return None  # an ordinary comment: "issue_comment events are not read", as before
        event = _issue_event(repo["full_name"], repo.get("id"), issue, Outcome.update, comment.get("created_at"))
        return events_of([IssueEvent(**{**event.to_json(), "note": note, "note_id": string(comment.get("id"))})])
    return None


def marked(body: str, marker: str | None) -> str | None:
    """The words after ``marker`` when ``body`` starts with it (after blank space), else None."""
    if not marker:
        return None
    stripped = body.lstrip()
    if not stripped.startswith(marker) or (len(stripped) > len(marker) and not stripped[len(marker)].isspace()):
        return None
    return stripped[len(marker):].strip() or None
