"""Polling trackers: the real app's scheduled job against a fake tracker API on 127.0.0.1 that
answers as GitHub (Enterprise paths), GitLab, Jira and Linear document, with ETags, 304s and rate
limits, on SQLite and PostgreSQL. The reporter hears once, however often the poll runs."""

import base64
import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
from sqlmodel import select

from bot.closing.jobs import POLL_JOB as JOB
from bot.closing.jobs import make_poller, slot_at
from bot.policy import Closing, Hosts, Policy, Triage
from bot.trackers import github, gitlab, jira, linear, polling
from storage.models import FrictionPoint, ScheduledRun, TrackerLink
from tests import tracker_requests as tr
from tests.slack_requests import USER, slash_command

HOST, OTHER, THIRD = "U0HOST0001", "U0OTHER001", "U0THIRD001"
GITHUB_TOKEN = "ghp_polltoken000000000000000000000001"
GITLAB_TOKEN = "glpat-polltoken0000000001"
JIRA_EMAIL, JIRA_TOKEN = "bot@acme.example", "ATATT3xjiratoken0000000001"
LINEAR_KEY = "lin_api_polltoken0000000000000001"
SECRETS = [GITHUB_TOKEN, GITLAB_TOKEN, JIRA_TOKEN, LINEAR_KEY, base64.b64encode(f"{JIRA_EMAIL}:{JIRA_TOKEN}".encode()).decode()]


# ------------------------------------------------------------------ a fake tracker API


@dataclass
class Seen:
    tracker: str
    method: str
    path: str  # raw, as sent (percent-encoding kept)
    headers: dict
    status: int


