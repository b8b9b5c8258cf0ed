"""Closing-ack benchmark: how long GitHub waits for the bot's answer to an ``issues`` ``closed``
delivery whose issue is linked to N reports (N reporters to notify), against a delivery that
matches nothing (the baseline: verify, read, record, answer), interleaved in the same run; then
that every reporter is owed exactly one DM and gets exactly one.

    python -m bench.closing_ack [--reporters 2000] [--rounds 3] [--database sqlite|postgresql]

1. A fresh migrated database (``bench.report.fresh_database``); for each round an issue
   ``acme/platform#<round>`` linked to ``--reporters`` reports of one reporter each.
2. ``python -m bot.runtime.cli serve`` on a free port of 127.0.0.1 with GITHUB_WEBHOOK_SECRET set,
   against the tests' fake Slack (``tests.fake_slack``) in this process.
3. Per round: a baseline delivery (an unlinked issue), the closing delivery, then ten more
   baselines 0.1 s apart while the closure is being applied (``during``: on SQLite, one writer
   at a time, these wait for whatever transaction holds it), each signed as GitHub signs; the time
   to the HTTP answer is measured by the client. The seeded reports have triage cards, so the
   closure also redraws N cards.
4. Waits until every delivery is applied (``tracker_delivery.applied_at``), counts the closure
   notices and queued DMs (goal: exactly reporters x rounds, once each), stops serve, sends what
   serve's own sender (paced at Slack's 2 DMs/s) had not sent yet through an ``OutboxSender``
   without pacing, and counts the DMs each reporter received (goal: exactly one per closure).

Exit status 0 when every closing answer and every answer during a closure came in under 1 s, and
every count is exact.
"""

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import func
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from bench.report import REPO, fresh_database
from bot.policy import Policy
from bot.runtime.outbox import OutboxSender
from bot.triage.flows import CardHook
from bot.triage.service import CARD_PURPOSE
from storage.database import Database
from storage.models import ClosureNotice, FrictionPoint, OutboxMessage, Reporter, Source, Status, TrackerDelivery, TrackerLink
from tests import tracker_requests as tr
from tests.fake_slack import TOKEN, FakeSlackServer
from tests.runtime.test_serve_http import free_port, stop_process
from tests.slack_requests import SIGNING_SECRET


def seed(db: Database, rounds: int, reporters: int) -> None:
    for r in range(1, rounds + 1):
        with db.session() as s, s.begin():
            for i in range(reporters):
                user = f"U{r:02d}{i:07d}"
                point = FrictionPoint(team_id="T0BENCH", filed_by=user, text=f"report {r}-{i}", source=Source.command,
                                      intake_key=f"bench:{r}:{i}", status=Status.linked,
                                card_channel="C0BENCHTRI", card_ts=f"1700000000.{r:02d}{i:05d}")
                point.reporters = [Reporter(user_id=user, team_id="T0BENCH")]
                point.links = [TrackerLink(tracker="github", key=f"acme/platform#{r}",
                                           url=f"https://github.com/acme/platform/issues/{r}")]
                s.add(point)


def serve(db_url: str, fake_url: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), "SLACK_BOT_TOKEN": TOKEN,
           "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake_url + "/api/", "DATABASE_URL": db_url,
           "PORT": str(port), "HOST": "127.0.0.1", "GITHUB_WEBHOOK_SECRET": tr.GITHUB_SECRET}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bot.runtime.cli", "serve"], cwd=log.parent, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.2)
    stop_process(proc)
    raise SystemExit(f"serve did not come up:\n{log.read_text(errors='replace')[-2000:]}")


STATUSES: Counter = Counter()


def post(http: httpx.Client, repo: str, number: int) -> float:
    """Deliver until answered 200 (a 503 is retried at once, as a tracker would later); the time
    of the 200, with every other status counted in STATUSES."""
    body, headers = tr.github("issues", tr.github_issue(repo, number))
    while True:
        started = time.perf_counter()
        resp = http.post("/webhooks/github", content=body, headers=headers)
        elapsed = time.perf_counter() - started
        STATUSES[resp.status_code] += 1
        if resp.status_code == 200:
            return elapsed


