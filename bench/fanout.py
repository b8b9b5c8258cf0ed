"""Fan-out benchmark: N queued DMs through the real OutboxSender against a fake Slack that allows
``--rate`` chat.postMessage calls a second and answers 429 + Retry-After beyond that.

    python -m bench.fanout [--notices 5000] [--rate 100] [--database sqlite|postgresql]

Prints the achieved send rate as a fraction of the allowed rate (goal >= 0.9), the 429s, duplicates
(the same notice delivered twice; goal 0) and lost notices (queued, never delivered; goal 0).
PostgreSQL: a fresh database is created and dropped on the server at BENCH_POSTGRES_URL
(default postgresql+psycopg://postgres@127.0.0.1:5432/test, the database to connect to for that).
"""

import argparse
import asyncio
import logging
import sys
import time
from collections import Counter

from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import func, select

from bench.rate_limited_slack import TOKEN, RateLimitedSlackProcess
from bench.report import fresh_database
from bot.runtime.outbox import OutboxSender
from storage import outbox
from storage.database import Database
from storage.models import OutboxMessage


def notice(i: int) -> dict:
    return {"channel": f"U{i:08d}", "text": f"notice {i}: FB-{i} was fixed, thanks for reporting it"}


def fill(db: Database, count: int, chunk: int = 500) -> list[str]:
    """Queue ``count`` DMs the way the bot does (storage.outbox.enqueue), ``chunk`` per transaction."""
    texts = []

    def queue(*, session, first: int, last: int) -> None:
        for i in range(first, last):
            payload = notice(i)
            outbox.enqueue(session=session, dedupe_key=f"bench:{i}", method="chat.postMessage", payload=payload)
            texts.append(payload["text"])

    for first in range(0, count, chunk):
        db.transact(queue, first=first, last=min(count, first + chunk))
    return texts


def statuses(*, session) -> dict[str, int]:
    rows = session.exec(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all()
    return {str(status): n for status, n in rows}


async def run(args) -> dict:
    fake = RateLimitedSlackProcess(rate=args.rate)
    with fresh_database(args.database) as db, fake:
        queued = fill(db, args.notices)
        client = AsyncWebClient(token=TOKEN, base_url=fake.url + "/api/")
        sender = OutboxSender(
            db,
            client,
            rates={"chat.postMessage": args.sender_rate or args.rate},
            bursts={"chat.postMessage": args.burst},
            channel_rates={},  # every notice goes to its own DM channel
            idle_seconds=0.2,
            batch_seconds=args.batch_seconds,
        )
        started = time.time()
        sender.start()
        try:
            while db.transact(outbox.pending_count):
                await asyncio.sleep(0.2)
                if time.time() - started > args.timeout:
                    print(f"timed out after {args.timeout} s", file=sys.stderr)
                    break
        finally:
            await sender.stop()
        emptied = time.time() - started
        counts = db.transact(statuses)
    delivered = Counter(d.text for d in fake.delivered)
    last = max((d.at for d in fake.delivered), default=started)
    elapsed = last - started
    achieved = len(delivered) / elapsed if elapsed > 0 else 0.0
    return {
        "database": args.database,
        "notices": args.notices,
        "allowed rate /s": args.rate,
        "sender rate /s": args.sender_rate or args.rate,
        "achieved rate /s": round(achieved, 1),
        "ratio": round(achieved / args.rate, 3),
        "429s": fake.rejected,
        "duplicates": sum(n - 1 for n in delivered.values() if n > 1),
        "lost": len(set(queued) - set(delivered)),
        "outbox": counts,
        "elapsed s (to last delivery)": round(elapsed, 1),
        "elapsed s (to empty outbox)": round(emptied, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__.split("\n\n")[0])
    parser.add_argument("--notices", type=int, default=5000)
    parser.add_argument("--rate", type=int, default=100, help="chat.postMessage calls per second the fake Slack allows")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--sender-rate", type=float, default=None, help="the sender's configured pace (default: --rate)")
    parser.add_argument("--burst", type=int, default=1, help="the sender's burst for chat.postMessage (default 1)")
    parser.add_argument("--batch-seconds", type=float, default=5.0, help="the sender's batch_seconds (default 5)")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = asyncio.run(run(args))
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    ok = result["ratio"] >= 0.9 and result["duplicates"] == 0 and result["lost"] == 0
    print("goal met" if ok else "goal NOT met (ratio >= 0.9, duplicates 0, lost 0)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
