"""Scale-out benchmark: does ``serve --workers 2`` sustain twice the ack-goal ceiling of one serving
process, when each serving process has a CPU of its own?

    python -m bench.scale_out [--points 300000] [--reuse] [--quota 0.5] [--period-ms 100]
                              [--ladder 4,6,8,11,14,17,20] [--ceiling R] [--seconds 20] [--rounds 2]

Why caps: this machine has two CPUs, which also carry PostgreSQL, the fake Slack and the load
generator; a second bot process there only gets what those leave (``bench.ack_latency
--compare-workers 2``: 1.15x). Here each serving process (with its chart process) is put in a
cgroup v1 ``cpu`` group of its own, limited to ``--quota`` of one CPU per ``--period-ms`` period
and given a high ``cpu.shares`` (so the uncapped rest of the machine cannot take its quota away).
That is how a container's CPU limit works (Kubernetes: the same CFS quota, 100 ms periods): the
process runs at full speed until it has used its quota in a period, then waits for the next one.
So it emulates N containers of ``--quota`` CPU each, one process each, with PostgreSQL, Slack and
the client outside them. (With short periods, e.g. 10 ms, the process instead runs as on a CPU
``1/quota`` times slower, and the after-ack work of one request, ~20 ms of CPU at 300k, blocks the
event loop that much longer: at 0.5 CPU the bot then misses the ack goal already at 4/s.) The
supervisor of ``--workers 2`` only waits and is not capped.

The baseline is the minimal Bolt app (``bench/minimal_app.py``) on one process capped at the same
quota, fed the same open-loop rate per process (the ceiling C): the ack goal compares the bot with
the smallest Slack app on the same hardware, and a slower CPU slows both. (Uncapped, the minimal app
would measure a faster machine than the bot runs on.) Two workers at 2C get C each, so their
floor is that same minimal app at C; an uneven split of connections counts against the workers.

1. The ceiling C (unless ``--ceiling``): the ladder's rates in turn, each a ``--seconds`` stretch
   of the bot on one capped process and one of the minimal app at the same rate, in alternating
   order; C is the highest rate before the first at which the bot missed the ack goal: its p99
   at most 1.3x the minimal app's, every answer a 200, and at least 95 % of the rate achieved.
2. ``--rounds`` rounds, interleaved (one, minimal, two; then two, minimal, one; ...): one capped
   process at C, the minimal app at C, ``serve --workers 2`` at 2C with each worker in its own
   cgroup with the same quota. Pooled over the rounds: p50/p99 each, p99 against the minimal app's,
   CPU used per process (share of its quota, ms per request, periods throttled), the rate achieved
   by two processes over one's. Load average printed before and after.

Exit status 0 if both one process at C and two at 2C met the goal, 1 if not, 2 if the CPU cgroups
cannot be made (needs root and the cgroup v1 cpu controller at /sys/fs/cgroup/cpu). The cgroups are
removed at the end. The load is ``bench.ack_latency``'s (signed slash commands and clicks, ``--mix``).
Not run in CI (``tests/runtime/test_serve_workers.py`` runs a smaller capped burst).
"""

import argparse
import asyncio
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.ack_latency import (
    BENCH_URL,
    DB_NAME,
    GOAL,
    Requests,
    bot,
    cpu_seconds,
    fake_slack_process,
    minimal_app,
    percentiles,
    prepare_database,
    reconnect,
    row_counts,
    send,
    settle,
)
from tests.cpu_caps import CPU_CGROUPS, CpuCap, cpu_cap, worker_pids

KEEP_UP = 0.95  # requests a second achieved / due, below which a stretch counts as falling behind


# ------------------------------------------------------------------ the stretches


@dataclass
class App:
    """One configuration under load: its address, the process ``settle`` watches, its capped processes."""
    base: str
    pid: int
    caps: dict[int, CpuCap]  # serving pid -> its group
    requests: Requests
    connections: list[httpx.AsyncClient] = field(default_factory=list)


@dataclass
class Stretch:
    rate: float
    samples: list[tuple]
    seconds: float
    cpu: list[float]  # CPU seconds per serving process (and its children), after-ack work included
    throttled: list[tuple[int, float]]

    @property
    def achieved(self) -> float:
        return len(self.samples) / self.seconds

    def figures(self) -> tuple[float, float, int]:
        """p50 ms, p99 ms, answers that were not a 200."""
        return (*percentiles([s[1] for s in self.samples]), sum(s[2] != 200 for s in self.samples))


async def stretch(app: App, rate: float, seconds: float) -> Stretch:
    settle(app.pid)
    await reconnect(app.connections)
    cpu0 = {p: cpu_seconds(p) for p in app.caps}
    thr0 = {p: cap.throttled() for p, cap in app.caps.items()}
    began = time.monotonic()
    samples = await send(app.connections, app.requests, round(rate * seconds), rate)
    wall = time.monotonic() - began
    settle(app.pid)  # its after-ack work is counted too
    thr = {p: cap.throttled() for p, cap in app.caps.items()}
    return Stretch(rate, samples, wall, [cpu_seconds(p) - cpu0[p] for p in app.caps],
                   [(thr[p][0] - thr0[p][0], thr[p][1] - thr0[p][1]) for p in app.caps])


