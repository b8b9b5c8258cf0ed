"""Usage events under load: 200 signed events a second into ``POST /events/usage`` of one
``platform-feedback serve`` while Slack requests are timed in the same run, against the same run's
Slack acks with no events coming in (goal: the worst ack while events flow at most 1.3 times the
worst idle ack, and every ack within Slack's 3 s; every event answered 202 and stored).

    python -m bench.usage_events [--database postgresql|sqlite] [--events 200] [--rate 5] [--seconds 20]

1. A fresh, migrated database (``bench.report.fresh_database``), the tests' fake Slack in a process
   of its own, and ``serve`` with a policy of two capabilities (``deploy`` asks the moment-of-use
   question of one use in ten, so DMs and ``users.info`` reads run during the load too).
2. Idle: signed slash commands (``bench.ack_latency.Requests``: the modal, a one-line report) at
   ``--rate`` a second, open loop, for ``--seconds``.
3. Loaded: the same Slack requests and, from the same client, ``--events`` usage events a second
   (500 people, a new event id each), open loop, for ``--seconds``, over 32 kept-alive connections
   (a lean client of its own: httpx would take the CPU the server is measured with).
4. Prints each stretch's acks (count, p50, p99, worst), the events' answers (achieved rate, p50,
   p99, worst, non-202), the events stored and settled, the ratio, and the load average. The
   client runs on the same machine: its CPU is taken from the server's.

Not run in CI.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from collections import Counter

from sqlalchemy import text

from bench.ack_during import load
from bench.ack_latency import Requests, fake_slack_process
from bench.report import fresh_database, load_average, serve_process
from bot.usage import signing
from tests.fake_slack import TOKEN
from tests.slack_requests import SIGNING_SECRET

GOAL = 1.3
SLACK_ACK_SECONDS = 3.0
SECRET = "bench-usage-secret-0123456789abcdef"
POLICY = """hosts:
  users: [U0BENCHHOST]
triage:
  channel: C0BENCHTRI1
usage:
  csat: {cap_days: 14, quiet_hours: null}
  capabilities:
    - {name: deploy, area: deploys, csat: {enabled: true, sample_every: 10}}
    - {name: new-service, area: environments}
"""


class Connections:
    """A lean HTTP/1.1 keep-alive client (asyncio streams, ``size`` connections): the load must not
    take the CPU it is meant to measure the server with (httpx costs about 5 ms of CPU a request)."""

    def __init__(self, base: str, size: int):
        host, port = base.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.pool: asyncio.Queue = asyncio.Queue()
        for _ in range(size):
            self.pool.put_nowait(None)

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        """The answer's status (0: no answer)."""
        conn = await self.pool.get()
        head = (f"POST {path} HTTP/1.1\r\nhost: {self.host}\r\ncontent-length: {len(body)}\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
        try:
            for attempt in range(2):  # a kept-alive connection the server closed meanwhile: once more on a new one
                try:
                    if conn is None:
                        conn = await asyncio.open_connection(self.host, self.port)
                    reader, writer = conn
                    writer.write(head + body)
                    line = await reader.readline()
                    if not line:
                        raise ConnectionResetError("closed")
                    status, length = int(line.split()[1]), 0
                    while (line := await reader.readline()) not in (b"\r\n", b""):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":", 1)[1])
                    await reader.readexactly(length)
                    return status
                except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                    if conn is not None:
                        conn[1].close()
                    conn = None
                    if attempt:
                        return 0
            return 0
        finally:
            self.pool.put_nowait(conn)


async def events(base: str, rate: float, seconds: float) -> list[tuple[float, float, int]]:
    """``rate`` signed usage events a second for ``seconds``, open loop: (due, seconds to the answer, status) each."""
    samples, tasks, start = [], [], time.time()
    http = Connections(base, 32)

    async def one(due: float, i: int) -> None:
        body = json.dumps({"id": f"bench-{uuid.uuid4().hex}", "capability": "deploy" if i % 3 else "new-service",
                           "user": f"U0USE{i % 500:04d}", "outcome": "failed" if i % 7 == 0 else "ok", "duration_ms": 1000 + i % 900,
                           "subject": f"svc-{i % 40}"}).encode()
        status = await http.post("/events/usage", body, signing.headers(SECRET, body))
        samples.append((due, time.time() - due, status))

    i = 0
    while (due := start + i / rate) < start + seconds:
        await asyncio.sleep(max(0.0, due - time.time()))
        tasks.append(asyncio.create_task(one(due, i)))
        i += 1
    await asyncio.gather(*tasks)
    return samples


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (/proc/PID/stat fields 14 and 15)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(name: str, seconds: list[float]) -> str:
    p99 = statistics.quantiles(seconds, n=100, method="inclusive")[98] if len(seconds) > 1 else seconds[0]
    return f"{name:<16}{len(seconds):>7}{statistics.median(seconds) * 1000:>9.1f}{p99 * 1000:>9.1f}{max(seconds) * 1000:>10.1f}"


