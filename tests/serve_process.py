"""``platform-feedback serve`` as real processes a test can kill -9 and start again on the same
working directory (so the same event spool), with a team policy that has a help channel and a
GitHub webhook. Shared by the kill tests and the chaos run (tests/runtime/test_acked_kept.py)."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.fake_slack import TOKEN
from tests.runtime.test_serve_http import REPO, free_port
from tests.slack_requests import SIGNING_SECRET
from tests.tracker_requests import GITHUB_SECRET

HELP, OTHER, TRIAGE = "C0HELP0001", "C0OTHER001", "C0TRIAGE01"
POLICY = f"""
help_channel: {{channel: {HELP}, join_minutes: 0}}
hosts: {{users: [U0HOST0001]}}
triage: {{channel: {TRIAGE}}}
"""


@dataclass
class Serve:
    """One ``serve`` (``args``: e.g. ``--workers 2``) in ``workdir``, logging to ``serve.log`` there."""

    workdir: Path
    fake_url: str
    database_url: str
    args: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    starts: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "serve.log"

    def env(self) -> dict:
        (self.workdir / "platform-feedback.yml").write_text(POLICY)
        return {
            "PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO),
            "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.fake_url + "/api/", "DATABASE_URL": self.database_url,
            "GITHUB_WEBHOOK_SECRET": GITHUB_SECRET,
            "PORT": str(self.port), "HOST": "127.0.0.1", "CONFIG_FILE": str(self.workdir / "platform-feedback.yml"),
        }

    def start(self, *, wait: bool = True, timeout: float = 60) -> None:
        with self.log.open("ab") as out:
            # A process group of its own: kill_all takes the supervisor, its workers and chart processes.
            self.proc = subprocess.Popen([sys.executable, "-m", "bot.runtime.cli", "serve", *self.args], cwd=self.workdir,
                                         env=self.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1
        if wait:
            self.wait_healthy(timeout)

    def healthy(self) -> bool:
        try:
            return httpx.get(self.base + "/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited with {self.proc.returncode}:\n{self.tail()}")
            if self.healthy():
                return
            time.sleep(0.1)
        raise AssertionError(f"serve did not answer /healthz within {timeout} s:\n{self.tail()}")

    def kill_all(self) -> None:
        """kill -9 of every process of this serve (the supervisor, its workers, their chart processes)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        """SIGTERM, then kill -9 whatever is left."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        self.kill_all()

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""
