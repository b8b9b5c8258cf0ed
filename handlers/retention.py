"""Retention: closed reports older than ``retention.friction_days`` are purged daily, once per day
however many instances run (a scheduled job, like every other)."""

import logging
from datetime import datetime, timedelta

from apscheduler.triggers.cron import CronTrigger
from slack_bolt.async_app import AsyncApp
from sqlmodel import Session

from bot.runtime.context import Deps
from bot.runtime.scheduler import Job
from storage.privacy import purge_older_than

log = logging.getLogger(__name__)
JOB = "retention.purge"


def purge(*, session: Session, occurrence: datetime, days: int) -> None:
    count = purge_older_than(session=session, cutoff=occurrence - timedelta(days=days))
    log.info("retention: purged %d closed reports older than %d days", count, days)


def register(app: AsyncApp, deps: Deps) -> None:
    days = deps.policy.retention.friction_days
    if not days:
        return
    deps.scheduler.add(
        Job(
            name=JOB,
            db=deps.db,
            work=lambda *, session, occurrence: purge(session=session, occurrence=occurrence, days=days),
            occurrence_at=lambda now: now.replace(hour=3, minute=0, second=0, microsecond=0),
        ),
        CronTrigger(hour=3, minute=0, timezone="UTC"),
    )