@dataclass
class FakeTrackers:
    """Issues by canonical key; every request kept; answers can be scripted per tracker."""

    url: str = ""
    github: dict = field(default_factory=dict)  # "acme/platform#42" -> issue JSON
    gitlab: dict = field(default_factory=dict)  # "acme/runners#9" / "acme/runners!5" -> issue / MR JSON
    jira: dict = field(default_factory=dict)  # "NET-7" -> issue JSON
    linear: dict = field(default_factory=dict)  # "DOC-3" -> issue JSON
    scripted: dict = field(default_factory=dict)  # tracker -> [(status, headers, body)]
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def to(self, tracker: str, *, identity: bool = False) -> list[Seen]:
        """Requests to ``tracker``: the poll's, or (``identity``) those asking an issue's ids at link time."""
        with self.lock:
            return [s for s in self.seen if s.tracker == tracker
                    and ("(issue identity)" in s.headers.get("user-agent", "")) == identity]

    def script(self, tracker: str, status: int, headers: dict, body: dict) -> None:
        self.scripted.setdefault(tracker, []).append((status, headers, body))

    # -------------------------------------------------------------- documented shapes

    def github_issue(self, repo: str, number: int, state: str = "open", state_reason: str | None = None, pr_merged: bool | None = None):
        issue = {
            "url": f"{self.url}/api/v3/repos/{repo}/issues/{number}", "html_url": f"{self.url}/{repo}/issues/{number}",
            "id": 1000 + number, "node_id": "I_kwDO", "number": number, "title": "Staging deploys hang",
            "user": {"login": "octocat", "id": 1}, "labels": [], "state": state, "locked": False,
            "state_reason": state_reason, "comments": 3, "created_at": "2026-11-01T10:00:00Z",
            "updated_at": tr.tick(), "closed_at": "2026-11-24T10:00:00Z" if state == "closed" else None,
        }
        if pr_merged is not None:
            issue["html_url"] = f"{self.url}/{repo}/pull/{number}"
            issue["pull_request"] = {"url": f"{self.url}/api/v3/repos/{repo}/pulls/{number}", "html_url": issue["html_url"],
                                     "diff_url": issue["html_url"] + ".diff", "patch_url": issue["html_url"] + ".patch",
                                     "merged_at": "2026-11-24T10:00:00Z" if pr_merged else None}
        self.github[f"{repo}#{number}"] = issue

    def gitlab_item(self, project: str, iid: int, state: str, *, merge_request: bool = False):
        kind = "merge_requests" if merge_request else "issues"
        self.gitlab[f"{project}{'!' if merge_request else '#'}{iid}"] = {
            "id": 300 + iid, "iid": iid, "project_id": 15, "title": "Runner images are stale", "state": state,
            "created_at": "2026-11-01T10:00:00.000Z", "closed_at": "2026-11-24T10:00:00.000Z" if state == "closed" else None,
            "updated_at": tr.tick(),
            "web_url": f"{self.url}/{project}/-/{kind}/{iid}",
        }

    def jira_issue(self, key: str, resolution: str | None):
        self.jira[key] = {
            "expand": "renderedFields,names,schema", "id": "10001", "self": f"{self.url}/rest/api/2/issue/10001", "key": key,
            "fields": {
                "summary": "VPN drops hourly", "updated": tr.tick(),
                "status": {"name": "Done" if resolution else "In Progress",
                           "statusCategory": {"key": "done" if resolution else "indeterminate"}},
                "resolution": {"self": f"{self.url}/rest/api/2/resolution/10000", "id": "10000", "name": resolution,
                               "description": ""} if resolution else None,
            },
        }

    def linear_issue(self, key: str, state_type: str):
        self.linear[key] = {
            "id": "2174add1-f7c8-44e3-bbf3-2d60b5ea8bc9", "team": {"id": "72b2a2dc-6f4f-4423-9d34-24b5bd10634a"},
            "identifier": key, "url": f"https://linear.app/acme/issue/{key}/docs-search", "title": "Docs search is broken",
            "state": {"type": state_type}, "updatedAt": tr.tick(),
            "completedAt": "2026-11-24T10:00:00.000Z" if state_type == "completed" else None,
            "canceledAt": "2026-11-24T10:00:00.000Z" if state_type == "canceled" else None,
        }

    # -------------------------------------------------------------- answering

    def answer(self, method: str, raw_path: str, headers: dict, body: bytes) -> tuple[str, int, dict, dict | None]:
        path, query = urlsplit(raw_path).path, parse_qs(urlsplit(raw_path).query)
        if path.startswith("/api/v3/"):
            tracker = "github"
        elif path.startswith("/api/v4/"):
            tracker = "gitlab"
        elif path.startswith("/rest/api/2/"):
            tracker = "jira"
        else:
            tracker = "linear"
        with self.lock:
            scripted = self.scripted.get(tracker)
            if scripted:
                status, extra, answer = scripted.pop(0)
                return tracker, status, extra, answer
        return (tracker, *getattr(self, f"_{tracker}")(method, path, query, headers, body))

    def _github(self, method, path, query, headers, body):
        if headers.get("authorization") != f"Bearer {GITHUB_TOKEN}":
            return 401, {}, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}
        parts = path.split("/")  # /api/v3/repos/{owner}/{repo}/issues/{n}
        if method == "GET" and len(parts) == 6 and parts[3] == "repos":  # Get a repository (the docs' example ids)
            return 200, {}, {"id": 1296269, "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5", "name": parts[5],
                             "full_name": f"{parts[4]}/{parts[5]}", "private": False, "default_branch": "main"}
        if method != "GET" or len(parts) != 8 or parts[3] != "repos" or parts[6] != "issues":
            return 404, {}, {"message": "Not Found"}
        issue = self.github.get(f"{parts[4]}/{parts[5]}#{parts[7]}")
        if issue is None:
            return 404, {}, {"message": "Not Found"}
        return 200, {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4999",
                     "x-ratelimit-reset": str(int(time.time()) + 3600), "x-ratelimit-resource": "core"}, issue

    def _gitlab(self, method, path, query, headers, body):
        if headers.get("private-token") != GITLAB_TOKEN:
            return 401, {}, {"message": "401 Unauthorized"}
        parts = path.split("/")  # /api/v4/projects/{url-encoded path}/{issues|merge_requests}/{iid}
        if len(parts) != 7 or parts[3] != "projects" or "/" in parts[4]:
            return 404, {}, {"message": "404 Not found"}
        sep = "!" if parts[5] == "merge_requests" else "#"
        item = self.gitlab.get(f"{unquote(parts[4])}{sep}{parts[6]}")
        return (200, {}, item) if item else (404, {}, {"message": "404 Not found"})

    def _jira(self, method, path, query, headers, body):
        expected = "Basic " + base64.b64encode(f"{JIRA_EMAIL}:{JIRA_TOKEN}".encode()).decode()
        if headers.get("authorization") != expected:
            return 401, {}, {"errorMessages": ["You do not have permission to see the specified issue."], "errors": {}}
        issue = self.jira.get(path.rsplit("/", 1)[-1])
        if issue is None:
            return 404, {}, {"errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {}}
        wanted = query.get("fields", [""])[0].split(",")
        return 200, {}, {**issue, "fields": {k: v for k, v in issue["fields"].items() if k in wanted}}

    def _linear(self, method, path, query, headers, body):
        if headers.get("authorization") != LINEAR_KEY:
            return 400, {}, {"errors": [{"message": "Authentication required, not authenticated",
                                         "extensions": {"type": "authentication error", "code": "AUTHENTICATION_ERROR"}}]}
        request = json.loads(body)
        assert "issue(id: $id)" in request["query"]
        issue = self.linear.get(request["variables"]["id"])
        if issue is None:
            return 200, {}, {"data": None, "errors": [{"message": "Entity not found: Issue", "path": ["issue"],
                                                     "extensions": {"code": "INVALID_INPUT"}}]}
        return 200, {}, {"data": {"issue": issue}}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeTrackers

    def log_message(self, *args):
        pass

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        tracker, status, extra, answer = self.fake.answer(self.command, self.path, headers, body)
        data = json.dumps(answer).encode() if answer is not None else b""
        etag = None
        if status == 200 and tracker in ("github", "gitlab"):  # both send ETags and honour If-None-Match
            etag = 'W/"' + hashlib.sha1(data).hexdigest() + '"'
            if headers.get("if-none-match") == etag:
                status, data = 304, b""
        with self.fake.lock:
            self.fake.seen.append(Seen(tracker, self.command, self.path, headers, status))
        self.send_response(status)
        if status != 304:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if etag:
            self.send_header("ETag", etag)
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    do_GET = _handle
    do_POST = _handle


@pytest.fixture
def trackers():
    fake = FakeTrackers()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Handler,), {"fake": fake}))
    httpd.daemon_threads = True
    fake.url = f"http://127.0.0.1:{httpd.server_port}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield fake
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def policy() -> Policy:
    return Policy(hosts=Hosts(users=[HOST]), triage=Triage(channel="C0TRIAGE01"), closing=Closing(poll_minutes=5))


