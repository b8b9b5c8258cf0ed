"""Issue #27: every tracker payload of the world corpus (tests/world/<vendor>/: our own files, shaped
after each vendor's webhook documentation; tests/world/SOURCES.md names the page each follows) and
of the vendor-shaped fixtures (tests/fixtures/trackers/) replayed through the real route, signed as
the vendor signs, with the vendor's semantics as the expectation:

- never a 4xx or 5xx for a correctly signed delivery;
- the reporter of a report linked to the item the payload names gets a closure DM exactly when the
  vendor says the work is done: GitHub ``issues.closed`` (``state_reason`` completed or null:
  "it's fixed"; not_planned/duplicate: "without a fix"), ``pull_request.closed`` with ``merged``;
  GitLab ``close`` of an issue or work item, ``merge`` of a merge request; Jira a resolution set
  or a status in the Done category; Linear a state of type completed/canceled/duplicate. A
  deletion, a move, a comment, an edit, a label, an unmerged close: no DM.

Each file runs against a fresh app, on SQLite and PostgreSQL. Linear refuses a body whose
``webhookTimestamp`` is more than a minute old, and stamps each delivery when it sends it: the
replay does the same.

A vendor suite the steering side places beside the repository (``../shared/world/<vendor>/``, or
``PF_SHARED_WORLD``) is replayed the same way when it is there; its cases skip, saying why, when
it is not. The cases above never depend on it.
"""

import json
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests import tracker_requests as tr
from tests.closing.test_closing import deliver, file_and_link, notices_to, policy, settings_overrides  # noqa: F401
from tests.slack_requests import USER

ROOT = Path(__file__).parent
VENDORS = ("github", "gitlab", "jira", "linear")
FILES = sorted(p for d in [ROOT / "world" / v for v in VENDORS] + [ROOT / "fixtures" / "trackers"] for p in d.rglob("*.json"))


def _main_checkout(repo: Path) -> Path:
    """The main checkout of ``repo``: a worktree's ``.git`` file names it (gitdir: <main>/.git/worktrees/<name>)."""
    git = repo / ".git"
    if git.is_file():
        line = git.read_text().strip()
        if line.startswith("gitdir:"):
            gitdir = Path(line.split(":", 1)[1].strip())
            if gitdir.parent.name == "worktrees":
                return gitdir.parent.parent.parent
    return repo


def shared_world() -> Path | None:
    """``shared/world`` beside the repository (or its main checkout), or ``PF_SHARED_WORLD``."""
    if os.environ.get("PF_SHARED_WORLD"):
        return Path(os.environ["PF_SHARED_WORLD"])
    repo = ROOT.parent
    for base in (repo, _main_checkout(repo)):
        if (base.parent / "shared" / "world").is_dir():
            return base.parent / "shared" / "world"
    return None


SHARED = shared_world()
SHARED_FILES = sorted(p for v in VENDORS for p in (SHARED / v).rglob("*.json")) if SHARED is not None else []


def vendor(path: Path) -> str:
    base = SHARED if SHARED is not None and path.is_relative_to(SHARED) else ROOT
    return next(v for v in VENDORS if v in path.relative_to(base).parts)


def github_event(path: Path) -> str:
    return path.name.split(".", 1)[0]


def linked_url(tracker: str, path: Path, payload: dict) -> str | None:
    """The URL a host would have pasted for the item the payload is about (None: it names none)."""
    if tracker == "github":
        if github_event(path) == "issues" and payload.get("action") == "transferred":
            item = payload["issue"]
            return f"https://github.com/{item['repository_url'].split('/repos/', 1)[1]}/issues/{item['number']}"
        item = payload.get("pull_request") or payload.get("issue")
        if not item:
            return None
        kind = "pull" if payload.get("pull_request") else "issues"
        repo = (payload.get("repository") or {}).get("full_name")
        return f"https://github.com/{repo}/{kind}/{item['number']}" if repo else item.get("html_url")
    if tracker == "gitlab":
        attrs, project = payload.get("object_attributes") or {}, payload.get("project") or {}
        if payload.get("object_kind") == "note":
            # A comment: link the issue or merge request it is on (a comment never closes it).
            item = payload.get("issue") or payload.get("merge_request")
            return item.get("url") if item else None
        if payload.get("object_kind") not in ("issue", "work_item", "merge_request"):
            return None
        if not project:
            return attrs.get("url")  # a group's work item: its URL is all there is
        kind = "merge_requests" if payload["object_kind"] == "merge_request" else "issues"
        iid = attrs.get("iid") or attrs["url"].rsplit("/", 1)[1]  # client libraries' testdata has "iid " (a space)
        return f"https://gitlab.com/{project['path_with_namespace']}/-/{kind}/{iid}"
    if tracker == "jira":
        issue = payload.get("issue") or {}
        base = "https://acme.atlassian.net"
        if issue.get("self"):
            parts = urlsplit(issue["self"])
            base = f"{parts.scheme}://{parts.netloc}{parts.path.split('/rest/', 1)[0]}"
        return f"{base}/browse/{issue['key']}" if issue.get("key") else None
    data = payload.get("data") or {}
    key = data.get("identifier") or (f"{data['team']['key']}-{data['number']}" if data.get("team") and data.get("number") else None)
    return f"https://linear.app/acme/issue/{key}/x" if key else None


