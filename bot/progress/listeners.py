"""The wiring table of progress to reporters: the daily job of relayed updates (the started
notices ride on tracker deliveries: ``bot.closing.service`` hands those events to
``bot.progress.service``; ``/platform-feedback update`` is wired with the create-issue commands)."""

from functools import partial

from apscheduler.triggers.cron import CronTrigger

from bot.progress.jobs import JOB, send_updates
from bot.runtime.scheduler import Job


def register(app, deps) -> None:
    progress = deps.policy.issues.progress
    if not progress.updates:
        return
    hour = progress.update_hour
    deps.scheduler.add(
        Job(name=JOB, db=deps.db, work=partial(send_updates, policy=deps.policy), after=deps.sender.wake,
            occurrence_at=lambda now: now.replace(hour=hour, minute=0, second=0, microsecond=0)),
        CronTrigger(hour=hour, minute=0, timezone="UTC"),
    )
