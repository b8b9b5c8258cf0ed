"""Duplicate-check benchmark (issue #26 item 6): the worst ack while new triage cards are drawn
among 500 open 3,000-character reports (each card's duplicate check scores the new report against
all of them), against the worst ack of the same run's idle stretches (goal: at most 1.3 times).

    python -m bench.duplicate_ack [--database sqlite|postgresql] [--open 500] [--rate 10] [--rounds 3]
                                  [--cards 3] [--gap 6]

1. A fresh migrated database (``bench.report.fresh_database``; removed at the end), seeded with
   ``--open`` open reports of 3,000 characters of words drawn from a 3,000-word vocabulary; their
   own duplicate suggestions kept ("nothing resembles it"), as the bot keeps them when their cards
   were drawn.
2. Starts the tests' fake Slack in a process of its own, and ``platform-feedback serve`` on that
   database with a policy that has a triage channel and one host (the default duplicate
   threshold, 70).
3. Sends signed requests at ``--rate`` a second, open loop, timed from when each was due, for the
   whole run: half ``/platform-feedback`` with no text (opens the modal: no database), half
   *Assign to me* clicks by the host on the seeded reports (a write transaction: on SQLite it waits
   for any other writer).
4. Meanwhile: ``--gap`` s of warm-up (not counted), ``--gap`` s idle, then ``--rounds`` times: files
   ``--cards`` new 3,000-character reports at once (their acks are not counted) and waits until
   every one has its card drawn and its duplicate suggestion kept (the "cards" stretch), then
   ``--gap`` s idle.
5. Prints count, p50, p99 and worst ack per stretch (idle, cards), how long each cards stretch took,
   the ratio of worst during cards / worst idle, non-200 answers and the load average before and
   after. Exit status 0 if the goal is met and every answer was a 200.

Not run in CI.
"""

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs

import httpx
from sqlalchemy import text

from bench.ack_during import figures, load
from bench.ack_latency import POLICY, Requests, fake_slack_process
from bench.report import fresh_database, load_average, serve_process
from storage.database import Database
from storage.models import FrictionPoint, Source
from tests.fake_slack import TOKEN
from tests.slack_requests import SIGNING_SECRET, slash_command

GOAL = 1.3
UTC = timezone.utc


def vocabulary(rng: random.Random) -> list[str]:
    return ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9))) for _ in range(3000)]


def report_text(rng: random.Random, words: list[str]) -> str:
    return " ".join(rng.choice(words) for _ in range(700))[:3000]


def seed(db: Database, n: int, rng: random.Random, words: list[str]) -> list[int]:
    start = datetime.now(UTC) - timedelta(days=20)
    with db.session() as s, s.begin():
        points = [FrictionPoint(team_id="T0BENCH001", filed_by=f"U0SEED{i % 50:04d}", text=report_text(rng, words),
                                source=Source.command, intake_key=f"bench-seed:{i}", created_at=start + timedelta(minutes=i),
                                suggested_similarity=0.0) for i in range(n)]
        s.add_all(points)
        s.flush()
        return [p.id for p in points]


def drawn(db: Database, keys: list[str]) -> int:
    """How many of the reports filed with ``keys`` have their card posted and their suggestion kept."""
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT intake_key FROM friction_point WHERE card_ts IS NOT NULL "
                                 "AND suggested_similarity IS NOT NULL AND intake_key LIKE 'command:%'")).all()
    return sum(1 for (key,) in rows if key in keys)


async def drive(base: str, fake_url: str, db: Database, args, rng: random.Random, words: list[str],
                stop: asyncio.Event) -> list[tuple[str, float, float]]:
    """The cards stretches: (kind, start, end) in epoch seconds."""
    stretches = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        t0 = time.time()
        await asyncio.sleep(args.gap)  # warm-up: a fresh process's first requests are slow; not counted
        stretches.append(("warmup", t0, time.time()))
        await asyncio.sleep(args.gap)
        for r in range(args.rounds):
            filings = [slash_command(report_text(rng, words), fake_url=fake_url, user=f"U0FILER{r:02d}{i:02d}") for i in range(args.cards)]
            t0 = time.time()
            answers = await asyncio.gather(*(http.post("/slack/events", content=body.encode(), headers=headers) for body, headers in filings))
            keys = ["command:" + parse_qs(body)["trigger_id"][0] for body, _headers in filings]
            while await asyncio.to_thread(drawn, db, keys) < len(keys):
                if time.time() - t0 > 120:
                    raise RuntimeError("the cards were not drawn within 120 s")
                await asyncio.sleep(0.05)
            stretches.append(("cards", t0, time.time()))
            print(f"  round {r + 1}: {args.cards} cards drawn in {time.time() - t0:.2f} s "
                  f"(filing acks {', '.join(f'{a.status_code}' for a in answers)})", flush=True)
            await asyncio.sleep(args.gap)
    stop.set()
    return stretches


async def main_async(args) -> int:
    rng = random.Random(26)
    words = vocabulary(rng)
    with fresh_database(args.database) as db:
        url = db.url
        ids = seed(db, args.open, rng, words)
        print(f"{len(ids)} open reports of 3,000 characters in {args.database}; {args.rate:g} acks a second", flush=True)
        before = load_average()
        with fake_slack_process() as (fake_url, answers):
            env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake_url + "/api/"}
            with serve_process(url, POLICY, env) as (base, _proc):
                stop = asyncio.Event()
                samples, stretches = await asyncio.gather(
                    load(base, Requests(fake_url, ids, [1, 0, 1]), args.rate, stop),
                    drive(base, fake_url, db, args, rng, words, stop))
        after = load_average()
    by = figures(samples, stretches, kinds=("cards",))
    print(f"\n{'':<8}{'acks':>6}{'p50 ms':>9}{'p99 ms':>9}{'worst ms':>10}")
    for kind, seconds in by.items():
        if seconds:
            p99 = statistics.quantiles(seconds, n=100, method="inclusive")[98] if len(seconds) > 1 else seconds[0]
            print(f"{kind:<8}{len(seconds):>6}{statistics.median(seconds) * 1000:>9.1f}{p99 * 1000:>9.1f}{max(seconds) * 1000:>10.1f}")
    bad = sum(s[2] != 200 for s in samples)
    print(f"non-200 answers: {bad}" + (f" ({dict(Counter(s[2] for s in samples if s[2] != 200))}; 0: no answer)" if bad else ""))
    print(f"fake Slack calls: {dict(answers.get('calls', {}))}")
    ratio = max(by["cards"]) / max(by["idle"])
    ok = bad == 0 and ratio <= GOAL
    print(f"worst ack during cards / worst idle: {ratio:.2f} (goal <= {GOAL}: {'met' if ratio <= GOAL else 'NOT met'})")
    print(f"load average before {before}, after {after}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.duplicate_ack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--open", type=int, default=500, help="open reports to compare with (default 500)")
    parser.add_argument("--rate", type=float, default=10.0, help="acks a second (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of new cards (default 3)")
    parser.add_argument("--cards", type=int, default=3, help="new cards per round (default 3)")
    parser.add_argument("--gap", type=float, default=6.0, help="idle seconds around each round (default 6)")
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
