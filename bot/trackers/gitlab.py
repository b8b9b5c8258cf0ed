"""GitLab (gitlab.com and self-managed): links, webhooks, closing references, polling.

Keys are ``group/project#N`` for issues and ``group/project!N`` for merge requests, in lower case
(GitLab paths are case-insensitive). Sources: docs.gitlab.com "Webhook events" (Issue Hook, Merge
Request Hook; ``X-Gitlab-Token``), "Managing issues: closing issues automatically" (default
``issue_closing_pattern`` in config/initializers/1_settings.rb; default branch only).
"""

import re
from functools import partial
from urllib.parse import quote, urlsplit

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

TRACKER = Tracker.gitlab
SECRET_SETTING = "gitlab_webhook_token"
DELIVERY_HEADER = "idempotency-key"

# A group's work item (an epic, GitLab 17.2+; a group-level issue later), in the URL form of either
# era: /groups/<group path>/-/work_items/<iid> and /groups/<group path>/-/epics/<iid> (an epic's
# work item keeps the epic's iid). Keyed ``<group path>#<iid>``: a group and a project never share
# a full path, so this cannot meet a project's issue. ``search``: after a relative URL root too.
_GROUP_ITEM = re.compile(r"/groups/(?P<group>[\w.-]+(?:/[\w.-]+)*)/-/(?:work_items|epics)/(?P<n>\d+)(?:/[^?#]*)?$")
# A merge request's tabs (/diffs, /commits, /pipelines) and an issue's (/designs) are the same item.
_PATH = re.compile(r"^/(?P<project>[\w.-]+(?:/[\w.-]+)+)/-/(?P<kind>issues|merge_requests|work_items)/(?P<n>\d+)(?:/[^?#]*)?$")

# GitLab's default issue_closing_pattern, with %{issue_ref} as its reference forms: #N,
# group/project#N, project#N (a project in the same namespace), and an issue or work item URL.
# Keywords are case-sensitive after the first letter, as in GitLab ("Closes", "closes"; not
# "CLOSES"). One difference: "and" may start a new line, as in the documented example ("fixes
# #18, #19\nand https://…/issues/23" closes #23).
#
# Read in time linear in the description (issue #26 item 4): ``_KEYWORD`` finds a keyword with its
# colon and spaces, then ``_ITEM`` is matched at the position after it again and again, one
# reference with the separator after it (or a Jira-style key) each time, until it does not match.
# Every quantifier that could give back characters the next part needs is possessive, or the next
# part starts with a character its class excludes. (The single regular expression with a repeated
# group this replaces backtracked: "Closes #1" + 65,000 spaces + "x" took 7.6 s.)
_KEYWORD = re.compile(
    r"\b(?:[Cc]los(?:e[sd]?|ing)|[Ff]ix(?:e[sd]|ing)?|[Rr]esolv(?:e[sd]?|ing)|[Ii]mplement(?:s|ed|ing)?):? ++"
)
_ITEM = re.compile(
    r"(?:issues? ++)?"
    r"(?:(?P<url>https?://[^\s,]+/-/(?:issues|work_items)/\d++)|(?P<project>[\w.-]++(?:/[\w.-]++)*+)?#(?P<n>\d++))"
    r"(?:(?: *+,)?+\s++and ++| *+,?+ *+)"
    r"|[A-Z][A-Z0-9_]++-\d++"
)
MAX_REFERENCES = 50  # closing references read per description (issue #26 item 5): the rest are counted


def normalise(key: str) -> str:
    return key.lower()


def item_id(key: str, value: object) -> str | None:
    """A link's stable id for an issue or (key ``group/project!N``) a merge request: GitLab keeps
    them in separate tables, so MR id 309 and issue id 309 are different things; an MR's is ``mr:309``."""
    ident = string(value)
    return f"mr:{ident}" if ident is not None and "!" in key else ident


