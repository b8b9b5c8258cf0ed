"""Office hours: when sessions happen, who hosts, what is on the agenda and what was covered.

Plain functions and queries; no Slack in here.

A session is a weekday and a wall-clock time in its own time zone. Its agenda goes out
``agenda_before_minutes`` earlier and it ends ``minutes`` later, both counted on the local clock as
APScheduler's ``CronTrigger`` counts them, then turned into UTC instants: 15:00 Europe/Berlin is
14:00 UTC in winter and 13:00 UTC in summer. A local time that does not exist (the hour skipped in
spring) is read with the offset before the change, one that happens twice (autumn) as the first.

The agenda lists the questions filed since the previous agenda went out (of any session, so no
question falls between two) and those still unanswered from earlier: what rolls over stays on it
until it is resolved, linked, declined or merged.
"""

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from bot.office_hours.blocks import build_agenda, build_host_dm, build_summary
from bot.policy import OfficeHours, OfficeHoursSession, Policy
from storage import outbox
from storage.models import ChangeAction, FrictionChange, FrictionKind, FrictionPoint, Status, as_utc

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ROTATION_EPOCH = date(2024, 1, 1)  # a Monday; the rotation counts weeks from here
UNANSWERED = (Status.new, Status.acknowledged)
COVERED = (Status.resolved, Status.linked)
COVERING_CHANGES = (ChangeAction.resolved, ChangeAction.linked)


@dataclass(frozen=True)
class Occurrence:
    session: OfficeHoursSession
    day: date  # the session's local date
    start: datetime  # UTC, like the other two
    agenda_at: datetime
    end: datetime

    @property
    def local_start(self) -> datetime:
        return self.start.astimezone(ZoneInfo(self.session.timezone))


# ------------------------------------------------------------------ when


def _instant(day: date, hhmm: str, zone: ZoneInfo, offset_minutes: int = 0) -> datetime:
    wall = datetime.combine(day, time.fromisoformat(hhmm)) + timedelta(minutes=offset_minutes)
    return wall.replace(tzinfo=zone).astimezone(timezone.utc)


def occurrence_on(session: OfficeHoursSession, day: date, before_minutes: int) -> Occurrence:
    zone = ZoneInfo(session.timezone)
    return Occurrence(
        session=session,
        day=day,
        start=_instant(day, session.time, zone),
        agenda_at=_instant(day, session.time, zone, -before_minutes),
        end=_instant(day, session.time, zone, session.minutes),
    )


def occurrence_starting(session: OfficeHoursSession, before_minutes: int, start: datetime) -> Occurrence:
    """The occurrence that starts at ``start``; ValueError if the session does not start then."""
    day = start.astimezone(ZoneInfo(session.timezone)).date()
    occ = occurrence_on(session, day, before_minutes)
    if occ.start != start or WEEKDAYS[day.weekday()] != session.weekday:
        raise ValueError(f"no {session.weekday} {session.time} {session.timezone} session starts at {start.isoformat()}")
    return occ


def agenda_useful_until(session: OfficeHoursSession, before_minutes: int):
    """For the scheduler's catch-up: an agenda (occurrence = the session's start, UTC) is worth
    posting late only until its session ends. Returns occurrence -> (end, reason)."""
    def until(start: datetime) -> tuple[datetime, str]:
        end = occurrence_starting(session, before_minutes, start).end
        return end, f"its session ended at {end.astimezone(ZoneInfo(session.timezone)).isoformat()}"
    return until


def _weekly(session: OfficeHoursSession, near: datetime, step: int) -> Iterator[date]:
    """The session's local dates, a week or more from ``near`` and walking in direction ``step``."""
    local = near.astimezone(ZoneInfo(session.timezone)).date()
    day = local + timedelta(days=(WEEKDAYS.index(session.weekday) - local.weekday()) % 7)
    day -= timedelta(weeks=step)
    while True:
        yield day
        day += timedelta(weeks=step)


def next_occurrences(session: OfficeHoursSession, before_minutes: int, after: datetime, count: int = 1) -> list[Occurrence]:
    """The next ``count`` occurrences that start after ``after``."""
    found: list[Occurrence] = []
    for day in _weekly(session, after, +1):
        occ = occurrence_on(session, day, before_minutes)
        if occ.start > after:
            found.append(occ)
            if len(found) == count:
                return found
    raise AssertionError("unreachable")


def latest(session: OfficeHoursSession, before_minutes: int, now: datetime, *, when: str) -> Occurrence:
    """The latest occurrence whose ``when`` ("agenda_at", "start" or "end") is at or before ``now``."""
    for day in _weekly(session, now, -1):
        occ = occurrence_on(session, day, before_minutes)
        if getattr(occ, when) <= now:
            return occ
    raise AssertionError("unreachable")


