"""Tracker webhook deliveries in each tracker's documented format, signed as each tracker signs."""

import hashlib
import hmac
import itertools
import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

GITHUB_SECRET = "It's a Secret to Everybody"
JIRA_SECRET = "jira-webhook-secret-0001"
LINEAR_SECRET = "lin_wh_signing_secret_0001"
GITLAB_TOKEN = "gitlab-token-0001"
SETTINGS = {
    "github_webhook_secret": GITHUB_SECRET,
    "jira_webhook_secret": JIRA_SECRET,
    "linear_webhook_secret": LINEAR_SECRET,
    "gitlab_webhook_token": GITLAB_TOKEN,
}


_TICKS = itertools.count(1)


def tick() -> str:
    """A tracker timestamp later than every one handed out before: each built payload is a new
    state of its issue (a replay reuses the body, and so its time)."""
    return (datetime(2026, 11, 24, 10, tzinfo=timezone.utc) + timedelta(seconds=next(_TICKS))).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github(event: str, payload: dict, *, delivery: str | None = None, secret: str = GITHUB_SECRET,
           form: bool = False) -> tuple[bytes, dict]:
    """Signed as GitHub signs: over the raw body, JSON or (``form``, GitHub's default content
    type) ``payload=<url-encoded JSON>``."""
    body = json.dumps(payload).encode()
    if form:
        body = urlencode({"payload": body.decode()}).encode()
    return body, {
        "content-type": "application/x-www-form-urlencoded" if form else "application/json",
        "x-github-event": event,
        "x-github-delivery": delivery or str(uuid.uuid4()),
        "x-hub-signature-256": "sha256=" + _hex(secret, body),
        "user-agent": "GitHub-Hookshot/abc123",
    }


def github_issue(repo: str, number: int, action: str = "closed", state_reason: str | None = "completed",
                 *, updated_at: str | None = None, default_branch: str = "main") -> dict:
    owner, name = repo.split("/")
    updated_at = updated_at or tick()
    return {
        "action": action,
        "issue": {
            "url": f"https://api.github.com/repos/{repo}/issues/{number}",
            "html_url": f"https://github.com/{repo}/issues/{number}",
            "id": 1000 + number, "number": number, "title": "Staging deploys hang",
            "state": "closed" if action == "closed" else "open", "state_reason": state_reason if action == "closed" else None,
            "closed_at": updated_at if action == "closed" else None, "updated_at": updated_at,
            "user": {"login": "octocat", "id": 1},
        },
        "repository": {"id": 42, "name": name, "full_name": repo, "html_url": f"https://github.com/{repo}", "owner": {"login": owner},
                       "default_branch": default_branch},
        "sender": {"login": "octocat", "id": 1, "type": "User"},
    }


def github_pr_merged(repo: str, number: int, body: str, *, base: str = "main") -> dict:
    payload = github_issue(repo, number)
    merged_at = payload.pop("issue")["updated_at"]
    payload["number"] = number
    payload["pull_request"] = {
        "url": f"https://api.github.com/repos/{repo}/pulls/{number}", "html_url": f"https://github.com/{repo}/pull/{number}",
        "number": number, "state": "closed", "title": "Speed up staging deploys", "body": body,
        "merged": True, "merged_at": merged_at, "updated_at": merged_at, "merge_commit_sha": "abc123",
        "base": {"ref": base, "repo": {"id": 42, "full_name": repo, "default_branch": payload["repository"]["default_branch"]}},
    }
    return payload