def pooled(stretches: list[Stretch]) -> Stretch:
    return Stretch(stretches[0].rate, [s for st in stretches for s in st.samples], sum(st.seconds for st in stretches),
                   [sum(c) for c in zip(*(st.cpu for st in stretches), strict=False)],
                   [(sum(t[0] for t in ts), sum(t[1] for t in ts)) for ts in zip(*(st.throttled for st in stretches), strict=False)])


def met(bot_: Stretch, minimal: Stretch) -> bool:
    """The ack goal: p99 at most GOAL x the minimal app's, every answer a 200, the rate kept up."""
    _p50, p99, bad = bot_.figures()
    return p99 <= GOAL * minimal.figures()[1] and bad == 0 and bot_.achieved >= KEEP_UP * bot_.rate


def line(name: str, st: Stretch, minimal: Stretch | None, quota: float) -> str:
    p50, p99, bad = st.figures()
    use = ", ".join(f"{c / st.seconds / quota:.0%}" for c in st.cpu)
    thr = ", ".join(f"{n} ({s:.1f} s)" for n, s in st.throttled)
    ratio = f"{p99 / minimal.figures()[1]:>6.2f}" if minimal else f"{'':>6}"
    return (f"{name:<9}{st.rate:>7g}{st.achieved:>9.1f}{len(st.samples):>6}{bad:>5}{p50:>8.1f}{p99:>8.1f}{ratio}"
            f"{sum(st.cpu) * 1000 / len(st.samples):>8.1f}   {use:<12} {thr}")


HEADER = (f"{'':<9}{'rate/s':>7}{'done/s':>9}{'reqs':>6}{'!200':>5}{'p50 ms':>8}{'p99 ms':>8}{'/min':>6}"
          f"{'CPU ms':>8}   {'quota used':<12} periods throttled (waited)")


