"""What "acked means kept" adds to an event's ack (issue #26, item 1): each event is written to the
local spool (one SQLite transaction, fsynced) before its 200, where the gate used to ask the
database a ``SELECT 1``. Measured as the gate does it, in a worker thread from the event loop, one
event at a time: the spool's ``keep`` (live) before the ack and its ``finish`` after it, against
the old gate's ``db.check()`` on the same machine in the same run (the baseline).

    python -m bench.spool_ack [--events 500] [--dir DIR] [--database-url URL]

``--dir``: where the spool file goes (default: a temporary directory on the working tree's disk,
the disk a bot's spool would be on). Prints p50/p99/max of each, the ratio of the p99s, and the
load average before and after.
"""

import argparse
import asyncio
import os
import statistics
import tempfile
import time

import anyio.to_thread

from bot.runtime.spool import EventSpool
from storage.database import Database

BODY = b'{"type":"event_callback","event":{"type":"reaction_added"}}' + b" " * 1400  # about a reaction event's size


def figures(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms, max {ordered[-1] * 1e3:.2f} ms"


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def measure(events: int, where: str, database_url: str) -> None:
    spool = EventSpool(os.path.join(where, "bench.spool"), max_bytes=10**9)
    db = Database(database_url)
    if database_url.startswith("sqlite"):
        db.migrate()
    keep, finish, check = [], [], []
    for n in range(events):
        started = time.perf_counter()
        await db.check()
        check.append(time.perf_counter() - started)

        started = time.perf_counter()
        seq, _ = await anyio.to_thread.run_sync(lambda n=n: spool.keep(event_id=f"EvBENCH{n}", body=BODY, headers={}, signed=True, live=True))
        keep.append(time.perf_counter() - started)
        started = time.perf_counter()
        await anyio.to_thread.run_sync(spool.finish, seq, "live")
        finish.append(time.perf_counter() - started)
    spool.close()
    db.dispose()
    print(f"baseline, the old gate's db.check() ({db.engine.dialect.name}): {figures(check)}")
    print(f"spool keep before the ack (fsynced): {figures(keep)}")
    print(f"spool finish after the listener (not on the ack's path): {figures(finish)}")
    print(f"ack-path p99 ratio keep / check: {p99(keep) / p99(check):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--dir", default=None)
    parser.add_argument("--database-url", default=None, help="default: a SQLite file beside the spool")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(dir=args.dir or os.getcwd(), prefix="bench-spool-") as where:
        url = args.database_url or f"sqlite:///{where}/bench.db"
        asyncio.run(measure(args.events, where, url))
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
