"""Cron expressions as people write them, for APScheduler 3.

APScheduler's ``CronTrigger.from_crontab`` passes the weekday field through as its own, where 0 is
Monday; in cron (crontab(5)) 0 and 7 are Sunday and 1 is Monday. So ``0 10 * * 1`` ("Mondays at
10") fired on Tuesdays, and ``*/2`` on other days than cron's. ``trigger`` reads the weekday field
the cron way: numbers, ranges, lists and steps become APScheduler's day names; names (``mon-fri``)
and ``*`` are the same in both and pass through.
"""

from apscheduler.triggers.cron import CronTrigger

NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # cron's 0..6 (7 is Sunday again)


def weekday_field(field: str) -> str:
    """The cron weekday field ``field`` in APScheduler's terms. Raises ValueError for a number out of
    0-7 or a malformed item."""
    if field == "*" or not any(c.isdigit() for c in field):
        return field
    days: set[int] = set()
    for item in field.split(","):
        part, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"weekday step {step_text!r} must be 1 or more")
        if part == "*":
            first, last = 0, 6
        elif "-" in part:
            a, b = part.split("-", 1)
            first, last = int(a), int(b)
        else:
            first = last = int(part)
            if step_text:  # "1/2": from 1 to the end of the week
                last = 6
        if not (0 <= first <= 7 and 0 <= last <= 7) or first > last:
            raise ValueError(f"weekday {part!r} must be 0-7 (0 and 7 are Sunday), low to high")
        days.update(d % 7 for d in range(first, last + 1, step))
    return ",".join(NAMES[d] for d in sorted(days))


def trigger(expression: str, timezone=None) -> CronTrigger:
    """A CronTrigger for a 5-field crontab ``expression`` (minute hour day month weekday), weekdays the
    cron way. Raises ValueError as ``CronTrigger.from_crontab`` does for a wrong field count."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"wrong number of fields; got {len(fields)}, expected 5")
    minute, hour, day, month, weekday = fields
    return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=weekday_field(weekday), timezone=timezone)
