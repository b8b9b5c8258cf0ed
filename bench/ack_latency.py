"""Ack-latency benchmark: how long Slack waits for the bot's answer (the ack) to concurrent slash
commands and button clicks, with 1,000,000 data points in PostgreSQL, against a minimal Bolt app
that only acks (``bench/minimal_app.py``), in the same run.

    python -m bench.ack_latency [--points 1000000] [--reuse] [--drop] [--requests 3000]
                                [--concurrency 24] [--rate N] [--rounds 4] [--warmup 300] [--mix 1,1,1]

1. Seeds the database ``bench_ack`` on BENCH_POSTGRES_URL's server (default
   postgresql+psycopg://postgres@127.0.0.1:5432/test) with ``--points`` data points through
   ``bench.report``'s loader (COPY), unless ``--reuse`` finds it seeded with that many already; gives
   the most recent open points a triage card (``--cards``), as if the bot had posted them (their
   duplicate suggestion kept on each, as posting keeps it).
2. Starts the fake Slack Web API of the tests (``tests.fake_slack``) in a process of its own, then
   ``platform-feedback serve`` on that database (a policy with a triage channel and one host) and
   the minimal app, each a process on a free port of 127.0.0.1.
3. Sends each app the same kind of load, signed as Slack signs it (``tests.slack_requests``):
   ``--concurrency`` requests in flight, back to back (or started at ``--rate`` a second), each on
   a keep-alive connection of its own; a mix (``--mix``, weights) of ``/platform-feedback`` with no
   text (opens the modal), ``/platform-feedback <one line>`` (files a data point) and "Assign to me"
   clicks by the host on carded points. After ``--warmup`` requests
   each, ``--rounds`` rounds taken in turns (bot, minimal, minimal, bot, ...), each app left to finish
   its after-ack work before the next round. A request's latency is the client's time to the HTTP
   response (from when it was due, with ``--rate``), which Bolt sends at the ack.
4. Prints count, non-200s, p50 and p99 per app (and per kind), the CPU time each app's process spent
   per request (its after-ack work included), the ratios bot / minimal and whether the bot's p99 is
   at most 1.3 times the minimal app's (exit status 0 if so, and every answer a 200).

Not run in CI. The database is kept for ``--reuse`` (``--drop`` removes it at the end).
"""

import argparse
import asyncio
import itertools
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import httpx
import psycopg
from sqlmodel import col, select

from bench.report import PG_ADMIN_URL, REPO, generate, load_average, load_postgresql
from bot.insight import service as insight
from bot.triage.blocks import card_block_id
from bot.triage.ids import TriageAction
from storage.database import Database
from storage.models import FrictionPoint
from tests.fake_slack import TOKEN, FakeSlackServer
from tests.runtime.test_serve_http import free_port, serving, stop_process, wait_until
from tests.slack_requests import SIGNING_SECRET, block_actions, element_action, interactive, slash_command

DB_NAME = "bench_ack"
HOST = "U0BENCHHOST"
TRIAGE_CHANNEL = "C0BENCHTRI1"
POLICY = f"hosts:\n  users: [{HOST}]\ntriage:\n  channel: {TRIAGE_CHANNEL}\n"
KINDS = ("modal", "text", "click")
GOAL = 1.3
WORDS = ["pipeline", "runner", "staging", "deploy", "rollback", "docs", "vpn", "sso", "alerts", "logs", "setup", "cache"]

# ------------------------------------------------------------------ the database


BENCH_URL = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{DB_NAME}"


def _connect(url: str, **kw) -> psycopg.Connection:
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), **kw)


def _seeded(points: int) -> bool:
    """``bench_ack`` exists and holds exactly ``points`` loaded data points (plus whatever runs filed)."""
    try:
        with _connect(BENCH_URL, connect_timeout=3) as conn:
            return conn.execute("SELECT count(*) FROM friction_point WHERE intake_key LIKE 'bench:%%'").fetchone()[0] == points
    except psycopg.Error:
        return False


