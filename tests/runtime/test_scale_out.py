"""Several bot processes on one PostgreSQL: each message sent once, each scheduled occurrence run once."""

import os
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import func, select

from storage import outbox
from storage.database import Database
from storage.models import OutboxMessage, OutboxStatus, as_utc, utcnow
from tests.conftest import TABLES
from tests.fake_slack import TOKEN, FakeSlackServer
from tests.runtime.test_serve_http import free_port, serving
from tests.slack_requests import SIGNING_SECRET
from tests.waiting import WAIT_SECONDS, until, wait_for

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def pg(pg_url):
    database = Database(pg_url)
    with database.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    yield database
    database.dispose()


def pending(db) -> int:
    with db.session() as s:
        return s.exec(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status != OutboxStatus.sent)).one()


def test_two_serve_processes_send_each_message_once(tmp_path, pg):
    for i in range(60):
        pg.transact(outbox.enqueue, dedupe_key=f"dm-{i}", method="chat.postMessage",
                    payload={"channel": f"U{i:08d}", "text": f"message {i}"})
    with FakeSlackServer() as fake, ExitStack() as stack:
        for n in range(2):
            (tmp_path / f"p{n}").mkdir()
            stack.enter_context(serving(tmp_path / f"p{n}", fake, pg.url))
        wait_for(lambda: pending(pg) == 0, what="every message sent", timeout=120, interval=0.2)
    texts = [c.body["text"] for c in fake.calls_to("chat.postMessage")]
    assert sorted(texts) == sorted(f"message {i}" for i in range(60))  # every one, none twice


