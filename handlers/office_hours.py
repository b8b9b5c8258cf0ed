"""Office hours in Slack: before each session its agenda goes to the session's channel and the host
on duty gets a DM; when it ends, a summary of what was covered and what rolls over.

Both are scheduled jobs (``bot.runtime.scheduler``), one pair per configured session, named after it. A
run claims its occurrence (the session's start, UTC) and queues its messages in one transaction;
the outbox sends them, with dedupe keys derived from the occurrence.
"""

import hashlib
from datetime import datetime, timedelta
from functools import partial

from apscheduler.triggers.cron import CronTrigger
from slack_bolt.async_app import AsyncApp
from sqlmodel import Session

from bot.operations import office_hours as oh
from bot.blocks.office_hours import build_agenda, build_host_dm, build_summary
from bot.runtime.config import OfficeHoursSession, Policy
from bot.runtime.context import Deps
from bot.runtime.scheduler import Job
from storage import outbox

EARLY_TOLERANCE = timedelta(seconds=60)  # a firing this early still counts for the coming occurrence


def job_name(kind: str, session: OfficeHoursSession) -> str:
    """``office_hours.agenda:C0123:tue-15:00``; a hash if that would not fit ``ScheduledRun.job``."""
    name = f"office_hours.{kind}:{session.channel}:{session.weekday}-{session.time}"
    return name if len(name) <= 64 else f"office_hours.{kind}:" + hashlib.sha1(name.encode()).hexdigest()[:24]


def _dedupe(kind: str, session: OfficeHoursSession, occurrence: datetime, part: str) -> str:
    return f"{job_name(kind, session)}:{occurrence.isoformat()}:{part}"


# ------------------------------------------------------------------ transactions (run in a claimed job)


def queue_agenda(*, session: Session, occurrence: datetime, policy: Policy, office_session: OfficeHoursSession) -> None:
    config = policy.office_hours
    occ = oh.occurrence_starting(office_session, config.agenda_before_minutes, occurrence)
    items = oh.agenda(session=session, since=oh.previous_agenda_at(config, occ), until=occ.agenda_at)
    host = oh.host_on_duty(config, occ)
    prefix = policy.reference_prefix
    post = build_agenda(prefix, occ.local_start, office_session.minutes, host, items.new, items.still_open)
    outbox.enqueue(
        session=session, dedupe_key=_dedupe("agenda", office_session, occurrence, "post"),
        method="chat.postMessage", payload={"channel": office_session.channel, **post},
    )
    if host:
        dm = build_host_dm(prefix, occ.local_start, office_session.channel, items.new, items.still_open)
        outbox.enqueue(
            session=session, dedupe_key=_dedupe("agenda", office_session, occurrence, f"host:{host}"),
            method="chat.postMessage", payload={"channel": host, **dm},
        )


def queue_summary(*, session: Session, occurrence: datetime, policy: Policy, office_session: OfficeHoursSession) -> None:
    config = policy.office_hours
    occ = oh.occurrence_starting(office_session, config.agenda_before_minutes, occurrence)
    result = oh.summary(session=session, since=occ.agenda_at, until=occ.end)
    post = build_summary(policy.reference_prefix, occ.local_start, oh.host_on_duty(config, occ), result.covered, result.rolling_over)
    outbox.enqueue(
        session=session, dedupe_key=_dedupe("summary", office_session, occurrence, "post"),
        method="chat.postMessage", payload={"channel": office_session.channel, **post},
    )


# ------------------------------------------------------------------ schedule


def _trigger(session: OfficeHoursSession, offset_minutes: int) -> CronTrigger:
    weekday, hour, minute = oh.cron_time(session, offset_minutes)
    return CronTrigger(day_of_week=weekday, hour=hour, minute=minute, timezone=session.timezone)


def _due(session: OfficeHoursSession, before: int, when: str):
    """The occurrence a firing at ``now`` stands for: the latest one whose ``when`` has come."""
    return lambda now: oh.latest(session, before, now + EARLY_TOLERANCE, when=when).start


def register(app: AsyncApp, deps: Deps) -> None:
    config = deps.policy.office_hours
    before = config.agenda_before_minutes
    for office_session in config.sessions:
        for kind, work, when, offset in (
            ("agenda", queue_agenda, "agenda_at", -before),
            ("summary", queue_summary, "end", office_session.minutes),
        ):
            job = Job(
                name=job_name(kind, office_session),
                db=deps.db,
                work=partial(work, policy=deps.policy, office_session=office_session),
                occurrence_at=_due(office_session, before, when),
                after=deps.sender.wake,
                useful_until=oh.agenda_useful_until(office_session, before) if kind == "agenda" else None,
            )
            deps.scheduler.add(job, _trigger(office_session, offset))
