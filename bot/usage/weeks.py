"""The week usage is counted in: Monday 00:00 UTC of the ISO week (adoption's rows, the moment-of-use
CSAT's answer windows). Apart from both so that neither imports the other for it."""

from datetime import datetime, time, timedelta, timezone


def week_start(at: datetime) -> datetime:
    """Monday 00:00 UTC of ``at``'s ISO week."""
    day = at.astimezone(timezone.utc).date()
    return datetime.combine(day - timedelta(days=day.weekday()), time(0), tzinfo=timezone.utc)