def parse_url(host: str, path: str, url: str) -> IssueRef | None:
    if (group := _GROUP_ITEM.match(path)) is not None:
        return IssueRef(TRACKER, normalise(f"{group['group']}#{group['n']}"), url)
    m = _PATH.match(path)
    if not m:
        return None
    sep = "!" if m["kind"] == "merge_requests" else "#"
    return IssueRef(TRACKER, normalise(f"{m['project']}{sep}{m['n']}"), url)


# GitLab's URLs before the "/-/" scope (GitLab 11 and older; still redirected): /group/project/
# issues/N and /group/project/merge_requests/N. The issue form is GitHub's too: read only on a
# host known to be GitLab (``bot.trackers.configure_hosts``); the merge request form anywhere.
_OLD_PATH = re.compile(r"^/(?P<project>[\w.-]+(?:/[\w.-]+)+?)/(?P<kind>issues|merge_requests)/(?P<n>\d+)(?:/[^?#]*)?$")


def parse_old_url(host: str, path: str, url: str, *, merge_requests_only: bool = False) -> IssueRef | None:
    m = _OLD_PATH.match(path)
    if not m or (merge_requests_only and m["kind"] != "merge_requests"):
        return None
    sep = "!" if m["kind"] == "merge_requests" else "#"
    return IssueRef(TRACKER, normalise(f"{m['project']}{sep}{m['n']}"), url)


def verify(secret: str, body: bytes, headers) -> bool:
    """``X-Gitlab-Token`` is the configured secret token itself (no HMAC)."""
    return same(secret, text(headers.get("x-gitlab-token")))


def read(body: bytes, headers, policy=None) -> Events:
    from bot.trackers.github import _marker

    data = decode_json(body)
    progress = progress_events(data, _marker(policy))
    return events(data) if progress is None else progress


def closing_references(text_: str, project: str, host: str | None = None) -> list[str]:
    """Normalised issue keys a merge request description closes, as GitLab's default pattern reads
    it: "Fix #20, Fixes #21 and Closes group/otherproject#22", lists such as "fixes #18, #19 and <url>".
    GitLab scans the raw text (code blocks included). A URL is a reference only on GitLab's own
    ``host`` (the project's; None: any), as GitLab's reference filters read only its own links.
    At most ``MAX_REFERENCES`` (see ``counted_references``)."""
    return counted_references(text_, project, host)[0]


def counted_references(text_: str, project: str, host: str | None = None) -> tuple[list[str], int]:
    """The first ``MAX_REFERENCES`` distinct keys, and how many references the description names
    after them (each mention counted, nothing built for them)."""
    keys: dict[str, None] = {}
    namespace = project.rpartition("/")[0]
    body, pos, more = text_[:65536], 0, 0
    while (keyword := _KEYWORD.search(body, pos)) is not None:
        pos = keyword.end()
        while (item := _ITEM.match(body, pos)) is not None:
            pos = item.end()
            if len(keys) >= MAX_REFERENCES:
                more += item["n"] is not None or item["url"] is not None
                continue
            if item["url"]:
                parts = urlsplit(item["url"])
                netloc = parts.netloc.lower()
                found = parse_url(netloc, parts.path, item["url"]) if host is None or netloc == host else None
                if found and "#" in found.key:
                    keys[found.key] = None
            elif item["n"] is None:
                continue  # a Jira-style key: GitLab's pattern reads it (for its Jira integration); not ours
            elif item["project"] and "/" not in item["project"]:
                keys[normalise(f"{namespace}/{item['project']}#{item['n']}")] = None
            else:
                keys[normalise(f"{item['project'] or project}#{item['n']}")] = None
    return list(keys), more


def _label(value: object) -> str:
    return re.sub(r"[^a-z0-9_.:-]", "", text(value).lower())[:40]