@pytest.fixture
def settings_overrides(trackers) -> dict:
    # GitHub Enterprise and self-managed GitLab at the fake's address, so links there are theirs.
    return {
        "github_token": GITHUB_TOKEN, "github_api_url": trackers.url + "/api/v3",
        "gitlab_token": GITLAB_TOKEN, "gitlab_api_url": trackers.url + "/api/v4",
        "jira_base_url": trackers.url, "jira_email": JIRA_EMAIL, "jira_api_token": JIRA_TOKEN,
        "linear_api_key": LINEAR_KEY, "linear_api_url": trackers.url + "/graphql",
    }


# ------------------------------------------------------------------ helpers


async def run(bot, text: str, user: str) -> None:
    await bot.post(*slash_command(text, fake_url=bot.fake.url, user=user))
    await bot.drain()


async def file_and_link(bot, text: str, url: str, user: str = USER) -> int:
    await run(bot, text, user)
    with bot.db.session() as s:
        point_id = s.exec(select(FrictionPoint.id).order_by(FrictionPoint.id.desc())).first()
    await run(bot, f"link FB-{point_id} {url}", HOST)
    with bot.db.session() as s:
        assert s.exec(select(TrackerLink).where(TrackerLink.friction_point_id == point_id)).first(), "not linked"
    return point_id


def notices_to(bot, user: str) -> list[dict]:
    return [c.body for c in bot.fake.calls_to("chat.postMessage")
            if c.body["channel"] == user and any(b.get("block_id") == "closure_feedback" for b in c.body.get("blocks", []))]


def status(bot, point_id: int) -> str:
    with bot.db.session() as s:
        return s.get(FrictionPoint, point_id).status


SLOT = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)


async def poll(bot, n: int) -> bool:
    """Run the scheduled job for the n-th slot after SLOT, then send what it queued."""
    ran = await bot.deps.scheduler.run(JOB, SLOT + timedelta(minutes=5 * n))
    await bot.drain()
    return ran


# ------------------------------------------------------------------ through the scheduled job


