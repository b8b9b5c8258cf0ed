"""A fake Slack Web API for benchmarks: it enforces a rate limit the way Slack reports one, and keeps
every message it accepted.

Each method may be called ``rate`` times per wall-clock second (a fixed one-second window, the
strictest reading of "N per second": no burst carries over). A call over the limit gets HTTP 429,
``{"ok": false, "error": "ratelimited"}`` and ``Retry-After`` in whole seconds until the window
ends (Slack sends whole seconds), and is not delivered. Accepted chat.postMessage calls answer as
Slack does (``channel``, ``ts``, ``message``) and are recorded in order.
"""

import itertools
import json
import math
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "xoxb-bench-token-0000"


@dataclass
class Delivery:
    at: float  # time.time() when accepted
    channel: str
    text: str


@dataclass
class RateLimitedSlack:
    rate: int  # calls per method per second
    delivered: list[Delivery] = field(default_factory=list)
    rejected: int = 0  # 429s answered
    url: str = ""
    _windows: dict = field(default_factory=dict)  # method -> (window start second, count)
    _ts: itertools.count = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, method: str, body: dict) -> tuple[int, dict, dict]:
        now = time.time()
        second = math.floor(now)
        with self._lock:
            start, count = self._windows.get(method, (second, 0))
            if start != second:
                start, count = second, 0
            if count >= self.rate:
                self.rejected += 1
                retry_after = max(1, math.ceil(start + 1 - now))
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}
            self._windows[method] = (start, count + 1)
            if method != "chat.postMessage":
                return 200, {"ok": True}, {}
            channel = str(body.get("channel", ""))
            ts = f"{int(now)}.{next(self._ts):06d}"
            self.delivered.append(Delivery(now, channel, str(body.get("text", ""))))
        im = "D" + channel[1:] if channel.startswith("U") else channel
        return 200, {"ok": True, "channel": im, "ts": ts, "message": {"type": "message", "text": body.get("text", ""), "ts": ts}}, {}


class _Handler(BaseHTTPRequestHandler):
    fake: RateLimitedSlack
    # Keep-alive, as Slack's API serves it: HTTP/1.0 (the default) closes every connection, and the
    # client's reconnecting per call was a large share of the benchmarked sender's time.
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        self._reply(self.path.rsplit("/", 1)[-1], body)

    def _reply(self, method: str, body: dict) -> None:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            status, answer, extra = 200, {"ok": False, "error": "invalid_auth"}, {}
        else:
            status, answer, extra = self.fake.answer(method, body)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default 5 drops SYNs under concurrency (a 1 s retransmit each)


class RateLimitedSlackServer:
    """``with RateLimitedSlackServer(rate=100) as fake:`` serves on a free port of 127.0.0.1."""

    def __init__(self, rate: int):
        self.fake = RateLimitedSlack(rate=rate)
        handler = type("Handler", (_Handler,), {"fake": self.fake})
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.fake.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> RateLimitedSlack:
        self.thread.start()
        return self.fake

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _serve(rate: int, conn) -> None:
    """In a process of its own: serve until told to stop, then send back what was delivered."""
    with RateLimitedSlackServer(rate) as fake:
        conn.send(fake.url)
        conn.recv()  # "stop"
        with fake._lock:
            conn.send(([(d.at, d.channel, d.text) for d in fake.delivered], fake.rejected))


class RateLimitedSlackProcess:
    """The same server in a separate process, so that it does not share the benchmarked process's
    interpreter (and GIL) as the real Slack would not. ``with ... as p:`` then ``p.url``; after the
    block, ``p.delivered`` and ``p.rejected``."""

    def __init__(self, rate: int):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(rate, child), daemon=True)
        self.url = ""
        self.delivered: list[Delivery] = []
        self.rejected = 0

    def __enter__(self) -> "RateLimitedSlackProcess":
        self._process.start()
        self.url = self._conn.recv()
        return self

    def __exit__(self, *exc):
        self._conn.send("stop")
        delivered, self.rejected = self._conn.recv()
        self.delivered = [Delivery(*d) for d in delivered]
        self._process.join(timeout=10)
