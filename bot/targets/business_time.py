"""Business time: the team's working days and hours in its time zone, less public holidays.

A response target such as "4 h" or "1 business day" counts only the minutes inside working hours.
Each day's opening and closing are local wall-clock times turned into instants with ``zoneinfo``,
so a working day is as long as its hours say on either side of a DST change (a 09:00–17:00 day is
8 h whether the clocks moved that night or not). Public holidays come from the ``holidays``
package (https://github.com/vacanza/holidays) by country and subdivision.
"""

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import cached_property
from zoneinfo import ZoneInfo

import holidays

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A target far beyond any calendar we could walk means the clock can never reach it (e.g. no working days).
_MAX_DAYS = 3 * 366


@dataclass(frozen=True)
class BusinessCalendar:
    """Working time in one time zone.

    ``working_days``: weekday names (``"mon"`` … ``"sun"``); ``opens``/``closes``: local times with
    ``opens < closes`` (``closes`` midnight: the end of the day); ``country``/``subdivision``: a ``holidays`` country code (ISO 3166-1 alpha-2)
    and optional subdivision; ``closed_dates``: extra local dates with no working hours.
    """

    timezone: str = "UTC"
    working_days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    opens: time = time(9, 0)
    closes: time = time(17, 0)
    country: str | None = None
    subdivision: str | None = None
    closed_dates: frozenset[date] = field(default_factory=frozenset)

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def _public_holidays(self) -> holidays.HolidayBase | dict:
        if not self.country:
            return {}
        return holidays.country_holidays(self.country, subdiv=self.subdivision)

    @cached_property
    def _weekdays(self) -> frozenset[int]:
        return frozenset(WEEKDAYS.index(d) for d in self.working_days)

    @property
    def day_length(self) -> timedelta:
        """The length of one working day's hours (what "1 business day" means)."""
        return self._closing(date.min) - datetime.combine(date.min, self.opens)

    def _closing(self, day: date, tz=None) -> datetime:
        if self.closes == time(0, 0):
            return datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=tz)
        return datetime.combine(day, self.closes, tzinfo=tz)

    def is_working_day(self, day: date) -> bool:
        return day.weekday() in self._weekdays and day not in self.closed_dates and day not in self._public_holidays

    @cached_property
    def _days(self) -> dict[date, tuple[datetime, datetime] | None]:
        return {}  # day -> its working window (UTC), None when closed; filled as asked

    def _day(self, day: date) -> tuple[datetime, datetime] | None:
        if day not in self._days:
            self._days[day] = self._window(day) if self.is_working_day(day) else None
        return self._days[day]

    def _window(self, day: date) -> tuple[datetime, datetime]:
        opens = datetime.combine(day, self.opens, tzinfo=self.zone).astimezone(timezone.utc)
        closes = self._closing(day, self.zone).astimezone(timezone.utc)
        return opens, closes

    @cached_property
    def _sums(self) -> tuple[threading.Lock, dict]:
        return threading.Lock(), {"base": None, "before": []}  # before[i]: business time in [base, base + i days)

    def _since_base(self, at: datetime) -> tuple[date, timedelta]:
        """Business time from the start of a fixed local day (``base``) to ``at``: a running sum
        per day, extended as asked, so ``elapsed`` over months costs two look-ups, not a walk."""
        day = at.astimezone(self.zone).date()
        lock, sums = self._sums
        with lock:
            if sums["base"] is None or day < sums["base"]:
                sums["base"], sums["before"] = day - timedelta(days=400), [timedelta()]
            base, before = sums["base"], sums["before"]
            while len(before) <= (day - base).days:
                window = self._day(base + timedelta(days=len(before) - 1))
                before.append(before[-1] + (window[1] - window[0] if window else timedelta()))
            total = before[(day - base).days]
        window = self._day(day)
        if window:
            total += max(timedelta(), min(at, window[1]) - window[0])
        return base, total

    def windows(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Working intervals (UTC) from the local day of ``start`` on, in order, for at most about
        three years; the first may begin before ``start``."""
        day = start.astimezone(self.zone).date()
        for offset in range(_MAX_DAYS):
            window = self._day(day + timedelta(days=offset))
            if window:
                yield window

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Business time between two instants (zero if ``end <= start``)."""
        if end <= start:
            return timedelta()
        while True:
            base, upto_start = self._since_base(start)  # the earlier day first: it may move the base back
            base_end, upto_end = self._since_base(end)
            if base_end == base:  # else another thread moved the base back in between: again
                return upto_end - upto_start

    def add(self, start: datetime, amount: timedelta) -> datetime | None:
        """The instant at which ``amount`` of business time has passed since ``start``; None when
        the calendar has no working time within about three years (e.g. no working days)."""
        left = amount
        for opens, closes in self.windows(start):
            begin = max(opens, start)
            if begin >= closes:
                continue
            if begin + left <= closes:
                return begin + left
            left -= closes - begin
        return None

