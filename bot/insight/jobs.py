"""Friction insight's scheduled job: the weekly digest (``insight.digest``, weekly at
``insight.digest_weekday`` and ``digest_time`` in ``insight.timezone``). A run claims its occurrence
and, in the same transaction, queues the digest post and its chart (``files.uploadV2`` through the
outbox, a base64 PNG), both with dedupe keys derived from the occurrence: one digest per week,
however many instances run (``bot.insight.digest``)."""

from datetime import datetime, timedelta, timezone
from functools import partial

from apscheduler.triggers.cron import CronTrigger

from bot.insight.digest import JOB, queue_digest
from bot.policy import Insight
from bot.runtime.context import Deps
from bot.runtime.scheduler import Job

EARLY_TOLERANCE = timedelta(seconds=60)  # a firing this early still counts for the coming occurrence


def digest_trigger(config: Insight) -> CronTrigger:
    hour, minute = (int(x) for x in config.digest_time.split(":"))
    return CronTrigger(day_of_week=config.digest_weekday, hour=hour, minute=minute, timezone=config.timezone)


def latest_occurrence(trigger: CronTrigger, now: datetime) -> datetime:
    """The latest time ``trigger`` fires at or before ``now`` (plus a little tolerance), in UTC:
    the occurrence a firing at ``now`` stands for. Asks the trigger itself, so daylight-saving
    changes fall where APScheduler puts them."""
    now = now + EARLY_TOLERANCE
    at = trigger.get_next_fire_time(None, now - timedelta(days=8))
    latest = at
    while at is not None and at <= now:
        latest, at = at, trigger.get_next_fire_time(at, at + timedelta(seconds=1))
    return latest.astimezone(timezone.utc)


def schedule(deps: Deps) -> None:
    """Add the weekly digest to ``deps.scheduler``, or say why it is off (no digest channel)."""
    config = deps.policy.insight
    if not config.digest_channel:
        deps.scheduler.off[JOB] = "insight.digest_channel is not set in the team policy"
        return
    trigger = digest_trigger(config)
    job = Job(
        name=JOB, db=deps.db, work=partial(queue_digest, policy=deps.policy),
        occurrence_at=partial(latest_occurrence, trigger), after=deps.sender.wake,
    )
    deps.scheduler.add(job, trigger)
