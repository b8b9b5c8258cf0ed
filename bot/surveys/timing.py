"""When survey messages go: each person's delivery hour, reminders, the close, and the cron
occurrence of a scheduled run. Every "N days later at the same hour" is counted in local days of
the relevant time zone (``zoneinfo``), then localised: a day across a DST change is 23 or 25 hours."""

import math
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from bot import cron
from bot.policy import Survey

UTC = timezone.utc
MIN_GAP = timedelta(hours=12)  # between two messages to one person about one run
MAX_REMINDERS = 2
EARLY_TOLERANCE = timedelta(seconds=60)  # a cron firing this early still counts for its occurrence



def zone(name: str | None, fallback: str = "UTC") -> ZoneInfo:
    for candidate in (name, fallback, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def delivery_time(start: datetime, tz: str | None, hour: int, *, fallback: str = "UTC") -> datetime:
    """The first ``hour``:00 in the person's own time zone at or after ``start`` (UTC)."""
    local_zone = zone(tz, fallback)
    local = start.astimezone(local_zone)
    day: date = local.date()
    for _ in range(3):
        candidate = datetime.combine(day, time(hour), tzinfo=local_zone)
        # A time in a DST gap (fold 0) reads as the offset before the change: it lands an hour later.
        if candidate.astimezone(UTC) >= start:
            return candidate.astimezone(UTC)
        day += timedelta(days=1)
    return start


def days_later(moment: datetime, days: int, tz: str | None, *, fallback: str = "UTC") -> datetime:
    """The same local wall-clock time ``days`` calendar days after ``moment`` (UTC in, UTC out), in
    time zone ``tz`` (IANA name; ``fallback``, then UTC, if unknown): across a DST change that is
    23 or 25 hours, not 24 x ``days``. A wall time that does not exist that day (the spring-forward
    gap) reads with the offset before the change, so it lands an hour later; one that occurs twice
    (fall back) is the first of the two (``fold=0``, PEP 495)."""
    local_zone = zone(tz, fallback)
    local = moment.astimezone(local_zone)
    target = datetime.combine(local.date() + timedelta(days=days), local.time().replace(tzinfo=None, fold=0), tzinfo=local_zone)
    return target.astimezone(UTC)


def closing_time(start: datetime, survey: Survey) -> datetime:
    """When a run started at ``start`` (UTC) closes: ``close_after_days`` later at the same local
    time in the survey's time zone."""
    return days_later(start, survey.close_after_days, survey.timezone)


def reminder_times(
    deliver_at: datetime, closes_at: datetime, *, remind_after_days: int, remind_before_close: bool, tz: str | None = "UTC"
) -> list[datetime]:
    """When a non-responder is reminded (UTC): ``remind_after_days`` calendar days after their DM,
    and once more on the last day before the run closes, each at the DM's local time in ``tz``
    (the person's time zone). Never more than two, never within 12 hours of each other, of the
    DM, or of the close."""
    times: list[datetime] = []
    latest = closes_at - MIN_GAP
    if remind_after_days:
        first = days_later(deliver_at, remind_after_days, tz)
        if first <= latest:
            times.append(first)
    if remind_before_close:
        # The most calendar days that still fit; elapsed days are a first guess (a DST change moves it by at most one).
        days = math.floor((latest - deliver_at) / timedelta(days=1)) + 1
        while days >= 1 and days_later(deliver_at, days, tz) > latest:
            days -= 1
        last = days_later(deliver_at, days, tz)
        if days >= 1 and all(abs(last - t) >= MIN_GAP for t in times):
            times.append(last)
    return sorted(times)[:MAX_REMINDERS]


def due_reminder(times: list[datetime], sent: int, now: datetime) -> int | None:
    """Which reminder (1-based) to send now, given ``sent`` already; None if none is due. After a
    long outage only the latest due one goes: a person never gets two at once."""
    due = [i for i, t in enumerate(times) if t <= now]
    if not due or due[-1] < sent:
        return None
    return due[-1] + 1


def trigger_for(survey: Survey) -> CronTrigger:
    """The survey's schedule, weekdays read the cron way (``bot.cron``)."""
    assert survey.schedule, survey.name  # only a scheduled survey has a trigger
    return cron.trigger(survey.schedule, timezone=survey.timezone)


def latest_fire(trigger: CronTrigger, now: datetime, *, horizon_days: int = 400) -> datetime | None:
    """The latest time ``trigger`` fired at or before ``now`` (within a minute's tolerance)."""
    fire = trigger.get_next_fire_time(None, now - timedelta(days=horizon_days))
    last = None
    while fire is not None and fire <= now + EARLY_TOLERANCE:
        last = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return last.astimezone(UTC) if last else None


def next_fire(survey: Survey, now: datetime) -> datetime | None:
    if not survey.schedule:
        return None
    return trigger_for(survey).get_next_fire_time(None, now)
