"""Response targets' scheduled job: every TICK_MINUTES, queue the warnings and breaches now due
(``bot.targets.alerts.check_job``; once per slot across instances)."""

from functools import partial

from bot.runtime.context import Deps
from bot.runtime.scheduler import Job, interval_slot, interval_trigger
from bot.targets import alerts

JOB = "targets.check"
TICK_MINUTES = 5


def schedule(deps: Deps) -> None:
    """Add the job to ``deps.scheduler``, or say why it is off (no targets in the team policy)."""
    if not deps.policy.targets.enabled:
        deps.scheduler.off[JOB] = "the team policy sets no response targets"
        return
    deps.scheduler.add(
        Job(name=JOB, db=deps.db, work=partial(alerts.check_job, policy=deps.policy), occurrence_at=interval_slot(TICK_MINUTES),
            after=deps.sender.wake),
        interval_trigger(TICK_MINUTES),
    )