def prepare_database(points: int, cards: int, reuse: bool) -> list[int]:
    """Seeds the bench database unless it can be reused; the ids of the points that have a triage card."""
    if reuse and _seeded(points):
        print(f"reusing {DB_NAME} ({points:,} points loaded)", flush=True)
    else:
        drop_database()
        with _connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{DB_NAME}"')
        db = Database(BENCH_URL)
        try:
            db.migrate()
            t0 = time.perf_counter()
            counts = load_postgresql(db, generate(points, 365, datetime.now(timezone.utc)))
            print(f"loaded {counts[0]:,} data points, {counts[1]:,} reporters, {counts[2]:,} tags into {DB_NAME} "
                  f"in {time.perf_counter() - t0:.0f} s", flush=True)
        finally:
            db.dispose()
    with _connect(BENCH_URL) as conn:
        conn.execute("DELETE FROM outbox_message")  # what earlier runs left unsent would keep the sender busy
        ids = [row[0] for row in conn.execute(
            "UPDATE friction_point SET card_channel = %s, card_ts = '1700000000.' || lpad(id::text, 6, '0') WHERE id IN ("
            " SELECT id FROM friction_point WHERE intake_key LIKE 'bench:%%' AND duplicate_of_id IS NULL"
            " AND status IN ('new', 'acknowledged', 'linked') ORDER BY created_at DESC LIMIT %s) RETURNING id",
            (TRIAGE_CHANNEL, cards))]
    _keep_suggestions(ids)
    return ids


def _keep_suggestions(ids: list[int]) -> None:
    """Posting a card keeps its duplicate suggestion on the point (``insight.card_duplicate``): the
    cards above were posted behind the bot's back, so keep theirs as the bot would have."""
    db = Database(BENCH_URL)
    try:
        db.migrate()

        def keep(*, session) -> int:
            points = session.exec(select(FrictionPoint).where(col(FrictionPoint.id).in_(ids),
                                                              col(FrictionPoint.suggested_similarity).is_(None))).all()
            for point in points:
                insight.card_duplicate(session=session, point=point, threshold=1)
            return len(points)

        t0 = time.perf_counter()
        kept = db.transact(keep)
        if kept:
            print(f"kept the duplicate suggestion of {kept:,} carded points in {time.perf_counter() - t0:.0f} s", flush=True)
    finally:
        db.dispose()


def row_counts() -> tuple[int, int]:
    with _connect(BENCH_URL) as conn:
        return conn.execute("SELECT (SELECT count(*) FROM friction_point), (SELECT count(*) FROM reporter)").fetchone()


def drop_database() -> None:
    with _connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


# ------------------------------------------------------------------ the processes


def _serve_fake_slack(conn) -> None:
    """In a process of its own: the tests' fake Slack until told to stop; then what it was asked."""
    server = FakeSlackServer()
    server.httpd.socket.listen(256)  # the default backlog of 5 drops connections under load (1 s retransmits)
    with server as fake:
        conn.send(fake.url)
        conn.recv()
        with fake._lock:
            conn.send((Counter(c.method for c in fake.calls), fake.block_kit_errors[:3], len(fake.block_kit_errors)))


@contextmanager
def fake_slack_process():
    """``with ... as (url, answers)``: ``answers`` gets the calls per method and Block Kit errors at the end."""
    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe()
    process = ctx.Process(target=_serve_fake_slack, args=(there,), daemon=True)
    process.start()
    answers = {}
    try:
        yield here.recv(), answers
    finally:
        here.send("stop")
        answers["calls"], answers["errors"], answers["error_count"] = here.recv()
        process.join(timeout=10)


