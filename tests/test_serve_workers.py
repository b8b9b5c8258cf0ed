"""``platform-feedback serve --workers N``: N serving processes on one port over PostgreSQL, each
answering Slack; refused in one line on SQLite. (Throughput of two processes against one:
``python -m bench.ack_latency --compare-workers 2``.)"""

import asyncio
import json
import os
import subprocess
import sys
import uuid

import httpx

from tests.fake_slack import TOKEN, FakeSlackServer
from tests.slack_requests import SIGNING_SECRET, slash_command
from tests.test_serve_http import REPO, serving, stored_reference, wait_until


def records(log) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


async def file_all(base: str, texts: list[str], fake_url: str) -> list[int]:
    async def one(text: str) -> int:
        body, headers = slash_command(text, fake_url=fake_url)
        async with httpx.AsyncClient(base_url=base, timeout=20) as http:  # a connection each: the kernel deals them out
            return (await http.post("/slack/events", content=body.encode(), headers=headers)).status_code

    return await asyncio.gather(*(one(t) for t in texts))


def test_two_workers_share_the_port_and_both_answer(tmp_path, pg_url):
    texts = [f"the staging runner is out of disk {uuid.uuid4().hex[:8]} #{i}" for i in range(40)]
    log = tmp_path / "serve.log"
    with FakeSlackServer() as fake, serving(tmp_path, fake, pg_url, args=("--workers", "2")) as base:
        wait_until(lambda: sum(r["message"] == "Application startup complete." for r in records(log)) == 2,
                   timeout=60, what="two workers started (each its own app, sender and scheduler)", log=log)
        assert asyncio.run(file_all(base, texts, fake.url)) == [200] * len(texts)
        wait_until(lambda: sum("FB-" in c.body.get("text", "") for c in fake.calls_to("response_url")) == len(texts),
                   timeout=30, what="every report answered", log=log)
    for text in texts:  # each stored exactly once
        stored_reference(pg_url, text)
    output = records(log)
    served = {r["process"] for r in output if "POST /slack/events" in r["message"]}
    assert len(served) == 2, f"one process answered every request: {served}"
    assert sum(r["message"] == "Application shutdown complete." for r in output) == 2


def test_workers_on_sqlite_are_refused_in_one_line(tmp_path):
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), "SLACK_BOT_TOKEN": TOKEN,
           "SLACK_SIGNING_SECRET": SIGNING_SECRET, "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db"}
    out = subprocess.run([sys.executable, "-m", "bot.runtime.cli", "serve", "--workers", "2"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "--workers 2 needs PostgreSQL" in out.stderr, out.stderr
    assert not (tmp_path / "bot.db").exists()  # refused before anything was created