async def stretch(base: str, fake_url: str, rate: float, seconds: float, event_rate: float | None):
    stop = asyncio.Event()
    acks = asyncio.create_task(load(base, Requests(fake_url, [], [1, 1, 0]), rate, stop))
    sent = await events(base, event_rate, seconds) if event_rate else []
    if not event_rate:
        await asyncio.sleep(seconds)
    stop.set()
    return await acks, sent


async def main_async(args) -> int:
    print(f"load average before {load_average()}", flush=True)
    with fresh_database(args.database) as db, fake_slack_process() as (fake_url, answers):
        env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake_url + "/api/",
               "USAGE_SIGNING_SECRET": SECRET, "USAGE_EVENTS_PER_SECOND": str(max(300.0, args.events * 2))}
        with serve_process(db.url, POLICY, env) as (base, proc):
            await stretch(base, fake_url, args.rate, args.warmup, None)  # a fresh process's first requests: not counted
            idle, _ = await stretch(base, fake_url, args.rate, args.seconds, None)
            print(f"idle stretch done ({len(idle)} acks); {args.events:g} events a second for {args.seconds:g} s", flush=True)
            t0, server0, client0 = time.time(), cpu_seconds(proc.pid), time.process_time()
            loaded, sent = await stretch(base, fake_url, args.rate, args.seconds, args.events)
            took, server_cpu, client_cpu = time.time() - t0, cpu_seconds(proc.pid) - server0, time.process_time() - client0
            deadline = time.time() + 120
            while time.time() < deadline:  # the after-ack work catching up (users.info reads, CSAT DMs)
                stored, settled = db.transact(lambda session: session.execute(
                    text("SELECT count(*), coalesce(sum(CASE WHEN settled THEN 1 ELSE 0 END), 0) FROM usage_event")).one())
                if settled >= stored:
                    break
                await asyncio.sleep(1)
            asks = db.transact(lambda session: session.execute(text("SELECT count(*) FROM usage_ask")).scalar())
    ok_events = sum(1 for s in sent if s[2] == 202)
    print(f"\n{'':<16}{'count':>7}{'p50 ms':>9}{'p99 ms':>9}{'worst ms':>10}")
    print(summary("acks idle", [s[1] for s in idle]))
    print(summary("acks + events", [s[1] for s in loaded]))
    print(summary("usage events", [s[1] for s in sent]))
    bad_acks = sum(1 for s in idle + loaded if s[2] != 200)
    bad_events = Counter(s[2] for s in sent if s[2] != 202)
    print(f"events: {len(sent)} sent over {args.seconds:g} s, all answered within {took:.1f} s: {ok_events / took:.1f} answered 202 a second "
          f"(asked {args.events:g}); non-202: {dict(bad_events) or 0}; stored {stored}, settled {settled}, questions asked {asks}")
    print(f"CPU while loaded: serve {server_cpu:.1f} s ({server_cpu / max(1, len(sent)) * 1000:.1f} ms per event, Slack requests "
          f"included), this client {client_cpu:.1f} s, in {took:.1f} s on {os.cpu_count()} CPUs")
    print(f"non-200 Slack acks: {bad_acks}; fake Slack calls: {dict(answers.get('calls', {}))}")
    worst_idle, worst_loaded = max(s[1] for s in idle), max(s[1] for s in loaded)
    ratio = worst_loaded / worst_idle
    met = ratio <= GOAL and worst_loaded < SLACK_ACK_SECONDS and bad_acks == 0 and not bad_events and stored == ok_events
    print(f"worst ack during events / worst idle: {ratio:.2f} (goal <= {GOAL}, and every ack < {SLACK_ACK_SECONDS:g} s: "
          f"{'met' if met else 'NOT met'})")
    print(f"load average after {load_average()}")
    return 0 if met else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.usage_events", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--events", type=float, default=200.0, help="usage events a second (default 200)")
    parser.add_argument("--rate", type=float, default=5.0, help="Slack requests a second (default 5)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of each stretch (default 20)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of warm-up before the idle stretch (default 5)")
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