@contextmanager
def bot(tmp: Path, fake_url: str, database_url: str, workers: int = 1):
    """``platform-feedback serve [--workers N]`` (the tests' ``serving``), the bench policy in its working directory."""
    tmp.mkdir()
    (tmp / "platform-feedback.yml").write_text(POLICY)
    args = ("--workers", str(workers)) if workers > 1 else ()
    with serving(tmp, SimpleNamespace(url=fake_url), database_url, stop=False, args=args) as (base, proc):
        try:
            yield base, proc
        finally:
            stop_process(proc, timeout=20)


@contextmanager
def minimal_app(tmp: Path, fake_url: str):
    port, log = free_port(), tmp / "minimal.log"
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), "SLACK_BOT_TOKEN": TOKEN,
           "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake_url + "/api/", "PORT": str(port)}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bench.minimal_app"], cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, f"the minimal app exited:\n{log.read_text(errors='replace')}"
        try:
            return httpx.get(base + "/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(up, timeout=20, what="the minimal app", log=log)
        yield base, proc
    finally:
        if proc.poll() is None:
            stop_process(proc, timeout=20)


def cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its live child processes (``serve --workers N``: the workers and
    their chart processes)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = [int(c) for task in Path(f"/proc/{pid}/task").iterdir()
                    for c in (task / "children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") + sum(cpu_seconds(c) for c in children)


def settle(pid: int, *, idle: float = 0.15, timeout: float = 120) -> None:
    """Wait until the process uses less than ``idle`` of a CPU over half a second (its after-ack work done)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(0.5)
        if cpu_seconds(pid) - before < idle * 0.5:
            return


# ------------------------------------------------------------------ the load


class Requests:
    """Signed requests in Slack's formats, of a kind drawn by weight, made when sent."""

    def __init__(self, fake_url: str, cards: list[int], weights: list[float], seed: int = 7):
        self.fake_url, self.cards, self.weights = fake_url, cards, weights
        self.rng = random.Random(seed)
        self.n = itertools.count()

    def next(self) -> tuple[str, str, dict]:
        kind, i = self.rng.choices(KINDS, self.weights)[0], next(self.n)
        user = f"U0BENCH{i % 500:04d}"
        if kind == "modal":
            return kind, *slash_command("", fake_url=self.fake_url, user=user)
        if kind == "text":
            words = " ".join(self.rng.sample(WORDS, 3))
            return kind, *slash_command(f"the {words} keeps failing for me ({i})", fake_url=self.fake_url, user=user)
        point = self.rng.choice(self.cards)
        button = {"type": "button", "action_id": TriageAction.assign_me, "text": {"type": "plain_text", "text": "Assign to me"},
                  "value": str(point)}
        payload = block_actions([element_action(button)], block_id=card_block_id(point, "fields"), user=HOST,
                                response_url=f"{self.fake_url}/response_url/click-{i}", channel=TRIAGE_CHANNEL,
                                message_ts=f"1700000000.{point:06d}")
        return kind, *interactive(payload)


async def send(connections: list[httpx.AsyncClient], requests: Requests, count: int, rate: float | None) -> list[tuple]:
    """``count`` requests, at most one in flight per connection: back to back, or the i-th due ``i / rate``
    seconds from now (then timed from when it was due); (kind, seconds, status, body if not 200) each."""
    samples, left, start = [], iter(range(count)), time.perf_counter()

    async def worker(http: httpx.AsyncClient):
        for i in left:
            if rate:
                await asyncio.sleep(start + i / rate - time.perf_counter())
            kind, body, headers = requests.next()
            t0 = start + i / rate if rate else time.perf_counter()
            try:
                r = await http.post("/slack/events", content=body.encode(), headers=headers)
                status, text = r.status_code, "" if r.status_code == 200 else r.text[:200]
            except httpx.TransportError as exc:  # counted as a failure (status 0), not a crash
                status, text = 0, repr(exc)
            samples.append((kind, time.perf_counter() - t0, status, text))

    await asyncio.gather(*(worker(http) for http in connections))
    return samples


async def reconnect(connections: list[httpx.AsyncClient]) -> None:
    """uvicorn closes keep-alive connections idle for 5 s: open them again before timing anything."""

    async def ping(http: httpx.AsyncClient) -> None:
        try:
            await http.get("/healthz")
        except httpx.TransportError:  # closed by the server just as it was reused
            await http.get("/healthz")

    await asyncio.gather(*(ping(http) for http in connections))


async def measure(apps: dict, requests: dict, args) -> tuple[dict[str, list], dict[str, float]]:
    """The samples of each app, and the CPU seconds its process used for them (after-ack work included)."""
    # A client per in-flight request, each one keep-alive connection: one client shared by all of
    # them queues requests in its connection pool (at 24 in flight its p99 is 10x the server's).
    connections = {name: [httpx.AsyncClient(base_url=base, timeout=30) for _ in range(args.concurrency)]
                   for name, (base, _pid) in apps.items()}
    samples, cpu = {name: [] for name in apps}, dict.fromkeys(apps, 0.0)
    wall = measure.wall = dict.fromkeys(apps, 0.0)  # seconds spent sending: requests a second achieved
    try:
        for name in apps:
            await send(connections[name], requests[name], args.warmup, args.rate)
        per_round = args.requests // args.rounds
        for r in range(args.rounds):
            for name in (list(apps) if r % 2 == 0 else list(apps)[::-1]):
                pid = apps[name][1]
                settle(pid)
                await reconnect(connections[name])
                before, began = cpu_seconds(pid), time.monotonic()
                samples[name] += await send(connections[name], requests[name], per_round, args.rate)
                wall[name] += time.monotonic() - began
                settle(pid)
                cpu[name] += cpu_seconds(pid) - before
                print(f"  round {r + 1}/{args.rounds}: {name} done", flush=True)
    finally:
        for http in itertools.chain.from_iterable(connections.values()):
            await http.aclose()
    return samples, cpu


# ------------------------------------------------------------------ the figures


def percentiles(seconds: list[float]) -> tuple[float, float]:
    """p50 and p99 in ms."""
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return statistics.median(seconds) * 1000, cuts[98] * 1000


def report(samples: dict[str, list], cpu: dict[str, float]) -> bool:
    print(f"\n{'':<16}{'requests':>9}{'non-200':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'CPU ms':>9}")
    figures = {}
    for name, rows in samples.items():
        for kind in (None, *KINDS):
            chosen = [row for row in rows if kind is None or row[0] == kind]
            if len(chosen) < 2:
                continue
            p50, p99 = percentiles([row[1] for row in chosen])
            bad = sum(row[2] != 200 for row in chosen)
            label, per_request = (name, f"{cpu[name] * 1000 / len(rows):>9.1f}") if kind is None else (f"  {kind}", "")
            print(f"{label:<16}{len(chosen):>9}{bad:>9}{p50:>9.1f}{p99:>9.1f}{max(row[1] for row in chosen) * 1000:>9.1f}{per_request}")
            figures[(name, kind)] = (p50, p99)
    for name, rows in samples.items():
        for kind, _s, status, body in [row for row in rows if row[2] != 200][:10]:
            print(f"non-200 from {name} ({kind}): {status} {body!r}")
    (b50, b99), (m50, m99) = figures[("bot", None)], figures[("minimal", None)]
    met = b99 <= GOAL * m99
    print(f"\nbot / minimal: p50 {b50 / m50:.2f}, p99 {b99 / m99:.2f} (goal: p99 at most {GOAL}: {'met' if met else 'NOT met'})")
    return met and not any(row[2] != 200 for rows in samples.values() for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ack_latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000, help="data points in the database (default 1,000,000)")
    parser.add_argument("--reuse", action="store_true", help=f"keep {DB_NAME} if it already holds --points loaded points")
    parser.add_argument("--drop", action="store_true", help=f"drop {DB_NAME} at the end")
    parser.add_argument("--cards", type=int, default=2000, help="open points given a triage card, clicked at random")
    parser.add_argument("--requests", type=int, default=3000, help="measured requests per app (default 3000)")
    parser.add_argument("--concurrency", type=int, default=24, help="requests in flight (default 24)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per app, taken in turns (default 4)")
    parser.add_argument("--warmup", type=int, default=300, help="unmeasured requests per app first (default 300)")
    parser.add_argument("--rate", type=float, help="start requests at this many a second (open loop) instead of back to back")
    parser.add_argument("--mix", default="1,1,1", help="weights of modal,text,click requests (default 1,1,1)")
    parser.add_argument("--workers", type=int, default=1, help="serve --workers N for the bot (default 1)")
    parser.add_argument("--compare-workers", type=int, metavar="N",
                        help="instead of the minimal app, compare the bot on 1 process with the bot on N (scale-out)")
    args = parser.parse_args(argv)
    weights = [float(w) for w in args.mix.split(",")]
    if len(weights) != len(KINDS) or sum(weights) <= 0:
        parser.error("--mix takes three weights: modal,text,click")

    cards = prepare_database(args.points, args.cards, args.reuse)
    points, reporters = row_counts()
    print(f"{DB_NAME}: {points:,} data points, {reporters:,} reporters; {len(cards):,} with a triage card", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="pf-bench-ack-") as tmp, fake_slack_process() as (fake_url, answers):
            with ExitStack() as stack:
                if args.compare_workers:  # "minimal" is then the same bot on 1 process: the baseline of the scale-out
                    minimal_base, minimal_proc = stack.enter_context(bot(Path(tmp) / "bot1", fake_url, BENCH_URL))
                    bot_base, bot_proc = stack.enter_context(bot(Path(tmp) / "bot", fake_url, BENCH_URL, args.compare_workers))
                else:
                    bot_base, bot_proc = stack.enter_context(bot(Path(tmp) / "bot", fake_url, BENCH_URL, args.workers))
                    minimal_base, minimal_proc = stack.enter_context(minimal_app(Path(tmp), fake_url))
                apps = {"bot": (bot_base, bot_proc.pid), "minimal": (minimal_base, minimal_proc.pid)}
                requests = {name: Requests(fake_url, cards, weights) for name in apps}
                pace = f"{args.rate:g} a second, at most {args.concurrency}" if args.rate else f"{args.concurrency}"
                print(f"{args.warmup} warm-up and {args.requests} measured requests per app, {pace} in flight, "
                      f"mix modal,text,click = {args.mix}", flush=True)
                print(f"load average before: {load_average()}", flush=True)
                samples, cpu = asyncio.run(measure(apps, requests, args))
                print(f"load average after: {load_average()}", flush=True)
            log = (Path(tmp) / "bot" / "serve.log").read_text(errors="replace")
            errors = [line for line in log.splitlines() if '"level": "ERROR"' in line or "Traceback" in line]
        ok = report(samples, cpu)
        for name, seconds in measure.wall.items():
            print(f"{name}: {len(samples[name]) / seconds:.1f} requests a second achieved")
        if args.compare_workers:
            rates = {name: len(samples[name]) / seconds for name, seconds in measure.wall.items()}
            print(f"throughput, {args.compare_workers} processes / 1: {rates['bot'] / rates['minimal']:.2f} "
                  f"(\"minimal\" above is the bot on one process)")
        calls = answers["calls"]
        print(f"fake Slack answered: views.open {calls['views.open']}, response_url {calls['response_url']}, "
              f"chat.update {calls['chat.update']}, chat.postMessage {calls['chat.postMessage']}; "
              f"Block Kit errors {answers['error_count']}; bot log errors {len(errors)}")
        for line in errors[:3]:
            print(f"  {line[:300]}")
        points_after, _ = row_counts()
        print(f"{DB_NAME} now: {points_after:,} data points")
    finally:
        if args.drop:
            drop_database()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