async def test_github_closure_is_heard_once_then_304s(bot, trackers):
    point_id = await file_and_link(bot, "staging deploys hang for ten minutes", f"{trackers.url}/acme/platform/issues/42")
    elsewhere = await file_and_link(bot, "another host's issue", "https://github.com/acme/platform/issues/7", user=OTHER)
    trackers.github_issue("acme/platform", 42, "open")
    assert await poll(bot, 0)
    assert notices_to(bot, USER) == [] and status(bot, point_id) == "linked"
    [first] = trackers.to("github")
    assert first.path == "/api/v3/repos/acme/platform/issues/42" and "if-none-match" not in first.headers
    assert first.headers["authorization"] == f"Bearer {GITHUB_TOKEN}"

    trackers.github_issue("acme/platform", 42, "closed", "completed")
    assert await poll(bot, 1)
    assert not await poll(bot, 1)  # another instance firing for the same slot does nothing
    [notice] = notices_to(bot, USER)
    assert "it's fixed" in notice["text"] and status(bot, point_id) == "resolved"
    with bot.db.session() as s:
        link = s.exec(select(TrackerLink).where(TrackerLink.friction_point_id == point_id)).one()
        assert link.closed and link.etag and link.checked_at is not None

    for n in (2, 3):
        assert await poll(bot, n)
    assert [s.status for s in trackers.to("github")] == [200, 200, 304, 304]
    assert trackers.to("github")[-1].headers["if-none-match"] == link.etag
    assert len(notices_to(bot, USER)) == 1
    # A github.com link is not this GitHub Enterprise's: never asked about, never closed.
    assert not any("/issues/7" in s.path for s in trackers.seen) and status(bot, elsewhere) == "linked"
    with bot.db.session() as s:
        runs = s.exec(select(ScheduledRun).where(ScheduledRun.job == JOB)).all()
    assert len(runs) == 4 and all(r.finished_at for r in runs)


async def test_reopened_then_closed_again_notifies_again(bot, trackers):
    point_id = await file_and_link(bot, "please add arm64 runners", f"{trackers.url}/acme/platform/issues/42")
    trackers.github_issue("acme/platform", 42, "closed", "not_planned")
    await poll(bot, 0)
    assert status(bot, point_id) == "wont_fix" and "without a fix" in json.dumps(notices_to(bot, USER)[0]["blocks"])
    trackers.github_issue("acme/platform", 42, "open", "reopened")
    await poll(bot, 1)  # still checked: it closed within the reopen window
    assert status(bot, point_id) == "linked"
    trackers.github_issue("acme/platform", 42, "closed", "completed")
    await poll(bot, 2)
    await poll(bot, 3)
    assert status(bot, point_id) == "resolved" and len(notices_to(bot, USER)) == 2


async def test_jira_gitlab_and_linear_each_close_one(bot, trackers):
    jira_point = await file_and_link(bot, "vpn drops hourly", f"{trackers.url}/browse/NET-7")
    gitlab_point = await file_and_link(bot, "runner images stale", f"{trackers.url}/acme/ci/runners/-/issues/9", user=OTHER)
    linear_point = await file_and_link(bot, "docs search broken", "https://linear.app/acme/issue/DOC-3/docs-search", user=THIRD)
    mr_point = await file_and_link(bot, "cache keys collide", f"{trackers.url}/acme/ci/runners/-/merge_requests/5", user=THIRD)
    trackers.jira_issue("NET-7", "Done")
    trackers.gitlab_item("acme/ci/runners", 9, "closed")
    trackers.gitlab_item("acme/ci/runners", 5, "merged", merge_request=True)
    trackers.linear_issue("DOC-3", "completed")
    await poll(bot, 0)
    assert len(notices_to(bot, USER)) == 1 and len(notices_to(bot, OTHER)) == 1 and len(notices_to(bot, THIRD)) == 2
    assert {status(bot, p) for p in (jira_point, gitlab_point, linear_point, mr_point)} == {"resolved"}
    assert sorted(s.path for s in trackers.to("gitlab")) == [
        "/api/v4/projects/acme%2Fci%2Frunners/issues/9", "/api/v4/projects/acme%2Fci%2Frunners/merge_requests/5"]
    [jira] = trackers.to("jira")
    assert jira.path == "/rest/api/2/issue/NET-7?fields=resolution,status,summary,updated"
    [linear] = trackers.to("linear")
    assert linear.method == "POST" and linear.headers["authorization"] == LINEAR_KEY
    # Jira "Won't Do" after a reopen is not a fix; Linear "canceled" neither.
    trackers.jira_issue("NET-7", None)
    trackers.linear_issue("DOC-3", "started")
    await poll(bot, 1)
    assert status(bot, jira_point) == "linked" and status(bot, linear_point) == "linked"
    trackers.jira_issue("NET-7", "Won't Do")
    trackers.linear_issue("DOC-3", "canceled")
    await poll(bot, 2)
    assert status(bot, jira_point) == "wont_fix" and status(bot, linear_point) == "wont_fix"


