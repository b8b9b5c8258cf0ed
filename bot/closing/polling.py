"""Polling the trackers on a schedule (policy ``closing.poll_minutes``), for teams whose trackers
cannot send webhooks. What a poll finds goes through the same path as a webhook
(``bot.closing.service.apply_and_queue``), so the two can run side by side.

One scheduled job, ``closing.poll``. Its occurrences are the interval's slots counted from the
epoch, so every bot instance agrees on them: the instance that claims a slot polls (after the
claim commits: the HTTP calls sit outside any transaction), the others do nothing.
"""

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
from slack_bolt.async_app import AsyncApp

from bot.closing.service import apply_and_queue
from bot.runtime.context import Deps
from bot.runtime.scheduler import Job, interval_slot, interval_trigger
from bot.trackers.polling import JOB, Poller, prune_runs

log = logging.getLogger(__name__)

EARLY_TOLERANCE = timedelta(seconds=5)  # a firing this early still counts for the coming slot


def slot_at(minutes: int) -> Callable[[datetime], datetime]:
    """The slot a firing at ``now`` stands for: the start of its ``minutes`` interval."""
    return interval_slot(minutes, early=EARLY_TOLERANCE)


def make_poller(deps: Deps, *, http: httpx.AsyncClient | None = None, clock: Callable[[], float] = time.time) -> Poller:
    return Poller(settings=deps.settings, policy=deps.policy, db=deps.db, apply=apply_and_queue, http=http, clock=clock)


def register(app: AsyncApp, deps: Deps) -> None:
    minutes = deps.policy.closing.poll_minutes
    if minutes <= 0:
        deps.scheduler.off[JOB] = "closing.poll_minutes is 0 in the team policy"
        return
    poller = make_poller(deps)
    if not poller.trackers:
        log.warning("closing.poll_minutes is %d but no tracker API credentials are set "
                    "(GITHUB_TOKEN, GITLAB_TOKEN, JIRA_BASE_URL + JIRA_API_TOKEN, LINEAR_API_KEY): not polling", minutes)
        deps.scheduler.off[JOB] = ("no tracker API credentials are set "
                                   "(GITHUB_TOKEN, GITLAB_TOKEN, JIRA_BASE_URL + JIRA_API_TOKEN, LINEAR_API_KEY)")
        return
    job = Job(name=JOB, db=deps.db, work=prune_runs, occurrence_at=slot_at(minutes), after=deps.sender.wake, then=poller.run)
    deps.scheduler.add(job, interval_trigger(minutes),
                       misfire_grace_seconds=minutes * 60)
