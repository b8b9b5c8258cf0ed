"""Office hours' scheduled jobs: before each session its agenda goes to the session's channel and
the host on duty gets a DM; when it ends, a summary of what was covered and what rolls over.

One pair per configured session (``bot.runtime.scheduler``), named after it. A run claims its
occurrence (the session's start, UTC) and queues its messages in one transaction
(``bot.office_hours.service.queue_agenda``/``queue_summary``); the outbox sends them, with dedupe
keys derived from the occurrence.
"""

from datetime import timedelta
from functools import partial

from apscheduler.triggers.cron import CronTrigger

from bot.office_hours import service as oh
from bot.policy import OfficeHoursSession
from bot.runtime.context import Deps
from bot.runtime.scheduler import Job

EARLY_TOLERANCE = timedelta(seconds=60)  # a firing this early still counts for the coming occurrence


def _trigger(meeting: OfficeHoursSession, offset_minutes: int) -> CronTrigger:
    weekday, hour, minute = oh.cron_time(meeting, offset_minutes)
    return CronTrigger(day_of_week=weekday, hour=hour, minute=minute, timezone=meeting.timezone)


def _due(meeting: OfficeHoursSession, before: int, when: str):
    """The occurrence a firing at ``now`` stands for: the latest one whose ``when`` has come."""
    return lambda now: oh.latest(meeting, before, now + EARLY_TOLERANCE, when=when).start


def schedule(deps: Deps) -> None:
    """An agenda job and a summary job for each session in the team policy (none: no job)."""
    config = deps.policy.office_hours
    before = config.agenda_before_minutes
    for office_session in config.sessions:
        for kind, work, when, offset in (
            ("agenda", oh.queue_agenda, "agenda_at", -before),
            ("summary", oh.queue_summary, "end", office_session.minutes),
        ):
            job = Job(
                name=oh.job_name(kind, office_session),
                db=deps.db,
                work=partial(work, policy=deps.policy, office_session=office_session),
                occurrence_at=_due(office_session, before, when),
                after=deps.sender.wake,
                useful_until=oh.agenda_useful_until(office_session, before) if kind == "agenda" else None,
            )
            deps.scheduler.add(job, _trigger(office_session, offset))