def closure_expected(tracker: str, path: Path, payload: dict) -> bool:
    """The vendor's own meaning of the payload: is the work done (a closure the reporter hears of)?"""
    action = payload.get("action")
    if tracker == "github":
        event = github_event(path)
        if event == "issues":
            return action == "closed"
        return event == "pull_request" and action == "closed" and payload["pull_request"].get("merged") is True
    if tracker == "gitlab":
        attrs = payload.get("object_attributes") or {}
        kind = payload.get("object_kind")
        if kind in ("issue", "work_item"):
            return attrs.get("action") == "close" and not attrs.get("moved_to_id")
        return kind == "merge_request" and attrs.get("action") == "merge"
    if tracker == "jira":
        if payload.get("webhookEvent") != "jira:issue_updated":
            return False
        fields = payload["issue"].get("fields") or {}
        items = {i.get("field"): i for i in (payload.get("changelog") or {}).get("items") or []}
        if "resolution" in items:
            return bool(items["resolution"].get("to") or items["resolution"].get("toString"))
        done = ((fields.get("status") or {}).get("statusCategory") or {}).get("key") == "done"
        return "status" in items and done and not fields.get("resolution")
    state = ((payload.get("data") or {}).get("state") or {}).get("type")
    return action == "update" and "stateId" in (payload.get("updatedFrom") or {}) and state in ("completed", "canceled", "duplicate")


def gitlab_event(path: Path, payload: dict) -> str:
    """The ``X-Gitlab-Event`` GitLab sends with such a body: work items come as issue hooks,
    confidential ones as confidential hooks, and a system hook says so."""
    if path.name.startswith("system_hook"):
        return "System Hook"
    kind = payload.get("object_kind")
    confidential = (payload.get("object_attributes") or {}).get("confidential") is True
    name = {"issue": "Issue Hook", "work_item": "Issue Hook", "merge_request": "Merge Request Hook", "note": "Note Hook"}.get(kind, "Issue Hook")
    return f"Confidential {name}" if confidential and name in ("Issue Hook", "Note Hook") else name


def signed(tracker: str, path: Path, payload: dict) -> tuple[bytes, dict]:
    if tracker == "github":
        return tr.github(github_event(path), payload)
    if tracker == "gitlab":
        body, headers = tr.gitlab_signed(payload)
        return body, {**headers, "x-gitlab-event": gitlab_event(path, payload)}
    if tracker == "jira":
        return tr.jira_signed(payload)
    return tr.linear_signed({**payload, "webhookTimestamp": int(time.time() * 1000)})


async def replay(bot, path: Path) -> None:
    tracker, payload = vendor(path), json.loads(path.read_text())
    url = linked_url(tracker, path, payload)
    if url is not None:
        await file_and_link(bot, f"reported before {path.name}", url)
    resp = await deliver(bot, tracker, *signed(tracker, path, payload))
    assert resp.status_code == 200, (resp.status_code, resp.text)
    expected = closure_expected(tracker, path, payload) and url is not None
    assert len(notices_to(bot, USER)) == (1 if expected else 0), (resp.json(), url)


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
async def test_every_vendor_payload_replayed_through_the_route_means_what_the_vendor_says(bot, path):
    await replay(bot, path)


@pytest.mark.parametrize("path", SHARED_FILES or [None], ids=[str(p.relative_to(SHARED)) for p in SHARED_FILES] or ["absent"])
async def test_the_steering_sides_vendor_suite_replayed_means_what_the_vendor_says(bot, path):
    if path is None:
        pytest.skip("no vendor suite placed: ../shared/world/<vendor>/ (or PF_SHARED_WORLD) is absent or empty")
    await replay(bot, path)


def test_the_corpus_covers_each_vendor_and_the_kinds_issue_27_named():
    names = {str(p.relative_to(ROOT / "world")) for p in FILES if p.is_relative_to(ROOT / "world")}
    for v in VENDORS:
        assert any(n.startswith(v + "/") for n in names), v
    assert {"gitlab/work_item.epic.close.json", "gitlab/work_item.epic.close.confidential.json",
            "gitlab/merge_request.update.trailing_space_keys.json", "jira/issue_deleted.server.json",
            "jira/issue_updated.done.without_resolution.json", "linear/issue.remove.json"} <= names
