"""The benchmarks' rate-limited fake Slack (``bench.rate_limited_slack``), plus what a survey run
reads before it sends: ``conversations.members`` and ``users.list`` (cursor paging, GET as slack_sdk
sends them) and ``users.info``. Every method keeps the same per-second limit and 429 answers;
``rates`` sets a different limit per method (e.g. a slower directory)."""

import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlparse

from bench.rate_limited_slack import RateLimitedSlack, RateLimitedSlackServer, _Handler

DIRECTORY = {"conversations.members", "users.list", "users.info"}


@dataclass
class SurveySlack(RateLimitedSlack):
    users: dict[str, dict] = field(default_factory=dict)  # user id -> profile fields (tz, is_bot...)
    channel_members: dict[str, list[str]] = field(default_factory=dict)
    rates: dict[str, int] = field(default_factory=dict)  # method -> calls per second, over ``rate``
    calls: dict[str, int] = field(default_factory=dict)  # method -> calls answered (429s included)
    _swap: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, method: str, body: dict) -> tuple[int, dict, dict]:
        with self._swap:  # the base class reads ``rate``: one method's limit at a time
            self.calls[method] = self.calls.get(method, 0) + 1
            saved, self.rate = self.rate, self.rates.get(method, self.rate)
            try:
                status, answer, headers = super().answer(method, body)
            finally:
                self.rate = saved
        if status != 200 or method not in DIRECTORY:
            return status, answer, headers
        return 200, self._directory(method, body), {}

    def _directory(self, method: str, body: dict) -> dict:
        if method == "users.info":
            user = body.get("user")
            if user not in self.users:
                return {"ok": False, "error": "user_not_found"}
            return {"ok": True, "user": self._member(user)}
        if method == "users.list":
            page, cursor = _page(list(self.users), body, 100)
            return {"ok": True, "members": [self._member(u) for u in page], "response_metadata": {"next_cursor": cursor}}
        channel = body.get("channel")
        if channel not in self.channel_members:
            return {"ok": False, "error": "channel_not_found"}
        page, cursor = _page(self.channel_members[channel], body, 100)
        return {"ok": True, "members": page, "response_metadata": {"next_cursor": cursor}}

    def _member(self, user: str) -> dict:
        return {"id": user, "team_id": "T0BENCH01", "name": user.lower(), "deleted": False, "is_bot": False, "tz": "UTC", **self.users[user]}


def _page(items: list, body: dict, default: int) -> tuple[list, str]:
    start = int(body.get("cursor") or 0)
    end = start + int(body.get("limit") or default)
    return items[start:end], (str(end) if end < len(items) else "")


class _SurveyHandler(_Handler):
    def do_GET(self):
        """slack_sdk sends the directory reads as GET with the arguments in the query string."""
        parsed = urlparse(self.path)
        self._reply(parsed.path.rsplit("/", 1)[-1], dict(parse_qsl(parsed.query)))


class SurveySlackServer(RateLimitedSlackServer):
    """``with SurveySlackServer(rate=100) as fake:`` on a free port of 127.0.0.1."""

    def __init__(self, rate: int):
        super().__init__(rate)
        self.httpd.RequestHandlerClass = type("Handler", (_SurveyHandler,), {"fake": None})
        self.fake = SurveySlack(rate=rate, url=self.fake.url)
        self.httpd.RequestHandlerClass.fake = self.fake


def _serve(rate: int, setup: dict, conn) -> None:
    """In a process of its own: serve until told to stop, then send back what happened."""
    with SurveySlackServer(rate) as fake:
        fake.users.update(setup.get("users", {}))
        fake.channel_members.update(setup.get("channel_members", {}))
        fake.rates.update(setup.get("rates", {}))
        conn.send(fake.url)
        conn.recv()  # "stop"
        with fake._lock:
            conn.send(([(d.at, d.channel, d.text) for d in fake.delivered], fake.rejected, dict(fake.calls)))


class SurveySlackProcess:
    """SurveySlackServer in a separate process, so that it does not share the benchmarked
    process's interpreter (and GIL), as the real Slack would not. ``with SurveySlackProcess(rate,
    users=..., channel_members=..., rates=...) as fake:`` then ``fake.url``; after the block
    ``fake.delivered`` (bench.rate_limited_slack.Delivery), ``fake.rejected`` (429s) and
    ``fake.calls`` (method -> calls answered)."""

    def __init__(self, rate: int, **setup):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(rate, setup, child), daemon=True)
        self.url = ""
        self.delivered: list = []
        self.rejected = 0
        self.calls: dict[str, int] = {}

    def __enter__(self) -> "SurveySlackProcess":
        self._process.start()
        self.url = self._conn.recv()
        return self

    def __exit__(self, *exc):
        from bench.rate_limited_slack import Delivery

        self._conn.send("stop")
        delivered, self.rejected, self.calls = self._conn.recv()
        self.delivered = [Delivery(*d) for d in delivered]
        self._process.join(timeout=10)
