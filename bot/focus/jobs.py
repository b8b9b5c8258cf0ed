"""The quarter's focus' scheduled job: every TICK_MINUTES, keep the published announcement up to date
and post an ended period's report (``bot.focus.flows.tick``; once per slot across instances)."""

from functools import partial

from bot.focus import flows
from bot.runtime.context import Deps
from bot.runtime.scheduler import Job, interval_slot, interval_trigger

JOB = "focus.tick"
TICK_MINUTES = 15


def schedule(deps: Deps) -> None:
    """Add the job to ``deps.scheduler``, or say why it is off: without an announce channel nothing
    is published, so there is nothing to keep up or report."""
    if not deps.policy.closing.announce_channel:
        deps.scheduler.off[JOB] = "closing.announce_channel is not set in the team policy"
        return
    deps.scheduler.add(
        Job(name=JOB, db=deps.db, work=partial(flows.tick, policy=deps.policy),
            occurrence_at=interval_slot(TICK_MINUTES), after=deps.sender.wake),
        interval_trigger(TICK_MINUTES),
    )