def test_a_scheduled_occurrence_runs_once_across_processes(tmp_path, pg):
    (tmp_path / "policy.yml").write_text(
        "office_hours:\n  sessions: [{weekday: tue, time: '14:00', timezone: Europe/Berlin, channel: C0OFFICE01}]\n"
        "  rotation: [U0HOST0001]\n"
    )
    with FakeSlackServer() as fake:
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), "SLACK_BOT_TOKEN": TOKEN,
               "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.url + "/api/",
               "DATABASE_URL": pg.url, "CONFIG_FILE": "policy.yml", "PORT": str(free_port())}
        job = "office_hours.agenda:C0OFFICE01:tue-14:00"
        procs = [subprocess.Popen([sys.executable, "-m", "bot.runtime.cli", "run-job", job, "--at", "2026-11-24T14:00:00+01:00"],
                                  cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(3)]
        outputs = [p.communicate(timeout=120)[0] for p in procs]
        assert all(p.returncode == 0 for p in procs), outputs
        assert sum("had already run" in o for o in outputs) == 2, outputs
        posts = [c for c in fake.calls_to("chat.postMessage") if c.body["channel"] == "C0OFFICE01"]
        assert len(posts) == 1


def test_two_processes_restarting_after_a_due_time_run_the_missed_digest_once(tmp_path, pg):
    """The digest fell due three minutes ago while nothing ran (last week's ran); two `serve`
    processes start together: their catch-up posts it once."""
    from datetime import timedelta

    from storage.models import ScheduledRun

    due = (utcnow() - timedelta(minutes=3)).replace(second=0, microsecond=0)
    (tmp_path / "policy.yml").write_text(
        f"insight:\n  digest_channel: C0DIGEST01\n  digest_weekday: {due.strftime('%a').lower()}\n"
        f"  digest_time: '{due.strftime('%H:%M')}'\n  timezone: UTC\n"
    )
    pg.transact(lambda session: session.add(ScheduledRun(job="insight.digest", occurrence=due - timedelta(days=7), finished_at=utcnow())))
    with FakeSlackServer() as fake, ExitStack() as stack:
        procs = []
        for n in range(2):
            log = (tmp_path / f"serve{n}.log").open("wb")
            stack.callback(log.close)
            env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), "SLACK_BOT_TOKEN": TOKEN,
                   "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.url + "/api/",
                   "DATABASE_URL": pg.url, "CONFIG_FILE": "policy.yml", "PORT": str(free_port()), "HOST": "127.0.0.1",
                   "EVENT_SPOOL_PATH": f"events{n}.spool"}  # one spool per instance (a shared one is refused)
            proc = subprocess.Popen([sys.executable, "-m", "bot.runtime.cli", "serve"], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
            stack.callback(lambda p=proc: (p.terminate(), p.wait(timeout=WAIT_SECONDS)))
            procs.append(proc)

        def digest_posts():
            return [c for c in fake.calls_to("chat.postMessage") if c.body.get("channel") == "C0DIGEST01"]

        def posted_or_exited():
            assert all(p.poll() is None for p in procs), "a serve process exited"
            return digest_posts()

        wait_for(posted_or_exited, what="the missed digest posted", timeout=120, interval=0.2)
        time.sleep(2)  # not a wait for something: the window in which a second, wrong, post would show
        logs = [(tmp_path / f"serve{n}.log").read_text(errors="replace") for n in range(2)]
        assert len(digest_posts()) == 1, logs
    with pg.session() as s:
        runs = s.exec(select(ScheduledRun).where(ScheduledRun.job == "insight.digest")).all()
    assert sorted(r.occurrence for r in runs) == [due - timedelta(days=7), due]


class HeldPosts:
    """Slack (the fake) takes every chat.postMessage after the first ``n`` and answers it only once
    ``release`` is set: a sender killed meanwhile has exactly those calls in flight (``held`` of them)."""

    def __init__(self, fake, n: int):
        self.release, self.held, self._seen, self._lock, self._n = threading.Event(), 0, 0, threading.Lock(), n
        fake.fail_when = self._hold

    def _hold(self, method, body):
        if method == "chat.postMessage":
            with self._lock:
                self._seen += 1
                late = self._seen > self._n
                self.held += late
            if late:
                self.release.wait(120)
        return None


def latest_claim(db):
    with db.session() as s:
        until = s.exec(select(func.max(OutboxMessage.claimed_until)).where(OutboxMessage.status == OutboxStatus.pending)).one()
    return as_utc(until) if until is not None else None


def held(db) -> int:
    """Messages claimed by a sender and not sent: what a killed sender leaves to its claims."""
    with db.session() as s:
        return s.exec(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.status == OutboxStatus.pending, OutboxMessage.claimed_until > utcnow())).one()


CLAIM_SECONDS = 10  # OUTBOX_CLAIM_SECONDS for the processes below: the default 60 s would make the wait long


def test_kill_9_mid_fan_out_loses_nothing(tmp_path, pg):
    """A sender killed mid-batch: its claims run out (OUTBOX_CLAIM_SECONDS) and another process
    sends the rest. Only what was in flight at the kill may go twice."""
    import signal

    for i in range(60):
        pg.transact(outbox.enqueue, dedupe_key=f"dm-{i}", method="chat.postMessage",
                    payload={"channel": f"U{i:08d}", "text": f"message {i}"})
    with FakeSlackServer() as fake:
        for name in ("a", "b"):  # each process reads the setting from the .env in its working directory
            (tmp_path / name).mkdir()
            (tmp_path / name / ".env").write_text(f"OUTBOX_CLAIM_SECONDS={CLAIM_SECONDS}\n")
        # From the 26th post on, Slack holds each one until the kill: it lands mid fan-out, with
        # calls in flight, however slowly a loaded machine runs the sender.
        posts = HeldPosts(fake, 25)
        try:
            with serving(tmp_path / "a", fake, pg.url, stop=False) as (_, proc):
                wait_for(lambda: posts.held, what="a post held in flight after the first 25", timeout=120)
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
            claims_end = latest_claim(pg)
        finally:
            posts.release.set()
        wait_for(lambda: fake.in_progress == 0, what="the held posts answered")
        fake.fail_when = None
        sent_before = len(fake.calls_to("chat.postMessage"))
        assert 25 <= sent_before < 60, "the kill came too late to test anything"
        left_claimed = held(pg)
        assert 0 < left_claimed <= 60 - sent_before, "the kill left no claims to run out"
        # The claims run out after CLAIM_SECONDS (the .env's setting), not the default 60 s.
        assert claims_end is not None and claims_end <= utcnow() + timedelta(seconds=CLAIM_SECONDS)
        with serving(tmp_path / "b", fake, pg.url):
            wait_for(lambda: pending(pg) == 0, what="the rest sent once the claims ran out", timeout=CLAIM_SECONDS + 120,
                     interval=0.5)
    texts = [c.body["text"] for c in fake.calls_to("chat.postMessage")]
    assert set(texts) == {f"message {i}" for i in range(60)}  # nothing lost
    assert len(texts) - 60 <= 8  # at most the requests in flight at the kill (OutboxSender's max_in_flight)


