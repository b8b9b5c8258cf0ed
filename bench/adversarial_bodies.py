"""Adversarial tracker bodies benchmark (issue #26 items 4 and 5): the worst ack of other requests
while hostile pull/merge request bodies arrive at a real ``platform-feedback serve``, against the
worst ack of the same run's idle stretches (goal: at most 1.3 times).

    python -m bench.adversarial_bodies [--database sqlite|postgresql] [--rate 5] [--gap 8] [--burst 10]

1. A fresh migrated database (``bench.report.fresh_database``), the tests' fake Slack in a process
   of its own, and ``serve`` with the GitHub and GitLab webhook secrets set.
2. Signed slash commands (``bench.ack_latency.Requests``: opening the modal, filing one line) at
   ``--rate`` a second, open loop, timed from when each was due, for the whole run.
3. Meanwhile: ``--gap`` s of warm-up (not counted) and ``--gap`` s idle; then for each hostile kind
   ``--burst`` signed deliveries a second for ``--gap`` s, then ``--gap`` s idle. The kinds, each
   at the 64 KiB the bot reads (issue #26's figures for the regular expressions they replaced):
   a merged PR body ``"a" + backticks + "x"`` (2.0 s at 900 backticks), ``"fix" + spaces + "x"``
   (1.4 s at 6,000), a merged GitLab MR description ``"Closes #1" + spaces + "x"`` (7.6 s), and a
   merged PR body naming 5,554 issues (``Fixes #1 Fixes #2 ...``: held SQLite's writer, 1.8 s);
   first, the same rate of ordinary short merged PRs (what any delivery at that rate costs).
   The hostile sender is a process of its own, its bodies built before the clock starts: the measuring
   client's interpreter does nothing but the measured requests.
4. Each ack is put in the stretch it overlapped. Prints count, p50, p99 and worst per stretch,
   the hostile deliveries' own answer times, the ratio worst during / worst idle, and the load
   average (1, 5, 15 min) before and after.

Not run in CI.
"""

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import httpx

from bench.ack_during import load
from bench.ack_latency import Requests, fake_slack_process
from bench.report import fresh_database, load_average, serve_process
from tests import tracker_requests as tr
from tests.fake_slack import TOKEN
from tests.slack_requests import SIGNING_SECRET

GOAL = 1.3
SIZE = 65_536


def hostile(kind: str, n: int) -> tuple[str, bytes, dict]:
    """The ``n``th delivery of ``kind`` (each a new PR/MR number: no two bodies are the same)."""
    if kind == "backticks":
        return "github", *tr.github("pull_request", tr.github_pr_merged("acme/platform", 10_000 + n, "a" + "`" * (SIZE - 2) + "x"))
    if kind == "fix-spaces":
        return "github", *tr.github("pull_request", tr.github_pr_merged("acme/platform", 20_000 + n, "fix" + " " * (SIZE - 4) + "x"))
    if kind == "closes-spaces":
        return "gitlab", *tr.gitlab("g/p", 30_000 + n, "merge", kind="merge_request", description="Closes #1" + " " * (SIZE - 10) + "x")
    if kind == "ordinary":
        return "github", *tr.github("pull_request", tr.github_pr_merged("acme/platform", 50_000 + n, "Raises the log limit.\n\nFixes #1"))
    body = " ".join(f"Fixes #{i}" for i in range(1, 5555))[:SIZE]
    return "github", *tr.github("pull_request", tr.github_pr_merged("acme/platform", 40_000 + n, body))


# "ordinary": a short merged PR body at the same rate, to tell the cost of any delivery from that of a hostile one.
KINDS = ["ordinary", "backticks", "fix-spaces", "closes-spaces", "5554-references"]
HOSTILE = KINDS[1:]


async def drive(base: str, gap: float, burst: float) -> tuple[list[tuple[str, float, float]], dict[str, list[tuple[float, int]]]]:
    """The hostile bursts: (kind, start, end) stretches in epoch seconds, and each delivery's (seconds, status)."""
    stretches, answers = [], {k: [] for k in KINDS}
    per_kind = int(burst * gap)
    # Built before the clock starts (each body's JSON and signature take milliseconds).
    bodies = {kind: [hostile(kind, KINDS.index(kind) * per_kind + i) for i in range(per_kind)] for kind in KINDS}
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        t0 = time.time()
        await asyncio.sleep(gap)  # warm-up: not counted
        stretches.append(("warmup", t0, time.time()))
        await asyncio.sleep(gap)

        async def one(kind: str, route: str, body: bytes, headers: dict) -> None:
            start = time.time()
            status = (await http.post(f"/webhooks/{route}", content=body, headers=headers)).status_code
            answers[kind].append((time.time() - start, status))

        for kind in KINDS:
            t0, tasks = time.time(), []
            for i, delivery in enumerate(bodies[kind]):
                await asyncio.sleep(max(0.0, t0 + i / burst - time.time()))
                tasks.append(asyncio.create_task(one(kind, *delivery)))
            await asyncio.gather(*tasks)
            stretches.append((kind, t0, time.time()))
            print(f"  {kind}: {len(tasks)} deliveries in {time.time() - t0:.1f} s", flush=True)
            await asyncio.sleep(gap)
    return stretches, answers


