"""Response targets: when a report's first response and its resolution are due, in business time.

A clock starts when a report is filed (the resolution clock again when it is reopened), stops at
the first host action or reply (first response) or at resolve/decline (resolution), and is paused
while the team waits for the reporter. The target is the report's current severity's, so a
severity change moves the due time. No Slack and no database here: callers pass what happened.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum

from bot.policy import DURATION, Targets
from bot.targets.business_time import BusinessCalendar
from storage.models import CLOSED, ChangeAction, FrictionChange, as_utc


class ClockKind(StrEnum):
    first_response = "first_response"
    resolution = "resolution"


class Threshold(StrEnum):
    warning = "warning"
    breach = "breach"


@dataclass(frozen=True)
class Clock:
    """What happened to one clock. ``pauses``: (start, end) with ``end`` None while still paused;
    in order, not overlapping. ``stopped_at`` None: still running (or paused)."""

    kind: ClockKind
    started_at: datetime
    stopped_at: datetime | None = None
    pauses: tuple[tuple[datetime, datetime | None], ...] = ()


@dataclass(frozen=True)
class ClockState:
    kind: ClockKind
    target: timedelta  # business time allowed
    used: timedelta  # business time counted so far (until ``now`` or the stop)
    due_at: datetime | None  # when the target is (or was) reached; None while paused or when met
    warn_at: datetime | None  # when ``warn_share`` of it is (or was) reached; same rules
    stopped: bool
    paused: bool

    @property
    def met(self) -> bool | None:
        """True/False once stopped; None while the clock runs."""
        return self.used <= self.target if self.stopped else None

    def breached(self, now: datetime) -> bool:
        return self.used > self.target if self.stopped else self.due_at is not None and self.due_at <= now

    def passed(self, threshold: Threshold, now: datetime) -> bool:
        """Whether ``threshold`` has been reached by ``now`` on a clock that still runs."""
        at = self.due_at if threshold is Threshold.breach else self.warn_at
        return not self.stopped and at is not None and at <= now


def _running(clock: Clock, now: datetime) -> list[tuple[datetime, datetime | None]]:
    """The intervals the clock ran: [start, stop) less the pauses; the last end None if it runs on."""
    end = clock.stopped_at
    out: list[tuple[datetime, datetime | None]] = []
    cursor: datetime | None = clock.started_at
    for p_start, p_end in clock.pauses:
        if cursor is None or (end is not None and p_start >= end):
            break
        if p_start > cursor:
            out.append((cursor, p_start))
        cursor = None if p_end is None else max(cursor, p_end)
    if cursor is not None and (end is None or cursor < end):
        out.append((cursor, end))
    return out


def _reach(calendar: BusinessCalendar, running: list[tuple[datetime, datetime | None]], amount: timedelta) -> datetime | None:
    """The instant at which the running intervals add up to ``amount`` of business time; None if
    they never do (stopped or paused before)."""
    counted = timedelta()
    for start, end in running:
        if end is None:
            return calendar.add(start, amount - counted)
        piece = calendar.elapsed(start, end)
        if counted + piece >= amount:
            return calendar.add(start, amount - counted)
        counted += piece
    return None


def clock_state(calendar: BusinessCalendar, clock: Clock, target: timedelta, now: datetime, *, warn_share: float = 0.75) -> ClockState:
    """Where ``clock`` stands at ``now`` against ``target`` (business time). ``warn_share``: the
    share of the target (0 < x < 1) at which the warning falls due."""
    running = _running(clock, now)
    used = sum((calendar.elapsed(a, b if b is not None else now) for a, b in running), timedelta())
    stopped = clock.stopped_at is not None and clock.stopped_at <= now
    paused = not stopped and bool(clock.pauses) and clock.pauses[-1][1] is None
    due_at = warn_at = None
    if not paused:
        due_at = _reach(calendar, running, target)
        warn_at = _reach(calendar, running, target * warn_share)
    return ClockState(clock.kind, target, used, due_at, warn_at, stopped, paused)


def describe(state: ClockState, now: datetime) -> str:
    """One line for a card: "first response due in 2 h 10 m", "resolution overdue by 1 d 3 h",
    "first response paused (waiting for the reporter)", "resolution met". Durations are wall-clock
    from ``now``."""
    label = "first response" if state.kind is ClockKind.first_response else "resolution"
    if state.stopped:
        return f"{label} {'met' if state.met else 'missed'}"
    if state.paused:
        return f"{label} paused (waiting for the reporter)"
    if state.due_at is None:
        return f"{label}: no working time left in the calendar"
    if state.due_at > now:
        return f"{label} due in {human(state.due_at - now)}"
    return f"{label} overdue by {human(now - state.due_at)}"


def human(delta: timedelta) -> str:
    """``2 d 3 h``, ``2 h 10 m``, ``5 m``: the two largest units, at least one minute."""
    minutes = max(1, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (mins, "m")]
    shown = [f"{n} {u}" for n, u in parts if n][:2]
    return " ".join(shown)


_calendars: dict[int, tuple[Targets, BusinessCalendar]] = {}


def calendar_for(targets: Targets) -> BusinessCalendar:
    """The business calendar the policy's ``targets`` section describes: one per policy, kept, so
    its holidays, day windows and running sums are worked out once, not once per report."""
    found = _calendars.get(id(targets))
    if found is None or found[0] is not targets:
        if len(_calendars) > 16:  # policies are few and long-lived; tests make many
            _calendars.clear()
        found = _calendars[id(targets)] = (targets, _calendar(targets))
    return found[1]


def _calendar(targets: Targets) -> BusinessCalendar:
    start, end = targets.hours.split("-")
    return BusinessCalendar(
        timezone=targets.timezone,
        working_days=tuple(targets.working_days),
        opens=_clock_time(start),
        closes=_clock_time(end),
        country=targets.holidays_country,
        subdivision=targets.holidays_subdivision,
        closed_dates=frozenset(targets.closed_dates),
    )


def _clock_time(hhmm: str) -> time:
    hours, minutes = (int(x) for x in hhmm.split(":"))
    return time(0, 0) if hours == 24 else time(hours, minutes)  # 24:00: the end of the day


def parse_duration(text: str, day: timedelta) -> timedelta:
    """``"1d 4h"`` as business time: a day is ``day`` (one working day's hours)."""
    m = DURATION.match(text)
    if not m:
        raise ValueError(f"not a duration: {text!r}")
    days, hours, minutes = (int(g or 0) for g in m.groups())
    return day * days + timedelta(hours=hours, minutes=minutes)


def target_for(targets: Targets, severity: str, kind: ClockKind, calendar: BusinessCalendar) -> timedelta | None:
    """The business time a report of ``severity`` has for ``kind``; None: no target."""
    per = next((t for name, t in targets.severities.items() if name == severity), None)  # any string: unknown has no target
    text = getattr(per, kind.value, None) if per else None
    return parse_duration(text, calendar.day_length) if text else None


# ------------------------------------------------------------------ the clocks' history

WAITING, ANSWERED, REOPENED = ChangeAction.waiting, ChangeAction.answered, ChangeAction.reopened
STILL_BROKEN = ChangeAction.still_broken  # a reporter's "still broken" on a closure: a reopen when it was closed
# What ends a report's cycle: it is closed (resolve, decline, a tracker closure) or merged into
# another. What belongs to the cycle ends with it: a pause, a question waiting for the reporter.
# A reopen starts a fresh cycle, with nothing waiting.
CYCLE_ENDS = (ChangeAction.resolved, ChangeAction.declined, ChangeAction.closed, ChangeAction.merged)
CLOCK_CHANGES = (WAITING, ANSWERED, REOPENED, STILL_BROKEN, *CYCLE_ENDS)


def is_reopen(change: FrictionChange) -> bool:
    return change.action == REOPENED or (change.action == STILL_BROKEN and change.old in CLOSED)


def ends_cycle(change: FrictionChange) -> bool:
    """``change`` closed the report or merged it into another. (The report a duplicate joined gets
    a "merged" entry too, with no ``new``: that one goes on.)"""
    if change.action == ChangeAction.merged:
        return change.new is not None
    return change.action in CYCLE_ENDS


def waiting_in(changes: Iterable[FrictionChange]) -> bool:
    """Whether, after ``changes`` (in time order), the report waits for its reporter: a question
    asked and neither answered nor ended with its cycle (a close, a merge, a reopen)."""
    waiting = False
    for change in changes:
        if change.action == WAITING:
            waiting = True
        elif change.action == ANSWERED or ends_cycle(change) or is_reopen(change):
            waiting = False
    return waiting


def pauses_since(changes: Iterable[FrictionChange], since: datetime) -> tuple[tuple[datetime, datetime | None], ...]:
    """The pauses (waiting for the reporter) as (start, end): a pause ends at the answer, or with
    its cycle (closed, merged, reopened), so none runs on into a reopened report."""
    out: list[tuple[datetime, datetime | None]] = []
    for change in changes:
        at = as_utc(change.at)
        if change.action == WAITING and (not out or out[-1][1] is not None):
            out.append((at, None))
        elif (change.action == ANSWERED or ends_cycle(change) or is_reopen(change)) and out and out[-1][1] is None:
            out[-1] = (out[-1][0], at)
    # A pause that ended before this clock started does not touch it; one that spans the start is cut.
    return tuple((max(a, since), b) for a, b in out if b is None or b > since)
