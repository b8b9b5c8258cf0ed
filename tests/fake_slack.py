"""A fake Slack Web API on 127.0.0.1: a free port per test, realistic bodies per method, every
request kept, every Block Kit payload checked. Failures can be scripted per method (429, 5xx)."""

import base64
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlparse

from tests.blockkit import BlockKitError, check_message, check_view

TOKEN = "xoxb-test-token-0000"
BOT_USER = "UBOT00001"
TEAM = "T0TEAM001"

MESSAGE_METHODS = {"chat.postMessage", "chat.postEphemeral", "chat.update"}
VIEW_METHODS = {"views.open", "views.push", "views.update", "views.publish"}


@dataclass
class Call:
    method: str  # "chat.postMessage", or "response_url" for posts to a response URL
    body: dict
    headers: dict


@dataclass
class FakeSlack:
    calls: list[Call] = field(default_factory=list)
    # (channel, ts) -> message, for conversations.history / replies
    messages: dict = field(default_factory=dict)
    # method -> list of (status, body, headers) to answer with before answering normally
    scripted: dict = field(default_factory=dict)
    block_kit_errors: list[str] = field(default_factory=list)
    usergroups: dict = field(default_factory=dict)  # usergroup id -> [user ids]
    usergroup_handles: dict = field(default_factory=dict)  # usergroup id -> its handle, for usergroups.list
    uploads: dict = field(default_factory=dict)  # file id -> bytes posted to its upload URL
    # users.info / users.list: user id -> profile fields (tz, is_bot, deleted...); unknown ids are user_not_found
    users: dict = field(default_factory=dict)
    channel_members: dict = field(default_factory=dict)  # channel id -> [user ids], for conversations.members
    # conversations.info: channel id -> {"name", "is_private", "is_member"}; unknown ids are channel_not_found
    channels: dict = field(default_factory=dict)
    # The scopes Slack reports in each answer's X-OAuth-Scopes header (default: manifest.yml's)
    scopes: list = field(default_factory=lambda: ["commands", "chat:write", "reactions:read", "channels:history", "groups:history",
                                                   "usergroups:read", "files:write", "users:read", "users:read.email", "channels:read",
                                                   "groups:read", "im:history"])
    # (method, body) -> a (status, body, headers) to answer with instead, or None to answer normally:
    # Slack down for a while (5xx, 429), or failing one message. A str body is sent as is, not as JSON
    # (a proxy's error page), with the Content-Type from the headers (default text/plain).
    fail_when: Callable[[str, dict], tuple | None] | None = None
    # Bot tokens Slack knows -> what auth.test says of them; other tokens are invalid_auth.
    tokens: dict = field(default_factory=lambda: {TOKEN: {"team_id": TEAM, "enterprise_id": None, "user_id": BOT_USER,
                                                          "bot_id": "B0BOT0001", "is_enterprise_install": False}})
    # OAuth: the app's credentials, and code -> the oauth.v2.access answer that installing gives
    client_id: str = "1111111111.2222222222"
    client_secret: str = "fake-client-secret-0000"
    oauth_grants: dict = field(default_factory=dict)
    in_progress: int = 0  # requests being answered right now (a test waits for 0: every answer is out)
    _ts: itertools.count = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def script(self, method: str, *responses: tuple[int, dict, dict]) -> None:
        self.scripted.setdefault(method, []).extend(responses)

    def add_message(self, channel: str, ts: str, text: str, user: str | None = "UAUTHOR01", thread_ts: str | None = None):
        message = {"type": "message", "ts": ts, "text": text}
        if user:
            message["user"] = user
        if thread_ts:
            message["thread_ts"] = thread_ts
        self.messages[(channel, ts)] = message

    # ------------------------------------------------------------------ answers

    def answer(self, method: str, body: dict, token: str = TOKEN) -> tuple[int, dict, dict]:
        trouble = self.fail_when(method, body) if self.fail_when else None
        if trouble is not None:
            return trouble
        scripted = self.scripted.get(method)
        if scripted:
            return scripted.pop(0)
        try:
            if method in MESSAGE_METHODS:
                check_message(body)
            if method in VIEW_METHODS:
                check_view(body["view"])
        except (BlockKitError, Exception) as exc:  # any model error is a bad payload
            self.block_kit_errors.append(f"{method}: {exc}")
            return 200, {"ok": False, "error": "invalid_blocks"}, {}
        return 200, self._ok(method, body, token), {}

    def _next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def grant(self, code: str, *, team: str | None, enterprise: str | None = None, org_install: bool = False) -> str:
        """What installing the app in ``team`` (or org-wide in ``enterprise``) gives: an OAuth code
        for oauth.v2.access (Slack's documented answer shape); returns the bot token it grants."""
        token = f"xoxb-{enterprise or 'none'}-{team or 'org'}-{len(self.tokens):04d}"
        bot_user = f"UBOT{len(self.tokens):05d}"
        self.oauth_grants[code] = {
            "ok": True, "access_token": token, "token_type": "bot",
            "scope": ("commands,chat:write,reactions:read,channels:history,groups:history,usergroups:read,files:write,users:read,users:read.email,"
                      "channels:read,groups:read,im:history"),
            "bot_user_id": bot_user, "app_id": "A0APP00001",
            "team": {"id": team, "name": f"Team {team}"} if team else None,
            "enterprise": {"id": enterprise, "name": f"Org {enterprise}"} if enterprise else None,
            "is_enterprise_install": org_install,
            "authed_user": {"id": "U0INSTALL1"},
        }
        self.tokens[token] = {"team_id": team, "enterprise_id": enterprise, "user_id": bot_user,
                              "bot_id": f"B{bot_user[1:]}", "is_enterprise_install": org_install}
        return token

    def authorized(self, method: str, headers: dict, body: dict) -> bool:
        if method == "oauth.v2.access":  # the app's credentials, as HTTP Basic auth or in the body
            basic = "Basic " + base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
            return headers.get("authorization") == basic or (
                body.get("client_id") == self.client_id and body.get("client_secret") == self.client_secret)
        return headers.get("authorization", "").removeprefix("Bearer ") in self.tokens

    def _ok(self, method: str, body: dict, token: str = TOKEN) -> dict:
        if method == "auth.test":
            bot = self.tokens[token]
            return {"ok": True, "url": "https://example.slack.com/", "team": "Example", "user": "platform-feedback",
                    "team_id": bot["team_id"], "enterprise_id": bot["enterprise_id"], "user_id": bot["user_id"],
                    "bot_id": bot["bot_id"], "is_enterprise_install": bot["is_enterprise_install"]}
        if method == "oauth.v2.access":
            return self.oauth_grants.pop(body.get("code"), None) or {"ok": False, "error": "invalid_code"}
        if method == "chat.postMessage":
            channel = body["channel"]
            if channel.startswith("U"):  # a DM: Slack answers with the IM channel
                channel = "D" + channel[1:]
            ts = self._next_ts()
            return {"ok": True, "channel": channel, "ts": ts,
                    "message": {"type": "message", "text": body.get("text", ""), "user": BOT_USER, "ts": ts}}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": self._next_ts()}
        if method == "chat.update":
            return {"ok": True, "channel": body["channel"], "ts": body["ts"], "text": body.get("text", "")}
        if method == "chat.getPermalink":
            ts = body["message_ts"].replace(".", "")
            return {"ok": True, "channel": body["channel"],
                    "permalink": f"https://example.slack.com/archives/{body['channel']}/p{ts}"}
        if method in VIEW_METHODS:
            view = body["view"] if isinstance(body["view"], dict) else json.loads(body["view"])
            return {"ok": True, "view": {**view, "id": f"V{next(self._ts):08d}", "hash": "1700000000.abc"}}
        if method == "files.getUploadURLExternal":
            if not body.get("filename") or not str(body.get("length", "")).isdigit():
                return {"ok": False, "error": "invalid_arguments"}
            file_id = f"F{next(self._ts):09d}"
            self.uploads[file_id] = None
            return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}
        if method == "files.completeUploadExternal":
            files = body.get("files")
            files = json.loads(files) if isinstance(files, str) else files
            if not files or any(self.uploads.get(f["id"]) is None for f in files):
                return {"ok": False, "error": "file_not_found"}
            return {"ok": True, "files": [{"id": f["id"], "title": f.get("title", "")} for f in files]}
        if method == "usergroups.users.list":
            group = body.get("usergroup")
            if group not in self.usergroups:
                return {"ok": False, "error": "no_such_subteam"}
            return {"ok": True, "users": list(self.usergroups[group])}
        if method == "conversations.list":  # the channels of self.channels, archived ones left out when asked
            listed = [{"id": c, "is_channel": True, "is_archived": False, **info} for c, info in self.channels.items()]
            if body.get("exclude_archived") in ("true", "1", True):
                listed = [c for c in listed if not c["is_archived"]]
            page, cursor = _page(listed, body, 100)
            return {"ok": True, "channels": page, "response_metadata": {"next_cursor": cursor}}
        if method == "usergroups.list":  # handle: usergroup_handles, else the id in lower case
            return {"ok": True, "usergroups": [{"id": g, "handle": self.usergroup_handles.get(g, g.lower()), "name": g}
                                               for g in self.usergroups]}
        if method == "conversations.info":
            channel = self.channels.get(body.get("channel"))
            if channel is None:
                return {"ok": False, "error": "channel_not_found"}
            return {"ok": True, "channel": {"id": body["channel"], "is_channel": True, "is_archived": False, **channel}}
        if method in ("users.info", "users.list", "conversations.members", "users.lookupByEmail"):
            return self._directory(method, body)
        if method == "conversations.history":
            channel, latest = body.get("channel"), body.get("latest")
            found = self.messages.get((channel, latest))
            if found is None and not any(c == channel for c, _ in self.messages):
                return {"ok": False, "error": "channel_not_found"}
            is_top_level = found is not None and found.get("thread_ts", found["ts"]) == found["ts"]
            top = [found] if is_top_level else []
            return {"ok": True, "messages": top, "has_more": False}
        if method == "conversations.replies":
            channel, ts = body.get("channel"), body.get("ts")
            msg = self.messages.get((channel, ts))
            if msg is None:
                return {"ok": False, "error": "thread_not_found"}
            parent = msg.get("thread_ts") or ts
            thread = [m for (c, _), m in sorted(self.messages.items()) if c == channel and (m.get("thread_ts") or m["ts"]) == parent]
            return {"ok": True, "messages": thread, "has_more": False}
        return {"ok": True}

    def _directory(self, method: str, body: dict) -> dict:
        if method == "users.lookupByEmail":
            # Shape: docs.slack.dev/reference/methods/users.lookupByEmail and the node SDK's
            # UsersLookupByEmailResponse (ok, user: a user object as users.info's); an address no member
            # has: {"ok": false, "error": "users_not_found"} (older copies of the docs: user_not_found;
            # the bot takes both). The address is the user's "email" field here (Slack: profile.email).
            found = next((u for u, fields in self.users.items() if fields.get("email") == body.get("email")), None)
            if found is None:
                return {"ok": False, "error": "users_not_found"}
            fields = {k: v for k, v in self.users[found].items() if k != "email"}
            return {"ok": True, "user": {"id": found, "team_id": TEAM, "name": found.lower(), "deleted": False, "is_bot": False,
                                         "tz": "UTC", **fields, "profile": {"email": body["email"]}}}
        if method == "users.info":
            user = body.get("user")
            if user not in self.users:
                return {"ok": False, "error": "user_not_found"}
            return {"ok": True, "user": {"id": user, "team_id": TEAM, "name": user.lower(), "deleted": False, "is_bot": False,
                                         "tz": "UTC", **self.users[user]}}
        if method == "users.list":
            members = [{"id": u, "team_id": TEAM, "name": u.lower(), "deleted": False, "is_bot": False, "tz": "UTC", **fields}
                       for u, fields in self.users.items()]
            page, cursor = _page(members, body, 100)
            return {"ok": True, "members": page, "response_metadata": {"next_cursor": cursor}}
        channel = body.get("channel")
        if channel not in self.channel_members:
            return {"ok": False, "error": "channel_not_found"}
        page, cursor = _page(list(self.channel_members[channel]), body, 100)
        return {"ok": True, "members": page, "response_metadata": {"next_cursor": cursor}}


