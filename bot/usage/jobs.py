"""The usage feature's minute: settle what the after-ack work left (Slack did not answer, or the
process died between an event's ack and its settling) and close the CSAT windows whose time is up.
Not a claimed job (like ``surveys.tick``): both steps are safe to repeat and to run on several
instances (settling skips a settled event; closing locks each window and checks its status)."""

import logging
from datetime import datetime
from functools import partial

import anyio.to_thread

from bot.runtime.scheduler import Job, interval_slot, interval_trigger
from bot.usage import csat
from storage.database import DatabaseUnavailable

log = logging.getLogger(__name__)
TICK_MINUTES = 1
JOB = "usage.tick"


async def tick(deps, keys, audience=None, now: datetime | None = None) -> tuple[int, list[int]]:
    """Settle, refresh the audience (``bot.usage.adoption.AudienceRefresh``, at most hourly), close
    the windows due at ``now`` (default: the settler's clock). Returns (events settled, windows closed)."""
    settler = deps.usage
    try:
        settled = await settler.settle()
        if audience is not None:
            await audience.maybe()
        closed = await deps.db.work(csat.close_due, keys=keys, policy=deps.policy.usage, now=now or settler.clock())
    except DatabaseUnavailable as exc:
        log.warning("usage tick skipped: database unavailable: %s", exc)
        return 0, []
    if closed:
        await anyio.to_thread.run_sync(csat.wipe, deps.db.engine)
    return settled, closed


def schedule(deps, keys, audience=None) -> None:
    """Every instance ticks at start, however late the loop gets to it, then every TICK_MINUTES."""
    deps.scheduler.add(Job(name=JOB, db=deps.db, work=None, occurrence_at=interval_slot(TICK_MINUTES),
                           each_instance=partial(tick, deps, keys, audience)),
                       interval_trigger(TICK_MINUTES), misfire_grace_seconds=None, at_start=True)