def count(db: Database, model, *where) -> int:
    for _ in range(60):  # SQLite: the bot holds the write lock now and then (every session begins IMMEDIATE)
        try:
            with db.session() as s:
                return s.exec(select(func.count()).select_from(model).where(*where)).one()
        except OperationalError:
            time.sleep(0.5)
    raise SystemExit("database locked for 30 s")


async def drain(db: Database, fake_url: str) -> None:
    client = AsyncWebClient(token=TOKEN, base_url=fake_url + "/api/")
    sender = OutboxSender(db, client, rates={"chat.postMessage": 10_000.0, "chat.update": 10_000.0},
                          bursts={"chat.postMessage": 10_000, "chat.update": 10_000}, channel_rates={})
    sender.hooks[CARD_PURPOSE] = CardHook(Policy())  # card redraws are rendered at send time, as serve does
    deadline = time.monotonic() + 180  # what serve had claimed when stopped waits for its claim to run out
    while time.monotonic() < deadline:
        while await sender.drain_once():
            pass
        if not count(db, OutboxMessage, OutboxMessage.status == "pending"):
            return
        await asyncio.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reporters", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args(argv)
    print(f"load average at start: {os.getloadavg()}")
    with fresh_database(args.database) as db, FakeSlackServer() as fake, tempfile.TemporaryDirectory() as tmp:
        seed(db, args.rounds, args.reporters)
        proc, base = serve(db.url, fake.url, Path(tmp) / "serve.log")
        times: dict[str, list[float]] = {"baseline": [], "closing": [], "during": []}
        try:
            with httpx.Client(base_url=base, timeout=60) as http:
                for r in range(1, args.rounds + 1):
                    times["baseline"].append(post(http, "acme/unlinked", 1000 + 2 * r))
                    times["closing"].append(post(http, "acme/platform", r))
                    for n in range(10):
                        time.sleep(0.1)
                        times["during"].append(post(http, "acme/unlinked", 10_000 * r + n))
            deadline = time.monotonic() + 600
            while count(db, TrackerDelivery, TrackerDelivery.applied_at.is_(None)) and time.monotonic() < deadline:
                time.sleep(0.5)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                stop_process(proc)
        pending = count(db, TrackerDelivery, TrackerDelivery.applied_at.is_(None))
        notices = count(db, ClosureNotice)
        queued = count(db, OutboxMessage, OutboxMessage.dedupe_key.like("closure-notice:%"))
        asyncio.run(drain(db, fake.url))
        dms = Counter(c.body["channel"] for c in fake.calls_to("chat.postMessage") if c.body["channel"].startswith("U"))
        expected = args.rounds * args.reporters
        print(f"database: {args.database}; {args.rounds} round(s) of {args.reporters} reporters; serve pid {proc.pid}")
        for kind, values in times.items():
            print(f"  {kind:9s} answer: n={len(values)} median {statistics.median(values) * 1000:.1f} ms, "
                  f"max {max(values) * 1000:.1f} ms")
        print(f"  answers by status: {dict(STATUSES)}")
        print(f"  deliveries left unapplied: {pending}; closure notices: {notices} (expected {expected}); "
              f"DMs queued: {queued}; reporters with exactly one DM: {sum(1 for n in dms.values() if n == 1)}, "
              f"with more: {sum(1 for n in dms.values() if n > 1)}, without: {expected - len(dms)}")
    print(f"load average at end: {os.getloadavg()}")
    ok = (max(times["closing"]) < 1.0 and max(times["during"]) < 1.0 and set(STATUSES) == {200} and pending == 0 and notices == expected == queued
          and len(dms) == expected and all(n == 1 for n in dms.values()))
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