async def run(apps: dict[str, App], args) -> int:
    for app in apps.values():
        app.connections = [httpx.AsyncClient(base_url=app.base, timeout=60) for _ in range(args.concurrency)]
    first = args.ceiling or args.ladder[0]
    try:
        for name, app in apps.items():  # warm-up, unmeasured
            await send(app.connections, app.requests, args.warmup, first * (2 if name == "two" else 1))
        ceiling = args.ceiling
        if not ceiling:
            print(f"\nfinding one process's ceiling ({args.seconds:g} s a stretch):\n{HEADER}", flush=True)
            for i, rate in enumerate(args.ladder):
                order = ("one", "minimal") if i % 2 == 0 else ("minimal", "one")
                got = {name: await stretch(apps[name], rate, args.seconds) for name in order}
                ok = met(got["one"], got["minimal"])
                print(line("one", got["one"], got["minimal"], args.quota), "" if ok else " goal NOT met", flush=True)
                print(line("minimal", got["minimal"], None, args.quota), flush=True)
                if not ok:
                    break
                ceiling = rate
            if not ceiling:
                print(f"one process missed the ack goal already at {args.ladder[0]:g}/s: no ceiling to double")
                return 1
            print(f"ceiling C of one process at {args.quota:g} CPU: {ceiling:g} requests/s (the highest rate of the "
                  f"ladder before one where its ack p99 exceeded {GOAL} x the minimal app's at the same rate "
                  f"and quota, or an answer was not a 200, or under {KEEP_UP:.0%} of the rate was achieved)", flush=True)
        rates = {"one": ceiling, "minimal": ceiling, "two": 2 * ceiling}
        runs = {name: [] for name in rates}
        print(f"\n{args.rounds} interleaved rounds at C = {ceiling:g}/s ({args.seconds:g} s a stretch):", flush=True)
        for r in range(args.rounds):
            for name in (("one", "minimal", "two") if r % 2 == 0 else ("two", "minimal", "one")):
                runs[name].append(await stretch(apps[name], rates[name], args.seconds))
                print(f"  round {r + 1}/{args.rounds}: {line(name, runs[name][-1], None, args.quota)}", flush=True)
    finally:
        for app in apps.values():
            for http in app.connections:
                await http.aclose()
    figures = {name: pooled(st) for name, st in runs.items()}
    base = figures["minimal"]
    print(f"\npooled over the rounds (quota {args.quota:g} CPU per process, {args.period_ms:g} ms periods):\n{HEADER}")
    for name in ("one", "two", "minimal"):
        print(line(name, figures[name], None if name == "minimal" else base, args.quota))
    ok = {name: met(figures[name], base) for name in ("one", "two")}
    p99 = {name: figures[name].figures()[1] for name in figures}
    print(f"\nack goal (p99 at most {GOAL} x the minimal app's {p99['minimal']:.1f} ms): one process at {ceiling:g}/s "
          f"{p99['one']:.1f} ms {'met' if ok['one'] else 'NOT met'}; two at {2 * ceiling:g}/s {p99['two']:.1f} ms "
          f"{'met' if ok['two'] else 'NOT met'}")
    print(f"throughput, two processes / one, each at the ack goal: {figures['two'].achieved / figures['one'].achieved:.2f}"
          f" ({figures['two'].achieved:.1f} / {figures['one'].achieved:.1f} requests/s)")
    return 0 if all(ok.values()) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_out", description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=300_000, help="data points in the database (default 300,000)")
    parser.add_argument("--reuse", action="store_true", help=f"keep {DB_NAME} if it already holds --points loaded points")
    parser.add_argument("--cards", type=int, default=2000, help="open points given a triage card, clicked at random")
    parser.add_argument("--quota", type=float, default=0.5, help="CPU per serving process, of one CPU (default 0.5)")
    parser.add_argument("--period-ms", type=float, default=100, help="CFS period the quota is counted over (default 100)")
    parser.add_argument("--ladder", default="4,6,8,11,14,17,20", help="open-loop rates tried for one process's ceiling")
    parser.add_argument("--ceiling", type=float, help="take this as one process's ceiling instead of climbing the ladder")
    parser.add_argument("--seconds", type=float, default=20, help="seconds of load per stretch (default 20)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds at the ceiling (default 2)")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured requests per configuration first (default 100)")
    parser.add_argument("--concurrency", type=int, default=48,
                        help="connections, at most one request in flight each (default 48: the kernel deals "
                             "connections, not requests, over the workers, so few would split unevenly)")
    parser.add_argument("--mix", default="1,1,1", help="weights of modal,text,click requests (default 1,1,1)")
    args = parser.parse_args(argv)
    args.ladder = [float(r) for r in args.ladder.split(",")]
    weights = [float(w) for w in args.mix.split(",")]
    period_us = round(args.period_ms * 1000)

    # The groups first: removed last, once the processes in them have stopped; the logs outlive both.
    with tempfile.TemporaryDirectory(prefix="pf-bench-scale-") as tmp_dir, ExitStack() as stack:
        try:
            caps = {name: stack.enter_context(cpu_cap(f"pf-scale-{os.getpid()}-{name}", args.quota, period_us))
                    for name in ("one", "two-a", "two-b", "minimal")}
        except OSError as exc:
            print(f"scale_out: cannot make CPU cgroups under {CPU_CGROUPS} ({exc.strerror or exc}): "
                  "needs root and the cgroup v1 cpu controller", file=sys.stderr)
            return 2
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        cards = prepare_database(args.points, args.cards, args.reuse)
        points, reporters = row_counts()
        print(f"{DB_NAME}: {points:,} data points, {reporters:,} reporters; {len(cards):,} with a triage card", flush=True)
        tmp = Path(tmp_dir)
        fake_url, answers = stack.enter_context(fake_slack_process())
        one_base, one_proc = stack.enter_context(bot(tmp / "one", fake_url, BENCH_URL))
        two_base, two_proc = stack.enter_context(bot(tmp / "two", fake_url, BENCH_URL, 2))
        min_base, min_proc = stack.enter_context(minimal_app(tmp, fake_url))
        workers = worker_pids(tmp / "two" / "serve.log", 2)
        for pid, cap in ((one_proc.pid, caps["one"]), (workers[0], caps["two-a"]), (workers[1], caps["two-b"]),
                         (min_proc.pid, caps["minimal"])):
            print(f"capped at {args.quota:g} CPU ({round(args.quota * period_us)} us every {period_us} us): "
                  f"{cap.path.name}: pids {cap.add(pid)}", flush=True)
        apps = {"one": App(one_base, one_proc.pid, {one_proc.pid: caps["one"]}, Requests(fake_url, cards, weights)),
                "two": App(two_base, two_proc.pid, {workers[0]: caps["two-a"], workers[1]: caps["two-b"]},
                           Requests(fake_url, cards, weights)),
                "minimal": App(min_base, min_proc.pid, {min_proc.pid: caps["minimal"]}, Requests(fake_url, cards, weights))}
        status = asyncio.run(run(apps, args))
        stack.close()
        errors = [ln for name in ("one", "two") for ln in (tmp / name / "serve.log").read_text(errors="replace").splitlines()
                  if '"level": "ERROR"' in ln or "Traceback" in ln]
    print(f"fake Slack answered: {dict(answers['calls'])}; Block Kit errors {answers['error_count']}; "
          f"bot log errors {len(errors)}")
    for ln in errors[:3]:
        print(f"  {ln[:300]}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return status


if __name__ == "__main__":
    sys.exit(main())
