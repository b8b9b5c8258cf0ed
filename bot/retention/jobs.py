"""Retention: closed reports older than ``retention.friction_days`` are purged daily, once per day
however many instances run (a scheduled job, like every other)."""

from functools import partial

from apscheduler.triggers.cron import CronTrigger

from bot.retention.service import purge
from bot.runtime.context import Deps
from bot.runtime.scheduler import Job

JOB = "retention.purge"


def schedule(deps: Deps) -> None:
    """Add the daily purge to ``deps.scheduler``, or say why it is off (no retention set)."""
    days = deps.policy.retention.friction_days
    if not days:
        deps.scheduler.off[JOB] = "retention.friction_days is not set in the team policy"
        return
    deps.scheduler.add(
        Job(
            name=JOB,
            db=deps.db,
            work=partial(purge, days=days),
            occurrence_at=lambda now: now.replace(hour=3, minute=0, second=0, microsecond=0),
        ),
        CronTrigger(hour=3, minute=0, timezone="UTC"),
    )