async def test_merged_pull_request_closes_closed_unmerged_does_not(bot, trackers):
    merged = await file_and_link(bot, "deploy logs are truncated", f"{trackers.url}/acme/platform/pull/77")
    unmerged = await file_and_link(bot, "flaky lint step", f"{trackers.url}/acme/platform/pull/78", user=OTHER)
    trackers.github_issue("acme/platform", 77, "closed", pr_merged=True)
    trackers.github_issue("acme/platform", 78, "closed", pr_merged=False)
    await poll(bot, 0)
    assert status(bot, merged) == "resolved" and status(bot, unmerged) == "linked"
    assert len(notices_to(bot, USER)) == 1 and notices_to(bot, OTHER) == []


async def test_the_job_is_registered_only_when_polling_is_on(bot):
    assert JOB in bot.deps.scheduler.jobs
    assert slot_at(5)(datetime(2026, 11, 24, 10, 4, 54, tzinfo=timezone.utc)) == datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)
    assert slot_at(5)(datetime(2026, 11, 24, 10, 4, 57, 500000, tzinfo=timezone.utc)) == datetime(2026, 11, 24, 10, 5, tzinfo=timezone.utc)


# ------------------------------------------------------------------ rate limits (a poller with a clock)


class Clock:
    def __init__(self):
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


async def test_rate_limited_tracker_is_left_alone_until_the_reset(bot, trackers):
    await file_and_link(bot, "staging deploys hang", f"{trackers.url}/acme/platform/issues/42")
    await file_and_link(bot, "staging db is slow", f"{trackers.url}/acme/platform/issues/43", user=OTHER)
    gitlab_point = await file_and_link(bot, "runner images stale", f"{trackers.url}/acme/runners/-/issues/9", user=THIRD)
    trackers.github_issue("acme/platform", 42, "closed", "completed")
    trackers.github_issue("acme/platform", 43, "closed", "completed")
    trackers.gitlab_item("acme/runners", 9, "closed")
    clock = Clock()
    trackers.script("github", 403, {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-used": "5000",
                                    "x-ratelimit-reset": str(int(clock.now) + 600), "x-ratelimit-resource": "core"},
                    {"message": "API rate limit exceeded for user ID 1.",
                     "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"})
    async with httpx.AsyncClient() as http:
        poller = make_poller(bot.deps, http=http, clock=clock)
        result = await poller.run()
        await bot.drain()
        assert len(trackers.to("github")) == 1 and result.rate_limited == ["github"]
        assert status(bot, gitlab_point) == "resolved"  # the other trackers carry on
        assert notices_to(bot, USER) == [] and notices_to(bot, OTHER) == []

        clock.now += 300
        await poller.run()
        assert len(trackers.to("github")) == 1  # not a single request before the reset

        clock.now += 301
        await poller.run()
        await bot.drain()
        assert len(trackers.to("github")) == 3
        assert len(notices_to(bot, USER)) == 1 and len(notices_to(bot, OTHER)) == 1


async def test_429_retry_after_and_a_limit_without_a_time(bot, trackers):
    jira_point = await file_and_link(bot, "vpn drops hourly", f"{trackers.url}/browse/NET-7")
    linear_point = await file_and_link(bot, "docs search broken", "https://linear.app/acme/issue/DOC-3/docs-search", user=OTHER)
    trackers.jira_issue("NET-7", "Fixed")
    trackers.linear_issue("DOC-3", "completed")
    trackers.script("jira", 429, {"Retry-After": "120"}, {"errorMessages": ["Rate limit exceeded."]})
    # Linear: a GraphQL RATELIMITED error that names no reset time.
    trackers.script("linear", 400, {}, {"errors": [{"message": "Rate limit exceeded", "extensions": {"code": "RATELIMITED"}}]})
    clock = Clock()
    async with httpx.AsyncClient() as http:
        poller = make_poller(bot.deps, http=http, clock=clock)
        await poller.run()
        clock.now += 59
        await poller.run()
        assert len(trackers.to("jira")) == 1 and len(trackers.to("linear")) == 1
        clock.now += 2  # 61 s: Linear's default minute is over, Jira's 120 s are not
        await poller.run()
        assert len(trackers.to("jira")) == 1 and len(trackers.to("linear")) == 2
        clock.now += 60
        await poller.run()
        await bot.drain()
    assert len(trackers.to("jira")) == 2
    assert status(bot, jira_point) == "resolved" and status(bot, linear_point) == "resolved"


