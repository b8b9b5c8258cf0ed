"""A fake of the four trackers' issue-creating APIs on 127.0.0.1 (a free port per test), answering
in each API's documented shapes (tests/world/SOURCES.md, "Creating issues"): GitHub REST (Create an
issue, List repository issues, Get a repository), GitLab REST (New issue, List project issues, Get
a single project), Jira REST v2 (Create issue, search/jql, mypermissions) and Linear GraphQL
(teams, issueCreate, issues). Every request is kept; answers can be scripted per tracker, and a
create can be made to answer late (after the issue exists), as a timeout after the tracker made it.

Ids follow tests/tracker_requests.py so its deliveries name the same issues: GitHub issue id
1000+number in repository 42, GitLab id 300+iid in project 15, Jira id 10000+n."""

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

GITHUB_TOKEN = "ghp_createtoken00000000000000000000001"
GITLAB_TOKEN = "glpat-createtoken000000001"
JIRA_EMAIL, JIRA_TOKEN = "bot@acme.example", "ATATT3xcreatetoken00000001"
LINEAR_KEY = "lin_api_createtoken000000000000001"
LINEAR_TEAM = "72b2a2dc-6f4f-4423-9d34-24b5bd10634a"


@dataclass
class Seen:
    tracker: str
    method: str
    path: str
    body: dict | None
    status: int


