"""Issue #26 item 7: what one client may hold of a real ``serve`` process (``bot.runtime.http_limits``),
over raw sockets on loopback: a silent connection, a slowloris request and an idle keep-alive are
closed after their deadlines; a body sent a byte now and then is answered 408 and closed; past
``HTTP_MAX_CONNECTIONS`` new connections are closed while the server goes on answering once they
are gone; a request framed both by Content-Length and by chunks is answered 400 and its connection
closed, so the request hidden after its last chunk is never answered (RFC 9112 §6.3)."""

import socket
import time

from tests.fake_slack import FakeSlackServer
from tests.runtime.test_serve_http import serving

LIMITS = {"HTTP_HEADER_SECONDS": "1", "HTTP_BODY_SECONDS": "1.5", "HTTP_KEEP_ALIVE_SECONDS": "1", "HTTP_MAX_CONNECTIONS": "30"}
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def read_all(sock: socket.socket, within: float) -> tuple[bytes, bool]:
    """What the server sends within ``within`` seconds, and whether it closed the connection by then."""
    deadline, got = time.monotonic() + within, b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return got, False
        except ConnectionResetError:
            return got, True
        if not chunk:
            return got, True
        got += chunk
    return got, False


def closed_within(sock: socket.socket, within: float) -> bool:
    return read_all(sock, within)[1]


def test_slow_silent_and_ambiguous_clients_are_cut_off(tmp_path):
    with FakeSlackServer() as fake, serving(tmp_path, fake, f"sqlite:///{tmp_path}/bot.db", env_extra=LIMITS) as base:
        port = int(base.rsplit(":", 1)[1])
        # A connection that sends nothing, and one that sends its headers a byte at a time.
        silent, slow = connect(port), connect(port)
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        for _ in range(8):  # a header byte every 0.25 s: never done within 1 s
            try:
                slow.sendall(b"X")
            except OSError:
                break
            time.sleep(0.25)
        assert closed_within(slow, 3) and closed_within(silent, 3)
        assert time.monotonic() - started < 5

        # A kept-alive connection is answered, then closed after being idle.
        kept = connect(port)
        kept.sendall(HEALTHZ)
        answer, closed = read_all(kept, 0.5)
        assert answer.startswith(b"HTTP/1.1 200") and not closed
        assert closed_within(kept, 3)

        # A body that trickles in: 408, and the connection closed (the rest is never read).
        trickle = connect(port)
        trickle.sendall(b"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
        answer, closed = read_all(trickle, 4)
        assert answer.startswith(b"HTTP/1.1 408") and closed, answer

        # Content-Length and chunked together, with a second request hidden after the last chunk.
        smuggler = connect(port)
        smuggler.sendall(b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"0\r\n\r\n" + HEALTHZ)
        answer, closed = read_all(smuggler, 3)
        assert answer.startswith(b"HTTP/1.1 400") and closed, answer
        assert answer.count(b"HTTP/1.1 ") == 1  # the hidden request was not answered

        # The connection cap: 30 held open; the 31st is closed at once; when they go, the server answers.
        held = [connect(port) for _ in range(30)]
        extra = connect(port)
        assert closed_within(extra, 0.5)
        for sock in held:
            sock.close()
        probe = connect(port)
        probe.sendall(HEALTHZ)
        assert read_all(probe, 3)[0].startswith(b"HTTP/1.1 200")
        for sock in (silent, slow, kept, trickle, smuggler, extra, probe):
            sock.close()
    log = (tmp_path / "serve.log").read_text(errors="replace")
    assert "HTTP_MAX_CONNECTIONS" in log