def previous_agenda_at(office_hours: OfficeHours, occ: Occurrence) -> datetime:
    """When the agenda before ``occ``'s went out, over all sessions: new questions are filed since."""
    just_before = occ.agenda_at - timedelta(microseconds=1)
    before = office_hours.agenda_before_minutes
    return max(latest(s, before, just_before, when="agenda_at").agenda_at for s in office_hours.sessions or [occ.session])


def cron_time(session: OfficeHoursSession, offset_minutes: int) -> tuple[str, int, int]:
    """(weekday, hour, minute) on the session's local clock, ``offset_minutes`` from its start."""
    monday = ROTATION_EPOCH
    wall = datetime.combine(monday + timedelta(days=WEEKDAYS.index(session.weekday)), time.fromisoformat(session.time))
    wall += timedelta(minutes=offset_minutes)
    return WEEKDAYS[wall.weekday()], wall.hour, wall.minute


# ------------------------------------------------------------------ who


def host_on_duty(office_hours: OfficeHours, occ: Occurrence) -> str | None:
    """Hosts take sessions in turn: each occurrence, in week order, goes to the next in the rotation."""
    if not office_hours.rotation:
        return None
    sessions = office_hours.sessions or [occ.session]
    order = sorted(sessions, key=lambda s: (WEEKDAYS.index(s.weekday), s.time))
    rank = order.index(occ.session) if occ.session in order else 0
    week = (occ.day - ROTATION_EPOCH).days // 7
    return office_hours.rotation[(week * len(sessions) + rank) % len(office_hours.rotation)]


# ------------------------------------------------------------------ what


@dataclass
class Agenda:
    new: list[FrictionPoint]  # filed since the previous agenda
    still_open: list[FrictionPoint]  # filed before it and still unanswered


@dataclass
class Summary:
    covered: list[FrictionPoint]  # resolved or linked since the agenda went out
    rolling_over: list[FrictionPoint]  # still unanswered: they stay on the next agenda


def _utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)  # SQLite compares the stored UTC text


def _questions():
    return (
        select(FrictionPoint)
        .where(FrictionPoint.kind == FrictionKind.question)
        .where(col(FrictionPoint.duplicate_of_id).is_(None))
        .order_by(col(FrictionPoint.created_at), col(FrictionPoint.id))
    )


def _unanswered_before(session: Session, until: datetime) -> list[FrictionPoint]:
    stmt = _questions().where(col(FrictionPoint.status).in_(UNANSWERED)).where(col(FrictionPoint.created_at) < _utc(until))
    return list(session.exec(stmt.limit(2000)).all())


def agenda(*, session: Session, since: datetime, until: datetime) -> Agenda:
    """Unanswered questions filed before ``until``: those since ``since`` are new."""
    points = _unanswered_before(session, until)
    return Agenda(
        new=[p for p in points if as_utc(p.created_at) >= since],
        still_open=[p for p in points if as_utc(p.created_at) < since],
    )


def summary(*, session: Session, since: datetime, until: datetime) -> Summary:
    """Questions resolved or linked since ``since``, and those filed before ``until`` still unanswered."""
    changed = select(FrictionChange.friction_point_id).where(col(FrictionChange.action).in_(COVERING_CHANGES)).where(
        col(FrictionChange.at) >= _utc(since)
    )
    covered = _questions().where(col(FrictionPoint.status).in_(COVERED)).where(col(FrictionPoint.id).in_(changed))
    return Summary(covered=list(session.exec(covered.limit(2000)).all()), rolling_over=_unanswered_before(session, until))


# ------------------------------------------------------------------ the jobs (each runs in a claimed occurrence)


def job_name(kind: str, session: OfficeHoursSession) -> str:
    """``office_hours.agenda:C0123:tue-15:00``; a hash if that would not fit ``ScheduledRun.job``."""
    name = f"office_hours.{kind}:{session.channel}:{session.weekday}-{session.time}"
    return name if len(name) <= 64 else f"office_hours.{kind}:" + hashlib.sha1(name.encode()).hexdigest()[:24]


def _dedupe(kind: str, session: OfficeHoursSession, occurrence: datetime, part: str) -> str:
    return f"{job_name(kind, session)}:{occurrence.isoformat()}:{part}"


def queue_agenda(*, session: Session, occurrence: datetime, policy: Policy, office_session: OfficeHoursSession) -> None:
    config = policy.office_hours
    occ = occurrence_starting(office_session, config.agenda_before_minutes, occurrence)
    items = agenda(session=session, since=previous_agenda_at(config, occ), until=occ.agenda_at)
    host = host_on_duty(config, occ)
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
    occ = occurrence_starting(office_session, config.agenda_before_minutes, occurrence)
    result = summary(session=session, since=occ.agenda_at, until=occ.end)
    post = build_summary(policy.reference_prefix, occ.local_start, host_on_duty(config, occ), result.covered, result.rolling_over)
    outbox.enqueue(
        session=session, dedupe_key=_dedupe("summary", office_session, occurrence, "post"),
        method="chat.postMessage", payload={"channel": office_session.channel, **post},
    )
