"""Closing the loop's scheduled jobs, declared without the Bolt app:

- ``closing.poll`` (policy ``closing.poll_minutes``): polls the trackers for teams whose trackers
  cannot send webhooks. What a poll finds goes through the same path as a webhook
  (``bot.closing.service.apply_and_queue``), so the two can run side by side. Its occurrences are
  the interval's slots counted from the epoch, so every bot instance agrees on them: the instance
  that claims a slot polls (after the claim commits: the HTTP calls sit outside any transaction),
  the others do nothing.
- ``closing.deliveries``, every minute while a tracker webhook secret is set: applies the
  deliveries a stopped process recorded but did not apply, with the one runner the webhook routes
  use (``deps.once(deliveries.runner_for)``).
"""

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx

from bot.closing import deliveries
from bot.closing.deliveries import RECOVERY_JOB
from bot.closing.service import apply_and_queue
from bot.runtime.context import Deps
from bot.runtime.scheduler import Job, interval_slot, interval_trigger
from bot.trackers import MODULES
from bot.trackers.polling import JOB, Poller, prune_runs

log = logging.getLogger(__name__)

POLL_JOB = JOB
EARLY_TOLERANCE = timedelta(seconds=5)  # a firing this early still counts for the coming slot
NO_CREDENTIALS = "GITHUB_TOKEN, GITLAB_TOKEN, JIRA_BASE_URL + JIRA_API_TOKEN, LINEAR_API_KEY"


def slot_at(minutes: int) -> Callable[[datetime], datetime]:
    """The slot a firing at ``now`` stands for: the start of its ``minutes`` interval."""
    return interval_slot(minutes, early=EARLY_TOLERANCE)


def make_poller(deps: Deps, *, http: httpx.AsyncClient | None = None, clock: Callable[[], float] = time.time) -> Poller:
    return Poller(settings=deps.settings, policy=deps.policy, db=deps.db, apply=apply_and_queue, http=http, clock=clock)


def schedule(deps: Deps) -> None:
    """Add the jobs to ``deps.scheduler``, or say why each is off."""
    schedule_poll(deps)
    schedule_recovery(deps)


def schedule_poll(deps: Deps) -> None:
    minutes = deps.policy.closing.poll_minutes
    if minutes <= 0:
        deps.scheduler.off[POLL_JOB] = "closing.poll_minutes is 0 in the team policy"
        return
    poller = make_poller(deps)
    if not poller.trackers:
        log.warning("closing.poll_minutes is %d but no tracker API credentials are set (%s): not polling", minutes, NO_CREDENTIALS)
        deps.scheduler.off[POLL_JOB] = f"no tracker API credentials are set ({NO_CREDENTIALS})"
        return
    job = Job(name=POLL_JOB, db=deps.db, work=prune_runs, occurrence_at=slot_at(minutes), after=deps.sender.wake, then=poller.run)
    deps.scheduler.add(job, interval_trigger(minutes), misfire_grace_seconds=minutes * 60)


def schedule_recovery(deps: Deps) -> None:
    if not any(getattr(deps.settings, m.SECRET_SETTING) for m in MODULES.values()):  # no webhooks, nothing to recover
        names = ", ".join(m.SECRET_SETTING.upper() for m in MODULES.values())
        deps.scheduler.off[RECOVERY_JOB] = f"no tracker webhook secret is set ({names})"
        return
    runner = deps.once(deliveries.runner_for)
    deps.scheduler.add(Job(name=RECOVERY_JOB, db=deps.db, work=deliveries.prune, then=runner.recover, occurrence_at=interval_slot(1)),
                       interval_trigger(1), misfire_grace_seconds=60)