def _where(project: dict, attrs: dict, kind: str) -> tuple[str, tuple[str, ...]]:
    """The item's key, and other keys a host may have linked it by. A project's item is
    ``path_with_namespace`` + ``#iid`` (``!iid`` for a merge request); a group's work item
    (``"project": null``) is its group path from its URL + ``#iid``. A self-managed GitLab under a
    relative URL root (https://host/gitlab/g/p/-/issues/1) makes a pasted URL read as
    ``gitlab/g/p#1``: that key is an old key, so such a link matches and follows the real one."""
    iid = attrs.get("iid")
    url_path = urlsplit(text(attrs.get("url"))).path
    if not isinstance(iid, int) or isinstance(iid, bool):
        # No iid (seen in a client library's testdata, keys with a trailing space): the URL names it.
        m = re.search(r"/(?:issues|merge_requests|work_items|epics)/(\d{1,18})$", url_path)
        if not m:
            raise Malformed("no object_attributes.iid")
        iid = int(m.group(1))
    from_url = parse_url("", url_path, text(attrs.get("url")))
    path = project.get("path_with_namespace")
    if isinstance(path, str):
        key = normalise(f"{path}{'!' if kind == 'merge_request' else '#'}{iid}")
    elif kind == "work_item" and (group := _GROUP_ITEM.search(url_path)) is not None and int(group["n"]) == iid:
        key = normalise(f"{group['group']}#{iid}")
    else:
        raise Malformed("no project.path_with_namespace, and not a group's work item")
    return key, ((from_url.key,) if from_url and from_url.key != key else ())


def events(payload: dict) -> Events:
    """Issue Hook and work item close/reopen (a close with ``moved_to_id`` is a move; a group's
    work item, ``"project": null``, too), Merge Request Hook merge; anything else is no event,
    with the reason (``Events``)."""
    kind = payload.get("object_kind")
    if kind not in ("issue", "work_item", "merge_request"):
        return nothing("event", f"{_label(kind) or 'unnamed'} events are not read")
    project, attrs = obj(payload.get("project")), obj(payload.get("object_attributes"))
    key, old_keys = _where(project, attrs, kind)
    action = attrs.get("action")
    url, title, issue_id, at = string(attrs.get("url")), string(attrs.get("title")), item_id(key, attrs.get("id")), iso(attrs.get("updated_at"))
    event = partial(IssueEvent, TRACKER, key, url=url, title=title, issue_id=issue_id, project_id=string(project.get("id")), at=at,
                    old_keys=old_keys)
    if kind in ("issue", "work_item"):
        moved_to = string(attrs.get("moved_to_id"))
        if action == "close" and moved_to:
            # Moving an issue closes it and makes a new one with a new id; follow the new id.
            return events_of([event(Outcome.moved, issue_id=moved_to, old_ids=tuple(filter(None, [issue_id])))])
        if action in ("close", "reopen"):
            return events_of([event(Outcome.reopened if action == "reopen" else Outcome.fixed)])
        return nothing("action", f"{kind}.{_label(action) or 'unnamed'} changes no issue's state")
    if action == "reopen":
        return events_of([event(Outcome.reopened)])
    if action != "merge":
        return nothing("not_merged" if action == "close" else "action",
                       f"merge_request.{_label(action) or 'unnamed'} changes no issue's state")
    found, dropped = [event(Outcome.fixed)], 0
    default = project.get("default_branch") or obj(attrs.get("target")).get("default_branch")
    if default and attrs.get("target_branch") == default:
        # Closing patterns act only on merges into the default branch.
        host = urlsplit(text(project.get("web_url")) or text(attrs.get("url"))).netloc.lower() or None
        keys, dropped = counted_references(text(attrs.get("description")), text(project.get("path_with_namespace")), host)
        for ref in keys:
            found.append(IssueEvent(TRACKER, ref, Outcome.fixed, url, title, at=at))
    return events_of(list({e.key: e for e in found}.values()), dropped)


# ------------------------------------------------------------------ polling


def poll_configured(settings) -> bool:
    return bool(settings.gitlab_token and settings.gitlab_api_url)


def poll_request(settings, key: str) -> PollRequest:
    sep = "!" if "!" in key else "#"
    project, iid = key.rsplit(sep, 1)
    kind = "merge_requests" if sep == "!" else "issues"
    url = f"{settings.gitlab_api_url.rstrip('/')}/projects/{quote(project, safe='')}/{kind}/{int(iid)}"
    return PollRequest("GET", url, {"PRIVATE-TOKEN": settings.gitlab_token})


