"""`platform-feedback serve` as a real process on a real port, against the fake Slack over TCP."""

import hashlib
import hmac
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from storage.database import Database
from storage.models import FrictionPoint
from tests.fake_slack import TOKEN, FakeSlack, FakeSlackServer
from tests.slack_requests import SIGNING_SECRET, signed, slash_command
from tests.waiting import WAIT_SECONDS, wait_for

REPO = Path(__file__).resolve().parents[2]
START_SECONDS = 120  # `serve` up and answering /healthz, on a loaded machine


# `platform-feedback serve`, with the serving interpreter's DEBUG line (bot.runtime.interpreter: how
# many objects were frozen) in the log, so run_serve_test can see it was set before serving.
SERVE_TELLING_ITS_INTERPRETER = ("import logging, sys; logging.getLogger('bot.runtime.interpreter').setLevel(logging.DEBUG); "
                                 "from bot.runtime.cli import main; sys.exit(main(sys.argv[1:]))")


def free_port() -> int:
    """A port free now, below Linux's ephemeral range (32768-60999, ip_local_port_range): a port the
    kernel handed out for binding 0 is also one it hands out as the source port of other tests'
    connections, and one taken that way while a killed ``serve`` restarts refused its bind
    ("Address already in use", the chaos run)."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20000, 32768)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 32767")


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
    """Ask ``proc`` to stop with ``sig``; kill it if it has not within ``timeout`` seconds."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def sign_bytes(body: bytes, content_type: str) -> dict:
    """Slack's v0 signature over raw bytes (the helpers in slack_requests take text)."""
    ts = str(int(time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"content-type": content_type, "x-slack-request-timestamp": ts, "x-slack-signature": f"v0={digest}"}


def wait_until(check, *, what: str, log: Path, timeout: float = WAIT_SECONDS):
    """tests.waiting.wait_for, with the server's log when it gives up."""
    try:
        return wait_for(check, what=what, timeout=timeout, interval=0.1)
    except AssertionError as exc:
        pytest.fail(f"{exc}; server log:\n{log.read_text(errors='replace')}")


@contextmanager
def serving(tmp_path: Path, fake: FakeSlack, database_url: str, *, stop: bool = True, args: tuple[str, ...] = (),
            env_extra: dict | None = None):
    """Run `python -m bot.runtime.cli serve [args]` until /healthz is up; yield its base URL; always stop it.
    ``stop=False``: yield (base URL, process) for a test that ends the process itself."""
    port, log = free_port(), tmp_path / "serve.log"
    env = {
        "PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO),
        "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake.url + "/api/", "DATABASE_URL": database_url,
        "PORT": str(port), "HOST": "127.0.0.1", **(env_extra or {}),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", SERVE_TELLING_ITS_INTERPRETER, "serve", *args], cwd=tmp_path, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def healthy():
        assert proc.poll() is None, f"serve exited with {proc.returncode}:\n{log.read_text(errors='replace')}"
        try:
            r = httpx.get(base + "/healthz", timeout=10)
        except httpx.TransportError:
            return False
        return r.status_code == 200 and r.json()["ok"] is True

    try:
        # A start on a loaded machine (imports, migrations, the chart process) can take a minute.
        wait_until(healthy, timeout=START_SECONDS, what="GET /healthz to answer 200", log=log)
        if not stop:
            yield base, proc
            return
        yield base
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve did not exit within {WAIT_SECONDS:g} s of SIGTERM:\n{log.read_text(errors='replace')}")
        output = log.read_text(errors="replace")
        # uvicorn shuts down gracefully (lifespan, outbox sender), then re-raises the signal.
        assert proc.returncode in (0, -signal.SIGTERM), output
        assert "Application shutdown complete" in output and "Traceback" not in output, output
        # Not a terminal: one JSON object per line, and never a secret.
        records = [json.loads(line) for line in output.splitlines() if line.strip()]
        assert all({"time", "level", "name", "message"} <= r.keys() for r in records)
        assert TOKEN not in output and SIGNING_SECRET not in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def exercise(base: str, fake: FakeSlack, log_dir: Path, text: str) -> str:
    """Drive the running server over TCP; returns the reference the bot answered with."""
    with httpx.Client(base_url=base, timeout=WAIT_SECONDS) as http:
        def post(body, headers) -> httpx.Response:
            return http.post("/slack/events", content=body if isinstance(body, bytes) else body.encode(), headers=headers)

        resp = post(*slash_command(text, fake_url=fake.url))
        assert resp.status_code == 200
        answer = resp.json()["text"]  # a one-line report is stored before its ack, which answers it

        body, headers = slash_command("this must never be stored anywhere", fake_url=fake.url)
        assert post(body, {**headers, "x-slack-signature": "v0=" + "0" * 64}).status_code == 401
        assert post(body, signed(body, secret="the-wrong-secret-0000", content_type=headers["content-type"])).status_code == 401

        latin1 = "text=caf\xe9 ist kaputt&command=/platform-feedback".encode("latin-1")
        assert post(latin1, sign_bytes(latin1, "application/x-www-form-urlencoded")).status_code == 400

        for content_type, broken in [("application/json", b'{"type": "event_callback", "event": {'),
                                     ("application/x-www-form-urlencoded", b"payload=%7Bnot+json")]:
            status = post(broken, sign_bytes(broken, content_type)).status_code
            assert 400 <= status < 500, f"signed {content_type} body that does not parse answered {status}"
    return re.search(r"FB-\d+", answer).group(0)


def stored_reference(database_url: str, text: str) -> str:
    """The reference of the one data point with ``text``; and nothing from the rejected requests."""
    db = Database(database_url)
    try:
        with db.session() as s:
            texts = [p.text for p in s.exec(select(FrictionPoint)).all()]
            [point] = s.exec(select(FrictionPoint).where(FrictionPoint.text == text)).all()
        assert not [t for t in texts if "never be stored" in t or "kaputt" in t]
        return f"FB-{point.id}"
    finally:
        db.dispose()


def run_serve_test(tmp_path: Path, database_url: str) -> str:
    text = f"the staging deploy pipeline is flaky again {uuid.uuid4().hex[:8]}"
    with FakeSlackServer() as fake, serving(tmp_path, fake, database_url) as base:
        reference = exercise(base, fake, tmp_path, text)
    assert not fake.block_kit_errors, fake.block_kit_errors
    assert reference == stored_reference(database_url, text)
    # The serving interpreter was set before it served (bot.runtime.interpreter): the start's
    # objects frozen, so a full collection no longer stops the event loop for ~45 ms.
    frozen = re.search(r"serving interpreter: (\d+) objects .* switch interval ([\d.]+) ms", (tmp_path / "serve.log").read_text())
    assert frozen and int(frozen.group(1)) > 50_000 and float(frozen.group(2)) <= 1, (tmp_path / "serve.log").read_text()[-2000:]
    return reference


def test_serve_over_http_on_sqlite(tmp_path):
    # A fresh file: serve migrates it on start, so the first report is FB-1.
    assert run_serve_test(tmp_path, f"sqlite:///{tmp_path}/bot.db") == "FB-1"


def test_serve_over_http_on_postgresql(tmp_path, pg_url):
    run_serve_test(tmp_path, pg_url)
