"""Ack under analytics benchmark: the worst ack while the weekly digest or a first ``/dashboard``
load runs in the same ``platform-feedback serve`` process, against the worst ack of the same run's
idle stretches (goal: at most 1.3 times).

    python -m bench.ack_during --url postgresql+psycopg://postgres@127.0.0.1:5432/pf_bench_XXXX
                               [--rate 5] [--dashboards 3] [--gap 8]

``--url``: a database loaded by ``python -m bench.report --database postgresql --size N --keep``.

1. Starts the tests' fake Slack in a process of its own, and ``serve`` on ``--url`` with a policy
   whose weekly digest (``insight.digest``) falls on the next whole minute at least 75 s away.
2. Sends signed slash commands (``bench.ack_latency.Requests``: opening the modal, filing one line)
   at ``--rate`` a second, open loop, timed from when each was due, for the whole run.
3. Meanwhile: ``--gap`` s of warm-up (not counted), ``--gap`` s idle, then ``--dashboards`` first loads of /dashboard (each a window not
   asked before, so computed), each followed by ``--gap`` s idle; then it waits for the digest job
   to run (its ``scheduled_run`` row gives when it started and finished) and ``--gap`` s more.
4. Each ack is put in the stretch it overlapped: during a dashboard load, during the digest, or idle
   (the idle stretches are interleaved with the others). Prints count, p50, p99 and worst per
   stretch, the ratios of worst during / worst idle, and the load average.

Not run in CI. Data points filed by the load stay in the database (small next to it).
"""

import argparse
import asyncio
import statistics
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import httpx
from sqlalchemy import text

from bench.ack_latency import Requests, fake_slack_process
from bench.report import TOKEN as DASHBOARD_TOKEN
from bench.report import load_average, serve_process
from storage.database import Database
from tests.fake_slack import TOKEN
from tests.slack_requests import SIGNING_SECRET

GOAL = 1.3
JOB = "insight.digest"


def policy(at: datetime) -> str:
    return (f"hosts:\n  users: [U0BENCHHOST]\ntriage:\n  channel: C0BENCHTRI1\ninsight:\n  digest_channel: C0BENCHDIG1\n"
            f"  digest_weekday: {at.strftime('%a').lower()}\n  digest_time: \"{at:%H:%M}\"\n  timezone: UTC\n")


def digest_run(db: Database, occurrence: datetime) -> tuple[float, float] | None:
    """When the digest of ``occurrence`` started and finished (epoch seconds), once it has."""
    row = db.transact(lambda session: session.execute(
        text("SELECT started_at, finished_at FROM scheduled_run WHERE job = :job AND finished_at IS NOT NULL "
             "ORDER BY started_at DESC LIMIT 1"), {"job": JOB}).first())
    if row is None or row[0].astimezone(timezone.utc) < occurrence - timedelta(minutes=1):
        return None
    return row[0].timestamp(), row[1].timestamp()


async def load(base: str, requests: Requests, rate: float, stop: asyncio.Event) -> list[tuple[float, float, int]]:
    """Requests due every 1/rate s until ``stop``; (due time, seconds to the answer, status) each."""
    samples, tasks, start = [], [], time.time()
    http = httpx.AsyncClient(base_url=base, timeout=60, limits=httpx.Limits(max_connections=200))

    async def one(due: float) -> None:
        _kind, body, headers = requests.next()
        try:
            status = (await http.post("/slack/events", content=body.encode(), headers=headers)).status_code
        except httpx.TransportError:
            status = 0
        samples.append((due, time.time() - due, status))

    i = 0
    while not stop.is_set():
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.time()))
        tasks.append(asyncio.create_task(one(due)))
        i += 1
    await asyncio.gather(*tasks)
    await http.aclose()
    return samples