def _page(items: list, body: dict, default: int) -> tuple[list, str]:
    """Cursor paging as Slack does it: ``limit`` items from ``cursor`` on, and the next cursor ("" at the end)."""
    start = int(body.get("cursor") or 0)
    limit = int(body.get("limit") or default)
    end = start + limit
    return items[start:end], (str(end) if end < len(items) else "")


class _Handler(BaseHTTPRequestHandler):
    fake: FakeSlack

    def log_message(self, *args):  # keep test output clean
        pass

    def _handle(self):
        with self.fake._lock:
            self.fake.in_progress += 1
        try:
            self._answer()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up first (a test held the answer)
            pass
        finally:
            with self.fake._lock:
                self.fake.in_progress -= 1

    def _answer(self):
        parsed = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        if parsed.path.startswith("/upload/"):  # step 2 of files_upload_v2: the file's bytes
            file_id = parsed.path.rsplit("/", 1)[-1]
            trouble = self.fake.fail_when("upload", {"file_id": file_id}) if self.fake.fail_when else None
            if trouble is not None:  # its status, with its (text) body
                with self.fake._lock:
                    self.fake.calls.append(Call("upload", {"file_id": file_id, "size": len(data)}, dict(self.headers)))
                answer = str(trouble[1]).encode()
                self.send_response(trouble[0])
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                return
            ok = file_id in self.fake.uploads
            if ok:
                self.fake.uploads[file_id] = data
            with self.fake._lock:
                self.fake.calls.append(Call("upload", {"file_id": file_id, "size": len(data)}, dict(self.headers)))
            answer = f"OK - {len(data)}".encode() if ok else b"not found"
            self.send_response(200 if ok else 404)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
            return
        raw = data.decode("utf-8")
        ctype = self.headers.get("Content-Type", "")
        if "json" in ctype and raw:
            body = json.loads(raw)
        else:
            body = dict(parse_qsl(raw)) | dict(parse_qsl(parsed.query))
        headers = {k.lower(): v for k, v in self.headers.items()}
        if parsed.path.startswith("/response_url/"):
            method = "response_url"
            status, answer, extra = 200, {"ok": True}, {}
            try:
                check_message(body)
            except Exception as exc:  # noqa: BLE001
                self.fake.block_kit_errors.append(f"response_url: {exc}")
        else:
            method = parsed.path.rsplit("/", 1)[-1]
            if not self.fake.authorized(method, headers, body):
                status, answer, extra = 200, {"ok": False, "error": "invalid_auth"}, {}
            else:
                token = headers.get("authorization", "").removeprefix("Bearer ")
                status, answer, extra = self.fake.answer(method, body, token)
                if method != "oauth.v2.access":  # Slack names the token's scopes on every Web API answer
                    extra = {"X-OAuth-Scopes": ",".join(self.fake.scopes), **extra}
        with self.fake._lock:
            self.fake.calls.append(Call(method, body, headers))
        content_type = "application/json; charset=utf-8"
        if isinstance(answer, str):  # not Slack's JSON: e.g. a load balancer's error page
            content_type = extra.get("Content-Type", "text/plain; charset=utf-8")
            extra = {k: v for k, v in extra.items() if k != "Content-Type"}
            data = answer.encode()
        else:
            data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    do_GET = _handle
    do_POST = _handle


class FakeSlackServer:
    def __init__(self):
        self.fake = FakeSlack()
        handler = type("Handler", (_Handler,), {"fake": self.fake})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.fake.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> FakeSlack:
        self.thread.start()
        return self.fake

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