# A sender alone in its process, paced at RATE: kill -9 lands in the middle of its fan-out.
SENDER = """
import asyncio, sys
from slack_sdk.web.async_client import AsyncWebClient
from bot.runtime.outbox import OutboxSender
from storage.database import Database
url, api, token, rate, in_flight, claim = sys.argv[1:]
sender = OutboxSender(Database(url), AsyncWebClient(token=token, base_url=api), rates={"chat.postMessage": float(rate)},
                      channel_rates={}, max_in_flight=int(in_flight), claim_seconds=float(claim))
asyncio.run(sender.run_forever())
"""


@pytest.mark.parametrize("in_flight", [1, 3])
def test_kill_9_at_50_dms_a_second_sends_twice_at_most_the_calls_in_flight(tmp_path, pg, in_flight):
    """Issue #14: at 50 DMs a second, a sender killed mid fan-out may have had only its calls in
    flight unrecorded; once its claims run out, another sender sends the rest, and no more than
    ``max_in_flight`` people get a DM twice (before: what the last half second had sent, 5-7)."""
    import signal

    from slack_sdk.web.async_client import AsyncWebClient

    from bot.runtime.outbox import OutboxSender

    count, rate = 300, 50
    for i in range(count):
        pg.transact(outbox.enqueue, dedupe_key=f"dm-{i}", method="chat.postMessage",
                    payload={"channel": f"U{i:08d}", "text": f"message {i}"})
    with FakeSlackServer() as fake:
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}
        posts = HeldPosts(fake, 100)  # the kill lands with every place in flight taken
        proc = subprocess.Popen([sys.executable, "-c", SENDER, pg.url, fake.url + "/api/", TOKEN, str(rate), str(in_flight),
                                 str(CLAIM_SECONDS)], env=env, cwd=tmp_path)
        try:
            wait_for(lambda: posts.held >= in_flight, what=f"{in_flight} posts held in flight after the first 100", timeout=120)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            posts.release.set()
        wait_for(lambda: fake.in_progress == 0, what="the held posts answered")
        fake.fail_when = None
        sent_before = len(fake.calls_to("chat.postMessage"))
        assert 100 <= sent_before < count, "the kill came too late to test anything"

        async def the_rest():
            sender = OutboxSender(pg, AsyncWebClient(token=TOKEN, base_url=fake.url + "/api/"),
                                  rates={"chat.postMessage": 200.0}, channel_rates={}, max_in_flight=4)
            async def sent_all():
                await sender.drain_once()
                return pending(pg) == 0

            await until(sent_all, what="the rest sent once the claims ran out", timeout=CLAIM_SECONDS + 120, interval=0.5)

        import asyncio

        asyncio.run(the_rest())
        assert pending(pg) == 0
    texts = [c.body["text"] for c in fake.calls_to("chat.postMessage")]
    assert set(texts) == {f"message {i}" for i in range(count)}  # nothing lost
    assert len(texts) - count <= in_flight, f"{len(texts) - count} duplicates with {in_flight} in flight"