@dataclass
class FakeCreateTrackers:
    url: str = ""
    issues: dict = field(default_factory=lambda: {"github": [], "gitlab": [], "jira": [], "linear": []})
    seen: list[Seen] = field(default_factory=list)
    scripted: dict = field(default_factory=dict)  # (tracker, "create"|"find"|"access") -> [(status, headers, body)]
    late: dict = field(default_factory=dict)  # tracker -> seconds a create waits after making the issue
    lock: threading.Lock = field(default_factory=threading.Lock)

    def creates(self, tracker: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.tracker == tracker and _is_create(s)]

    def script(self, tracker: str, kind: str, status: int, body: dict, headers: dict | None = None) -> None:
        self.scripted.setdefault((tracker, kind), []).append((status, headers or {}, body))

    # -------------------------------------------------------------- answering

    def answer(self, method: str, raw: str, headers: dict, body: bytes):
        parts = urlsplit(raw)
        path, query = parts.path, parse_qs(parts.query)
        data = json.loads(body) if body else None
        tracker = ("github" if path.startswith("/api/v3/") else "gitlab" if path.startswith("/api/v4/")
                   else "jira" if path.startswith("/rest/api/2/") else "linear")
        kind = _kind(tracker, method, path, data)
        with self.lock:
            scripted = self.scripted.get((tracker, kind))
            if scripted:
                status, extra, answer = scripted.pop(0)
                self.seen.append(Seen(tracker, method, raw, data, status))
                return status, extra, answer, 0.0
        status, extra, answer = getattr(self, f"_{tracker}")(method, path, query, headers, data, kind)
        with self.lock:
            self.seen.append(Seen(tracker, method, raw, data, status))
        return status, extra, answer, (self.late.get(tracker, 0.0) if kind == "create" and status in (200, 201) else 0.0)

    def _new(self, tracker: str, issue: dict) -> dict:
        with self.lock:
            self.issues[tracker].append(issue)
        return issue

    def _github(self, method, path, query, headers, data, kind):
        if headers.get("authorization") != f"Bearer {GITHUB_TOKEN}":
            return 401, {}, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}
        parts = path.split("/")  # /api/v3/repos/{owner}/{repo}[/issues]
        repo = f"{parts[4]}/{parts[5]}"
        if kind == "access":
            return 200, {}, {"id": 42, "full_name": repo, "has_issues": True,
                             "permissions": {"admin": False, "maintain": False, "push": True, "triage": True, "pull": True}}
        if kind == "find":
            mine = [i for i in self.issues["github"] if i["repository_url"].endswith(f"/repos/{repo}")]
            return 200, {}, list(reversed(mine))[: int(query.get("per_page", ["30"])[0])]
        number = len(self.issues["github"]) + 42
        issue = self._new("github", {
            "id": 1000 + number, "node_id": "I_kwDOfake", "number": number, "title": data["title"], "body": data["body"],
            "url": f"{self.url}/api/v3/repos/{repo}/issues/{number}", "repository_url": f"{self.url}/api/v3/repos/{repo}",
            "html_url": f"{self.url}/{repo}/issues/{number}", "state": "open", "locked": False,
            "labels": [{"id": 208045946 + i, "name": n, "default": False} for i, n in enumerate(data.get("labels") or [])],
            "user": {"login": "platform-feedback[bot]", "id": 9, "type": "Bot"}, "assignee": None, "assignees": [],
            "comments": 0, "created_at": "2026-12-07T10:00:00Z", "updated_at": "2026-12-07T10:00:00Z", "closed_at": None,
        })
        return 201, {"location": issue["url"]}, issue

    def _gitlab(self, method, path, query, headers, data, kind):
        if headers.get("private-token") != GITLAB_TOKEN:
            return 401, {}, {"message": "401 Unauthorized"}
        project = unquote(path.split("/")[4])
        if kind == "access":
            return 200, {}, {"id": 15, "path_with_namespace": project, "issues_enabled": True, "visibility": "private",
                             "permissions": {"project_access": {"access_level": 30, "notification_level": 3}, "group_access": None}}
        if kind == "find":
            mine = [i for i in self.issues["gitlab"] if i["references"]["full"].startswith(project + "#")]
            return 200, {}, list(reversed(mine))
        if not data.get("title"):
            return 400, {}, {"message": {"title": ["can't be blank"]}}
        iid = len(self.issues["gitlab"]) + 9
        issue = self._new("gitlab", {
            "id": 300 + iid, "iid": iid, "project_id": 15, "title": data["title"], "description": data["description"],
            "state": "opened", "labels": [name for name in (data.get("labels") or "").split(",") if name],
            "created_at": "2026-12-07T10:00:00.000Z", "updated_at": "2026-12-07T10:00:00.000Z",
            "web_url": f"{self.url}/{project}/-/issues/{iid}", "references": {"short": f"#{iid}", "full": f"{project}#{iid}"},
            "author": {"id": 9, "username": "platform-feedback-bot"},
        })
        return 201, {}, issue

    def _jira(self, method, path, query, headers, data, kind):
        import base64

        if headers.get("authorization") != "Basic " + base64.b64encode(f"{JIRA_EMAIL}:{JIRA_TOKEN}".encode()).decode():
            return 401, {}, {"errorMessages": ["You are not authenticated. Authentication required to perform this operation."],
                             "errors": {}}
        if kind == "access":
            return 200, {}, {"permissions": {"CREATE_ISSUES": {"id": "11", "key": "CREATE_ISSUES", "name": "Create Issues",
                                                               "type": "PROJECT", "havePermission": True}}}
        if kind == "find":
            project = query["jql"][0].split('"')[1]
            mine = [{"id": i["id"], "key": i["key"], "self": i["self"],
                     "fields": {"summary": i["fields"]["summary"], "description": i["fields"]["description"]}}
                    for i in reversed(self.issues["jira"]) if i["key"].startswith(project + "-")]
            return 200, {}, {"issues": mine, "isLast": True}
        fields = data["fields"]
        n = len(self.issues["jira"]) + 7
        issue = self._new("jira", {"id": str(10000 + n), "key": f"{fields['project']['key']}-{n}",
                                   "self": f"{self.url}/rest/api/2/issue/{10000 + n}", "fields": fields})
        return 201, {}, {"id": issue["id"], "key": issue["key"], "self": issue["self"]}

    def _linear(self, method, path, query, headers, data, kind):
        if headers.get("authorization") != LINEAR_KEY:
            return 400, {}, {"errors": [{"message": "Authentication required, not authenticated",
                                         "extensions": {"type": "authentication error", "code": "AUTHENTICATION_ERROR",
                                                        "userPresentableMessage": "You need to authenticate to access this operation."}}]}
        variables = data.get("variables") or {}
        if kind in ("team", "access"):
            nodes = [{"id": LINEAR_TEAM, "key": variables["key"], "labels": {"nodes": [
                {"id": "lbl-1", "name": "platform-feedback"}, {"id": "lbl-2", "name": "bug"}]}}] if variables["key"] == "DOC" else []
            return 200, {}, {"data": {"teams": {"nodes": nodes}}}
        if kind == "find":
            found = [i for i in reversed(self.issues["linear"]) if variables["marker"] in i["description"]]
            return 200, {}, {"data": {"issues": {"nodes": [{k: i[k] for k in ("id", "identifier", "url", "team")} for i in found]}}}
        given = variables["input"]
        n = len(self.issues["linear"]) + 3
        issue = self._new("linear", {"id": str(uuid.uuid4()), "identifier": f"DOC-{n}", "url": f"https://linear.app/acme/issue/DOC-{n}/x",
                                     "team": {"id": given["teamId"]}, "title": given["title"], "description": given["description"],
                                     "labelIds": given.get("labelIds", [])})
        return 200, {}, {"data": {"issueCreate": {"success": True, "issue": {k: issue[k] for k in ("id", "identifier", "url", "team")}}}}


def _kind(tracker: str, method: str, path: str, data) -> str:
    if tracker == "linear":
        query = (data or {}).get("query", "")
        return "create" if "issueCreate" in query else "find" if "issues(" in query else "team"
    if tracker == "jira":
        return "create" if method == "POST" else "find" if "/search" in path else "access"
    if method == "POST":
        return "create"
    return "find" if path.rstrip("/").endswith("/issues") else "access"


def _is_create(seen: Seen) -> bool:
    return _kind(seen.tracker, seen.method, urlsplit(seen.path).path, seen.body) == "create"


class _Handler(BaseHTTPRequestHandler):
    fake: FakeCreateTrackers

    def log_message(self, *args):
        pass

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, extra, answer, late = self.fake.answer(self.command, self.path, headers, body)
        if late:
            time.sleep(late)  # the issue exists already: the client gives up first
        data = json.dumps(answer).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left

    do_GET = _handle
    do_POST = _handle


def serve() -> tuple[FakeCreateTrackers, ThreadingHTTPServer]:
    fake = FakeCreateTrackers()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Handler,), {"fake": fake}))
    httpd.daemon_threads = True
    fake.url = f"http://127.0.0.1:{httpd.server_port}"
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return fake, httpd
