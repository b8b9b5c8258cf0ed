"""Issue #27: every tracker payload of the world corpus (tests/world/<vendor>/, vendored with
their licences; tests/world/README.md "Trackers" names the sources) and of the vendor-shaped
fixtures (tests/fixtures/trackers/) replayed through the real route, signed as the vendor signs,
with the vendor's semantics as the expectation:

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
"""

import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests import tracker_requests as tr
from tests.slack_requests import USER
from tests.test_closing import deliver, file_and_link, notices_to, policy, settings_overrides  # noqa: F401

ROOT = Path(__file__).parent
FILES = sorted(p for d in (ROOT / "world", ROOT / "fixtures" / "trackers") for p in d.rglob("*.json"))


def vendor(path: Path) -> str:
    return next(v for v in ("github", "gitlab", "jira", "linear") if v in path.relative_to(ROOT).parts)


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
        if payload.get("object_kind") not in ("issue", "work_item", "merge_request"):
            return None
        if not project:
            return attrs.get("url")  # a group's work item: its URL is all there is
        kind = "merge_requests" if payload["object_kind"] == "merge_request" else "issues"
        iid = attrs.get("iid") or attrs["url"].rsplit("/", 1)[1]  # one library's testdata has "iid " (a space)
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


def signed(tracker: str, path: Path, payload: dict) -> tuple[bytes, dict]:
    if tracker == "github":
        return tr.github(github_event(path), payload)
    if tracker == "gitlab":
        return tr.gitlab_signed(payload)
    if tracker == "jira":
        return tr.jira_signed(payload)
    return tr.linear_signed({**payload, "webhookTimestamp": int(time.time() * 1000)})


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
async def test_every_vendor_payload_replayed_through_the_route_means_what_the_vendor_says(bot, path):
    tracker, payload = vendor(path), json.loads(path.read_text())
    url = linked_url(tracker, path, payload)
    if url is not None:
        await file_and_link(bot, f"reported before {path.name}", url)
    resp = await deliver(bot, tracker, *signed(tracker, path, payload))
    assert resp.status_code == 200, (resp.status_code, resp.text)
    expected = closure_expected(tracker, path, payload) and url is not None
    assert len(notices_to(bot, USER)) == (1 if expected else 0), (resp.json(), url)