def drive_process(base: str, gap: float, burst: float):
    """``drive`` in a process of its own: the hostile sender must not share the measuring client's
    interpreter (sending 64 KiB bodies would delay the measured requests in the client itself). At
    the lowest CPU priority: in the world the sender is GitHub or GitLab, on machines of their own;
    here its CPU is the bench's, which the bot under test should not be charged for."""
    os.setpriority(os.PRIO_PROCESS, 0, 19)
    return asyncio.run(drive(base, gap, burst))


async def measured(base: str, fake_url: str, args) -> tuple[list, tuple]:
    """The measured requests until the hostile sender (another process) is done; both results."""
    stop = asyncio.Event()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        sender = asyncio.get_running_loop().run_in_executor(pool, drive_process, base, args.gap, args.burst)
        sender.add_done_callback(lambda _: stop.set())
        samples = await load(base, Requests(fake_url, [], [1, 1, 0]), args.rate, stop)
        return samples, await sender


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def main_async(args) -> int:
    before = load_average()
    with fresh_database(args.database) as db, fake_slack_process() as (fake_url, _answers):
        env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake_url + "/api/",
               "GITHUB_WEBHOOK_SECRET": tr.GITHUB_SECRET, "GITLAB_WEBHOOK_TOKEN": tr.GITLAB_TOKEN}
        with serve_process(db.url, "hosts:\n  users: [U0BENCHHOST]\ntriage:\n  channel: C0BENCHTRI1\n", env) as (base, _proc):
            print(f"{args.database}: {args.rate:g} requests a second; hostile bursts of {args.burst:g}/s", flush=True)
            samples, (stretches, answers) = await measured(base, fake_url, args)
    by: dict[str, list[float]] = {"idle": [], **{k: [] for k in KINDS}}
    warmed = next(end for kind, _, end in stretches if kind == "warmup")
    samples = [sample for sample in samples if sample[0] >= warmed]  # before: the sender starting, and warm-up
    for due, seconds, _status in samples:
        kinds = {kind for kind, start, end in stretches if due < end and due + seconds > start}
        for kind in kinds or {"idle"}:
            by[kind].append(seconds)
    print(f"\n{'acks of others':<18}{'acks':>6}{'p50 ms':>9}{'p99 ms':>9}{'worst ms':>10}")
    for kind, seconds in by.items():
        if seconds:
            print(f"{kind:<18}{len(seconds):>6}{statistics.median(seconds) * 1000:>9.1f}{percentile(seconds, 99) * 1000:>9.1f}"
                  f"{max(seconds) * 1000:>10.1f}")
    print(f"\n{'hostile answers':<18}{'sent':>6}{'p50 ms':>9}{'worst ms':>10}  status")
    for kind, got in answers.items():
        times = [t for t, _ in got]
        print(f"{kind:<18}{len(got):>6}{statistics.median(times) * 1000:>9.1f}{max(times) * 1000:>10.1f}  {dict(Counter(s for _, s in got))}")
    bad = sum(s[2] != 200 for s in samples) + sum(s != 200 for got in answers.values() for _, s in got)
    idle = max(by["idle"])
    worst = max(max(by[k]) for k in HOSTILE if by[k])
    ratio = worst / idle
    ok = bad == 0 and ratio <= GOAL
    first = min(due for due, _, _ in samples)
    slowest = sorted(samples, key=lambda s: -s[1])[:3]
    print("slowest acks: " + ", ".join(f"{seconds * 1000:.1f} ms at +{due - first:.1f} s" for due, seconds, _ in slowest))
    print(f"\nnon-200 answers: {bad}")
    print(f"worst ack during hostile bodies / worst idle: {worst * 1000:.1f} / {idle * 1000:.1f} ms = {ratio:.2f} "
          f"(goal <= {GOAL}: {'met' if ratio <= GOAL else 'NOT met'})")
    print(f"load average before {before}, after {load_average()}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.adversarial_bodies", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rate", type=float, default=5.0, help="other requests a second (default 5)")
    parser.add_argument("--burst", type=float, default=10.0, help="hostile deliveries a second in a burst (default 10)")
    parser.add_argument("--gap", type=float, default=8.0, help="seconds of each burst and of the idle stretches (default 8)")
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