async def drive(base: str, db: Database, occurrence: datetime, args, stop: asyncio.Event) -> list[tuple[str, float, float]]:
    """The heavy stretches: (kind, start, end) in epoch seconds."""
    stretches = []
    async with httpx.AsyncClient(base_url=base, timeout=600, headers={"authorization": f"Bearer {DASHBOARD_TOKEN}"}) as http:
        t0 = time.time()
        await asyncio.sleep(args.gap)  # warm-up: a fresh process's first requests are slow; not counted
        stretches.append(("warmup", t0, time.time()))
        await asyncio.sleep(args.gap)
        for i in range(args.dashboards):
            t0 = time.time()
            r = await http.get(f"/dashboard?days={40 + i}")
            stretches.append(("dashboard", t0, time.time()))
            print(f"  dashboard first load {i + 1}: {r.status_code} in {time.time() - t0:.2f} s", flush=True)
            await asyncio.sleep(args.gap)
    while (run := await asyncio.to_thread(digest_run, db, occurrence)) is None:
        await asyncio.sleep(0.5)
    stretches.append(("digest", *run))
    print(f"  digest ran for {run[1] - run[0]:.2f} s", flush=True)
    await asyncio.sleep(max(0.0, run[1] + args.gap - time.time()))
    stop.set()
    return stretches


def figures(samples, stretches, kinds=("dashboard", "digest")) -> dict[str, list[float]]:
    """Each ack's seconds under the stretch kinds it overlapped ("idle" when none; warm-up dropped)."""
    by: dict[str, list[float]] = {"idle": [], **{kind: [] for kind in kinds}}
    for due, seconds, _status in samples:
        kinds = {kind for kind, start, end in stretches if due < end and due + seconds > start}
        if "warmup" in kinds:
            continue
        for kind in kinds or {"idle"}:
            by[kind].append(seconds)
    return by


async def main_async(args) -> int:
    db = Database(args.url)
    now = datetime.now(timezone.utc)
    occurrence = (now + timedelta(seconds=75 + 59)).replace(second=0, microsecond=0)
    with fake_slack_process() as (fake_url, _answers):
        env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake_url + "/api/"}
        with serve_process(args.url, policy(occurrence), env) as (base, _proc):
            print(f"digest due at {occurrence:%H:%M:%S} UTC; {args.rate:g} requests a second from now", flush=True)
            stop = asyncio.Event()
            samples, stretches = await asyncio.gather(
                load(base, Requests(fake_url, [], [1, 1, 0]), args.rate, stop), drive(base, db, occurrence, args, stop))
    db.dispose()
    by = figures(samples, stretches)
    print(f"\n{'':<12}{'acks':>6}{'non-200':>9}{'p50 ms':>9}{'p99 ms':>9}{'worst ms':>10}")
    bad = sum(s[2] != 200 for s in samples)
    for kind, seconds in by.items():
        if seconds:
            p99 = statistics.quantiles(seconds, n=100, method="inclusive")[98] if len(seconds) > 1 else seconds[0]
            print(f"{kind:<12}{len(seconds):>6}{'':>9}{statistics.median(seconds) * 1000:>9.0f}{p99 * 1000:>9.0f}{max(seconds) * 1000:>10.0f}")
    print(f"non-200 answers: {bad}" + (f" (status: count {dict(Counter(x[2] for x in samples if x[2] != 200))}; 0: no answer)" if bad else ""))
    idle, ok = max(by["idle"]), bad == 0
    for kind in ("dashboard", "digest"):
        if by[kind]:
            ratio = max(by[kind]) / idle
            ok &= ratio <= GOAL
            print(f"worst ack during {kind} / worst idle: {ratio:.2f} (goal <= {GOAL}: {'met' if ratio <= GOAL else 'NOT met'})")
    print(f"load average {load_average()}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ack_during", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="a loaded database (bench.report --keep prints it)")
    parser.add_argument("--rate", type=float, default=5.0, help="requests a second (default 5)")
    parser.add_argument("--dashboards", type=int, default=3, help="first dashboard loads (default 3)")
    parser.add_argument("--gap", type=float, default=8.0, help="idle seconds around each heavy stretch (default 8)")
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
