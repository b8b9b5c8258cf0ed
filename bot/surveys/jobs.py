"""Pulse surveys' scheduled jobs: each scheduled survey's start (a claimed job per survey, once per
occurrence across instances) and ``surveys.tick`` (every TICK_MINUTES on every instance: resume
runs left resolving, queue due reminders, close runs whose time is up)."""

from datetime import datetime
from functools import partial

from apscheduler.triggers.cron import CronTrigger

from bot.runtime.context import Deps
from bot.runtime.scheduler import Job, interval_slot, interval_trigger
from bot.surveys.runner import TICK_MINUTES
from bot.surveys.runs import job_name, start_scheduled
from bot.surveys.slack_reads import runner_for
from bot.surveys.timing import latest_fire, trigger_for

TICK = "surveys.tick"


def _occurrence(trigger: CronTrigger, now: datetime) -> datetime:
    """Which start a firing at ``now`` stands for: the schedule's latest (``now`` if none within the horizon)."""
    return latest_fire(trigger, now) or now


def schedule(deps: Deps) -> None:
    """Add the jobs to ``deps.scheduler``, or say why the tick is off (no surveys in the team policy)."""
    policy = deps.policy
    runner = deps.once(runner_for)
    for survey in policy.surveys:
        if survey.schedule:
            trigger = trigger_for(survey)
            job = Job(
                name=job_name(survey),
                db=deps.db,
                work=partial(start_scheduled, keys=runner.keys, survey=survey, policy=policy),
                occurrence_at=partial(_occurrence, trigger),
                after=runner.kick,
            )
            deps.scheduler.add(job, trigger)
    if policy.surveys:
        # Not a claimed job: everything a tick does is safe to repeat and to run from several instances.
        # Due at start, however late the loaded host gets to it (issue #26, 13), then every TICK_MINUTES.
        deps.scheduler.add(Job(name=TICK, db=deps.db, work=None, occurrence_at=interval_slot(TICK_MINUTES), each_instance=runner.tick),
                           interval_trigger(TICK_MINUTES), misfire_grace_seconds=None, at_start=True)
    else:
        deps.scheduler.off[TICK] = "the team policy has no surveys"