def poll_events(key: str, item: dict, settings=None, policy=None) -> list[IssueEvent]:
    """An issue (opened/closed) or a merge request (opened/closed/locked/merged)."""
    url, title, state = string(item.get("web_url")), string(item.get("title")), item.get("state")
    ident = Identity(issue_id=item_id(key, item.get("id")), project_id=string(item.get("project_id")), at=iso(item.get("updated_at")))
    if state in ("opened", "reopened"):
        started = [IssueEvent(TRACKER, key, Outcome.started, url, title, **ident)] if "#" in key and item.get("assignees") else []
        return [IssueEvent(TRACKER, key, Outcome.reopened, url, title, **ident), *started]
    if "!" in key:
        return [IssueEvent(TRACKER, key, Outcome.fixed, url, title, **ident)] if state == "merged" else []
    return [IssueEvent(TRACKER, key, Outcome.fixed, url, title, **ident)] if state == "closed" else []


# ------------------------------------------------------------------ identity at link time


def identity_request(settings, key: str, answers: list[dict]) -> PollRequest | None:
    """GET /projects/:id/issues/:issue_iid (or merge_requests): ``id``, ``project_id``. Source:
    docs.gitlab.com "Issues API" (Single project issue)."""
    return None if answers else poll_request(settings, key)


def identity_event(key: str, answers: list[dict], settings=None) -> IssueEvent | None:
    item = answers[0] if answers else {}
    if string(item.get("id")) is None:
        return None
    return IssueEvent(TRACKER, key, Outcome.moved, string(item.get("web_url")), string(item.get("title")),
                      issue_id=item_id(key, item.get("id")), project_id=string(item.get("project_id")))


# ------------------------------------------------------------------ creating issues (bot.issue_create)
# Sources: docs.gitlab.com "Issues API" (New issue: POST /projects/:id/issues with ``title``,
# ``description``, ``labels`` comma-separated; 201 with ``id``, ``iid``, ``project_id``,
# ``web_url``; List project issues: ``order_by=created_at``, ``sort=desc``, ``per_page`` up to
# 100), "REST API" (status codes: 400 with ``message`` naming the field or ``error``, 401, 403, 404
# "404 Project Not Found", 429 with Retry-After), "Projects API" (Get a single project:
# ``issues_enabled``, ``permissions.project_access``/``group_access`` ``access_level``: Guest 10
# and up may create issues).

FIND_PAGE = 100


def _project_url(settings, project: str) -> str:
    return f"{settings.gitlab_api_url.rstrip('/')}/projects/{quote(project, safe='')}"


def create_request(settings, project: str, draft, answers: list) -> PollRequest | None:
    if answers:
        return None
    return PollRequest("POST", f"{_project_url(settings, project)}/issues", {"PRIVATE-TOKEN": settings.gitlab_token},
                       {"title": draft.title, "description": draft.body, "labels": ",".join(draft.labels)})


def _created(item: dict, project: str):
    from bot.trackers.base import Created

    iid, url = item.get("iid"), text(item.get("web_url"))
    ref = parse_url("", urlsplit(url).path, url)
    if not isinstance(iid, int) or isinstance(iid, bool) or string(item.get("id")) is None:
        return None
    key = ref.key if ref is not None and "#" in ref.key else normalise(f"{project}#{iid}")
    return Created(key, url, string(item.get("id")), string(item.get("project_id")))


def created(project: str, answers: list, settings=None):
    return _created(obj(answers[-1]), project) if answers else None


def find_request(settings, project: str, marker: str) -> PollRequest:
    return PollRequest("GET", f"{_project_url(settings, project)}/issues?order_by=created_at&sort=desc&per_page={FIND_PAGE}",
                       {"PRIVATE-TOKEN": settings.gitlab_token})


def find_by_marker(project: str, answer: object, marker: str, settings=None):
    for item in answer if isinstance(answer, list) else []:
        if marker in text(obj(item).get("description")):
            return _created(obj(item), project)
    return None