def jira(key: str, resolution: str | None, *, secret: str = JIRA_SECRET, delivery: str | None = None,
         issue_id: str = "10001", changelog: list | None = None) -> tuple[bytes, dict]:
    payload = {
        "timestamp": int(datetime.fromisoformat(tick().replace("Z", "+00:00")).timestamp() * 1000),
        "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": "issue_generic",
        "user": {"accountId": "5b10a2844c20165700ede21g", "displayName": "Host"},
        "issue": {
            "id": issue_id, "self": f"https://acme.atlassian.net/rest/api/2/issue/{issue_id}", "key": key,
            "fields": {
                "summary": "VPN drops hourly",
                "status": {"name": "Done" if resolution else "To Do", "statusCategory": {"key": "done" if resolution else "new"}},
                "resolution": {"name": resolution} if resolution else None,
            },
        },
        "changelog": {"id": "10100", "items": changelog if changelog is not None else [
            {"field": "resolution", "fieldtype": "jira", "from": None if resolution else "10000",
             "fromString": None if resolution else "Done", "to": "10000" if resolution else None, "toString": resolution},
            {"field": "status", "fieldtype": "jira", "fromString": "In Progress", "toString": "Done" if resolution else "To Do"},
        ]},
    }
    return jira_signed(payload, secret=secret, delivery=delivery)


def jira_signed(payload: dict, *, secret: str = JIRA_SECRET, delivery: str | None = None) -> tuple[bytes, dict]:
    body = json.dumps(payload).encode()
    return body, {
        "content-type": "application/json",
        "x-hub-signature": "sha256=" + _hex(secret, body),
        "x-atlassian-webhook-identifier": delivery or str(uuid.uuid4()),
        "x-atlassian-webhook-retry": "0",
    }


def linear(identifier: str, state_type: str, updated_from: dict, *, timestamp_ms: int | None = None,
           secret: str = LINEAR_SECRET, issue_id: str | None = None, previous: list | None = None) -> tuple[bytes, dict]:
    payload = {
        "action": "update", "type": "Issue", "createdAt": "2026-11-24T10:00:00.000Z",
        "organizationId": "org-1", "url": f"https://linear.app/acme/issue/{identifier}/docs-search",
        "data": {"id": issue_id or str(uuid.uuid4()), "identifier": identifier, "updatedAt": tick(),
                 "previousIdentifiers": previous or [], "title": "Docs search is broken",
                 "url": f"https://linear.app/acme/issue/{identifier}/docs-search",
                 "state": {"id": "state-2", "name": state_type.title(), "type": state_type, "color": "#5e6ad2"}},
        "updatedFrom": updated_from,
        "webhookTimestamp": timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
        "webhookId": str(uuid.uuid4()),
    }
    return linear_signed(payload, secret=secret)


def linear_signed(payload: dict, *, secret: str = LINEAR_SECRET) -> tuple[bytes, dict]:
    body = json.dumps(payload).encode()
    return body, {"content-type": "application/json", "linear-signature": _hex(secret, body),
                  "linear-delivery": str(uuid.uuid4()), "linear-event": "Issue"}


def gitlab(project: str, iid: int, action: str = "close", *, kind: str = "issue", description: str = "",
           token: str = GITLAB_TOKEN) -> tuple[bytes, dict]:
    payload = {
        "object_kind": kind, "event_type": kind,
        "user": {"id": 1, "name": "Host", "username": "host"},
        "project": {"id": 15, "name": project.rsplit("/", 1)[-1], "path_with_namespace": project, "default_branch": "main",
                    "web_url": f"https://gitlab.com/{project}"},
        "object_attributes": {
            "id": 300 + iid, "iid": iid, "title": "Runner images are stale", "description": description,
            "updated_at": tick(), "target_branch": "main",
            "state": {"close": "closed", "reopen": "opened", "merge": "merged"}[action], "action": action,
            "url": f"https://gitlab.com/{project}/-/{'issues' if kind == 'issue' else 'merge_requests'}/{iid}",
        },
    }
    return gitlab_signed(payload, token=token)


def gitlab_signed(payload: dict, *, token: str = GITLAB_TOKEN) -> tuple[bytes, dict]:
    kind = payload.get("object_kind")
    body = json.dumps(payload).encode()
    return body, {"content-type": "application/json", "x-gitlab-token": token,
                  "x-gitlab-event": "Issue Hook" if kind == "issue" else "Merge Request Hook",
                  "x-gitlab-event-uuid": str(uuid.uuid4()), "idempotency-key": str(uuid.uuid4())}
