"""The weekly "you said, we did" post (``closing.announce: weekly``): the scheduled job
``closing.changelog`` at the digest's slot (``insight.digest_weekday`` and ``digest_time`` in
``insight.timezone``), covering the 7 days before it; once per week across instances."""

from functools import partial

from apscheduler.triggers.cron import CronTrigger

from bot.changelog.service import JOB, latest_slot, queue_changelog
from bot.runtime.context import Deps
from bot.runtime.scheduler import Job


def schedule(deps: Deps) -> None:
    """Add the job to ``deps.scheduler``, or say why it is off."""
    policy, config = deps.policy, deps.policy.insight
    if policy.closing.announce != "weekly":
        deps.scheduler.off[JOB] = "closing.announce is not weekly in the team policy"
        return
    if not policy.closing.announce_channel:
        deps.scheduler.off[JOB] = "closing.announce_channel is not set in the team policy"
        return
    hour, minute = (int(x) for x in config.digest_time.split(":"))
    trigger = CronTrigger(day_of_week=config.digest_weekday, hour=hour, minute=minute, timezone=config.timezone)
    deps.scheduler.add(Job(
        name=JOB, db=deps.db, work=partial(queue_changelog, policy=policy), after=deps.sender.wake,
        occurrence_at=partial(latest_slot, weekday=config.digest_weekday, hhmm=config.digest_time, zone=config.timezone),
    ), trigger)