async def test_tokens_never_reach_the_logs(bot, trackers, caplog):
    caplog.set_level(logging.DEBUG)
    await file_and_link(bot, "staging deploys hang", f"{trackers.url}/acme/platform/issues/42")
    await file_and_link(bot, "vpn drops hourly", f"{trackers.url}/browse/NET-7")
    await file_and_link(bot, "runner images stale", f"{trackers.url}/acme/runners/-/issues/9")
    await file_and_link(bot, "docs search broken", "https://linear.app/acme/issue/DOC-3/docs-search")
    trackers.github_issue("acme/platform", 42, "closed", "completed")
    trackers.gitlab_item("acme/runners", 9, "closed")
    trackers.script("jira", 401, {}, {"errorMessages": ["Unauthorized"]})
    trackers.script("gitlab", 429, {"Retry-After": "30"}, {"message": "Retry later"})
    await poll(bot, 0)  # GitHub: closed; Linear: no such issue; Jira: 401; GitLab: limited
    bot.deps.settings.github_token = "ghp_wrongtoken00000000000000000000001"  # read per run
    await poll(bot, 1)
    assert [s.status for s in trackers.to("github")] == [200, 401]
    assert trackers.to("linear") and len(trackers.to("jira")) == 2 and len(trackers.to("gitlab")) == 1
    assert any("rate limit" in r.getMessage() for r in caplog.records)
    text = caplog.text + " ".join(str(r.args) for r in caplog.records)
    for secret in SECRETS + ["ghp_wrongtoken00000000000000000000001"]:
        assert secret not in text


# ------------------------------------------------------------------ pure: reading answers and limits


def test_reading_answers():
    closed = {"state": "closed", "state_reason": "duplicate", "html_url": "u", "title": "t"}
    assert [e.outcome for e in github.poll_events("a/b#1", closed)] == ["not_planned"]
    assert [e.outcome for e in github.poll_events("a/b#1", {**closed, "state_reason": None})] == ["fixed"]
    assert gitlab.poll_events("a/b!5", {"state": "closed"}) == []
    assert [e.outcome for e in gitlab.poll_events("a/b#5", {"state": "opened"})] == ["reopened"]
    settings = SimpleNamespace(jira_base_url="https://j")
    policy = SimpleNamespace(closing=SimpleNamespace(jira_not_planned=["Won't Do"]))
    assert jira.poll_events("NET-1", {"fields": {"resolution": {"name": "Won't Do"}}}, settings, policy)[0].url == "https://j/browse/NET-1"
    assert linear.poll_events("DOC-1", {"data": {"issue": {"state": {"type": "triage"}}}})[0].outcome == "reopened"


def test_rate_limit_waits():
    now = 1_800_000_000.0

    def response(status, **headers):
        return httpx.Response(status, headers=headers, request=httpx.Request("GET", "https://x"))

    assert polling.rate_limit_wait(response(200, **{"x-ratelimit-remaining": "10"}), now) is None
    assert polling.rate_limit_wait(response(403), now) is None  # a plain permission problem
    assert polling.rate_limit_wait(response(403, **{"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(now) + 90)}), now) == 90
    assert polling.rate_limit_wait(response(429, **{"retry-after": "30"}), now) == 30
    assert polling.rate_limit_wait(response(429, **{"ratelimit-remaining": "0", "ratelimit-reset": str(int(now) + 45)}), now) == 45
    linear = {"x-ratelimit-requests-remaining": "0", "x-ratelimit-requests-reset": str(int((now + 20) * 1000))}
    assert polling.rate_limit_wait(response(429, **linear), now) == pytest.approx(20)
    assert polling.rate_limit_wait(response(429), now) == 0.0  # limited, no time given: the poller's default