def create_problem(status: int, answer: object) -> str:
    """GitLab's ``message`` (a string, or field -> [problems]) or ``error``, as one line."""
    data = obj(answer)
    message = data.get("message")
    if isinstance(message, dict):
        return "; ".join(f"{field} {', '.join(map(str, problems if isinstance(problems, list) else [problems]))}"
                         for field, problems in list(message.items())[:3])[:300]
    return (text(message) or text(data.get("error")))[:300]


def access_request(settings, project: str) -> PollRequest:
    return PollRequest("GET", _project_url(settings, project), {"PRIVATE-TOKEN": settings.gitlab_token})


def can_create(status: int, answer: object) -> tuple[bool, str]:
    data = obj(answer)
    if status != 200:
        return False, f"HTTP {status}: {create_problem(status, answer) or 'no answer'}"
    if data.get("issues_enabled") is False:
        return False, "issues are turned off in this project"
    permissions = obj(data.get("permissions"))
    levels = [obj(permissions.get(k)).get("access_level") for k in ("project_access", "group_access")]
    if permissions and not any(isinstance(level, int) and level >= 10 for level in levels) and data.get("visibility") != "public":
        return False, "the token's user is not a member of this project"
    return True, "can create issues"


# ------------------------------------------------------------------ progress (bot.progress)
# Sources: docs.gitlab.com "Webhook events": Issue events (``object_attributes.action`` "update",
# ``changes.assignees`` {previous, current}), Merge request events (action "open", ``description``),
# Comment events (``object_kind`` "note", ``object_attributes.noteable_type`` "Issue", ``note``, ``id``; ``issue``).

_MENTION = re.compile(r"(?<![\w/#!-])(?P<project>[\w.-]++(?:/[\w.-]++)*+)?#(?P<n>\d++)(?!\w)")


def progress_events(payload: dict, marker: str | None) -> Events | None:
    """Started (an issue given assignees; a merge request opened that names issues) and update (an
    issue comment starting with ``marker``) events; None: not a progress delivery."""
    from bot.trackers.github import marked

    kind = payload.get("object_kind")
    project, attrs = obj(payload.get("project")), obj(payload.get("object_attributes"))
    if kind in ("issue", "work_item") and attrs.get("action") == "update":
        assignees = obj(obj(payload.get("changes")).get("assignees"))
        if not assignees or not assignees.get("current"):
            return None
        key, old_keys = _where(project, attrs, kind)
        return events_of([IssueEvent(TRACKER, key, Outcome.started, string(attrs.get("url")), string(attrs.get("title")),
                                     issue_id=item_id(key, attrs.get("id")), project_id=string(project.get("id")),
                                     at=iso(attrs.get("updated_at")), old_keys=old_keys)])
    if kind == "merge_request" and attrs.get("action") == "open":
        path = text(project.get("path_with_namespace"))
        description = text(attrs.get("description"))
        keys = dict.fromkeys(closing_references(description, path))
        namespace = path.rpartition("/")[0]
        for m in _MENTION.finditer(description[:65536]):
            if len(keys) >= MAX_REFERENCES:
                break
            where = m["project"] if not m["project"] or "/" in m["project"] else f"{namespace}/{m['project']}"
            keys[normalise(f"{where or path}#{m['n']}")] = None
        if not keys:
            return nothing("action", "merge_request.open names no issue")
        return events_of([IssueEvent(TRACKER, key, Outcome.started, string(attrs.get("url")), string(attrs.get("title")),
                                     at=iso(attrs.get("created_at") or attrs.get("updated_at"))) for key in keys])
    if kind == "note":
        if attrs.get("noteable_type") != "Issue" or (note := marked(text(attrs.get("note")), marker)) is None:
            return None  # an ordinary comment: not read, as before
        issue = obj(payload.get("issue"))
        key, old_keys = _where(project, {**issue, "url": text(issue.get("url"))}, "issue")
        return events_of([IssueEvent(TRACKER, key, Outcome.update, string(issue.get("url")), string(issue.get("title")),
                                     issue_id=item_id(key, issue.get("id")), project_id=string(project.get("id")),
                                     at=iso(attrs.get("created_at")), old_keys=old_keys, note=note, note_id=string(attrs.get("id")))])
    return None
