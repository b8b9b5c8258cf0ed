"""The usage feature's minute: settle what the after-ack work left (Slack did not answer, or the
process died between an event's ack and its settling) and close the CSAT windows whose time is up.
Not a claimed job (like ``surveys.tick``): both steps are safe to repeat and to run on several
instances (settling skips a settled event; closing locks each window and checks its status)."""

import logging
from datetime import datetime
from functools import partial

import anyio.to_thread

from bot.runtime.context import Deps
from bot.runtime.scheduler import Job, interval_slot, interval_trigger
from bot.surveys.sealing import Keys
from bot.usage import csat
from bot.usage.adoption import AudienceRefresh
from bot.usage.slack_reads import keys_for, settler_for, slack_read
from storage.database import DatabaseUnavailable

log = logging.getLogger(__name__)
TICK_MINUTES = 1
JOB = "usage.tick"


async def tick(deps: Deps, keys: Keys, audience: AudienceRefresh | None = None, now: datetime | None = None) -> tuple[int, list[int]]:
    """Settle, refresh the audience (``bot.usage.adoption.AudienceRefresh``, at most hourly), close
    the windows due at ``now`` (default: the settler's clock). Returns (events settled, windows closed)."""
    settler = deps.once(settler_for)
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


def schedule(deps: Deps) -> None:
    """Every instance ticks at start, however late the loop gets to it, then every TICK_MINUTES; or
    say why it is off (no capabilities in the team policy)."""
    if not deps.policy.usage.capabilities:
        deps.scheduler.off[JOB] = "usage.capabilities is empty in the team policy"
        return
    keys, audience = deps.once(keys_for), AudienceRefresh(db=deps.db, policy=deps.policy, read=slack_read(deps.workspaces))
    deps.scheduler.add(Job(name=JOB, db=deps.db, work=None, occurrence_at=interval_slot(TICK_MINUTES),
                           each_instance=partial(tick, deps, keys, audience)),
                       interval_trigger(TICK_MINUTES), misfire_grace_seconds=None, at_start=True)
