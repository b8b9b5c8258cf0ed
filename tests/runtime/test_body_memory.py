"""Issue #14: 8 concurrent 200 MB bodies must not grow a real `serve` process by more than its
per-request limit each (before: 146 MB -> 1.84 GB). Measured from /proc on the real process."""

import socket
import threading
import time
from pathlib import Path

import pytest

from tests.fake_slack import FakeSlackServer
from tests.runtime.test_serve_http import serving

BODY = 200 * 1024 * 1024
CHUNK = b"x" * (1024 * 1024)
pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def send_huge(port: int, path: str, chunked: bool, answers: list) -> None:
    """Send a 200 MB POST (with Content-Length, or chunked without one) until the server answers or closes."""
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {BODY}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        try:
            s.sendall(head.encode())
            for _ in range(BODY // len(CHUNK)):
                s.sendall(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK) if chunked else CHUNK)
        except OSError:
            pass  # the server answered and closed: it stopped reading, as it should
        try:
            answers.append(s.recv(200).split(b"\r\n")[0].decode(errors="replace"))
        except OSError as exc:
            answers.append(f"closed: {exc!r}")


def test_eight_concurrent_200_mb_bodies_keep_memory_bounded(tmp_path):
    with FakeSlackServer() as fake, serving(tmp_path, fake, f"sqlite:///{tmp_path}/bot.db", stop=False) as (base, proc):
        port = int(base.rsplit(":", 1)[1])
        baseline, peak, answers = rss_mb(proc.pid), 0.0, []
        threads = [threading.Thread(target=send_huge, args=(port, path, i % 2 == 1, answers))
                   for i, path in enumerate(["/slack/events", "/slack/events", "/webhooks/github", "/healthz"] * 2)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            peak = max(peak, rss_mb(proc.pid))
            time.sleep(0.05)
        for t in threads:
            t.join()
        proc.terminate()
        proc.wait(timeout=60)
    print(f"RSS baseline {baseline:.0f} MB, peak {peak:.0f} MB under 8 x 200 MB bodies; answers {answers}")
    # Each request holds at most its route's limit (1 MB; 5 MB for a tracker webhook) plus buffers.
    assert peak - baseline < 100, (baseline, peak)
    assert all("413" in a or "closed" in a for a in answers), answers
    assert sum("413" in a for a in answers) >= 4, answers
