"""Polling the trackers on a schedule (policy ``closing.poll_minutes``), for teams whose trackers
cannot send webhooks. What a poll finds goes through the same path as a webhook
(``handlers.closing.apply_and_queue``), so the two can run side by side.

One scheduled job, ``closing.poll``. Its occurrences are the interval's slots counted from the
epoch, so every bot instance agrees on them: the instance that claims a slot polls (after the
claim commits: the HTTP calls sit outside any transaction), the others do nothing.
"""

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import httpx
from apscheduler.triggers.interval import IntervalTrigger
from slack_bolt.async_app import AsyncApp
from sqlalchemy import delete
from sqlmodel import Session, col

from bot.runtime.context import Deps
from bot.trackers.polling import Poller
from bot.runtime.scheduler import Job
from handlers.closing import apply_and_queue
from storage.models import ScheduledRun

log = logging.getLogger(__name__)

JOB = "closing.poll"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
EARLY_TOLERANCE = timedelta(seconds=5)  # a firing this early still counts for the coming slot
KEEP_RUNS = timedelta(days=2)  # claims of past polls are pruned after this


def slot_at(minutes: int) -> Callable[[datetime], datetime]:
    """The slot a firing at ``now`` stands for: the start of its ``minutes`` interval."""
    period = timedelta(minutes=minutes)
    return lambda now: EPOCH + ((now + EARLY_TOLERANCE - EPOCH) // period) * period


def prune_runs(*, session: Session, occurrence: datetime) -> None:
    """Runs in the claim's transaction: a poll every few minutes would otherwise pile up claims."""
    session.exec(delete(ScheduledRun).where(ScheduledRun.job == JOB, col(ScheduledRun.occurrence) < occurrence - KEEP_RUNS))


def make_poller(deps: Deps, *, http: httpx.AsyncClient | None = None, clock: Callable[[], float] = time.time) -> Poller:
    return Poller(settings=deps.settings, policy=deps.policy, db=deps.db, apply=apply_and_queue, http=http, clock=clock)


def register(app: AsyncApp, deps: Deps) -> None:
    minutes = deps.policy.closing.poll_minutes
    if minutes <= 0:
        return
    poller = make_poller(deps)
    if not poller.trackers:
        log.warning("closing.poll_minutes is %d but no tracker API credentials are set "
                    "(GITHUB_TOKEN, GITLAB_TOKEN, JIRA_BASE_URL + JIRA_API_TOKEN, LINEAR_API_KEY): not polling", minutes)
        return
    job = Job(name=JOB, db=deps.db, work=prune_runs, occurrence_at=slot_at(minutes), after=deps.sender.wake, then=poller.run)
    deps.scheduler.add(job, IntervalTrigger(minutes=minutes, start_date=EPOCH, timezone=timezone.utc),
                       misfire_grace_seconds=minutes * 60)
