"""Target compliance: settling each stopped clock once into ``target_outcome``, and reading the
rates and breaches over a window back in SQL.

Settling is per report and happens off the serving path (the ``targets.check`` job, every few
minutes, a bounded batch each time): a first response, and each stop of a resolution clock (a
resolve, decline or tracker close of an open report), is measured in business time against the
report's severity's target and written once. Reading is a handful of indexed aggregates over the
window, whatever the number of stored reports.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import exists, or_
from sqlmodel import Session, col, select

from bot.policy import Policy
from bot.targets.service import CLOCK_CHANGES, Clock, ClockKind, ClockState, calendar_for, clock_state, is_reopen, pauses_since, target_for
from storage import targets as outcomes
from storage.models import CLOSED, ChangeAction, FrictionChange, FrictionPoint, as_utc, utcnow
from storage.targets import Rate, TargetOutcome

STOPS = (ChangeAction.resolved, ChangeAction.declined, ChangeAction.closed)  # the changes that close a report
BATCH = 500  # clocks settled per run at most: a first run over a long history drains over a few ticks


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)


def _row(state: ClockState, severity: str, stopped_at: datetime | None) -> dict:
    """The columns of an outcome for a clock in ``state`` (stopped, or breached and running)."""
    values = {"severity": severity, "target_minutes": _minutes(state.target), "due_at": state.due_at}
    # A running clock gets here only once breached; a stopped one may have met a target a severity
    # change moved after the breach was counted, which then no longer counts.
    values["breached_at"] = state.due_at if not state.stopped or not state.met else None
    if stopped_at is not None:
        values.update(stopped_at=stopped_at, used_minutes=_minutes(state.used), met=bool(state.met))
    return values


def record_breach(*, session: Session, point: FrictionPoint, state: ClockState, cycle: int) -> None:
    """A running clock passed its target: count the breach now (it is settled again when it stops)."""
    outcomes.upsert(session=session, point_id=point.id, clock=str(state.kind), cycle=cycle, **_row(state, str(point.severity), None))


def _candidates(session: Session, limit: int) -> tuple[list[int], list[FrictionChange]]:
    """Reports with a first response not settled yet, and resolution stops not settled yet."""
    settled_first = exists().where(col(TargetOutcome.friction_point_id) == col(FrictionPoint.id),
                                   col(TargetOutcome.clock) == ClockKind.first_response.value,
                                   col(TargetOutcome.stopped_at).is_not(None))
    first = session.exec(select(FrictionPoint.id).where(col(FrictionPoint.first_response_at).is_not(None),
                                                        col(FrictionPoint.duplicate_of_id).is_(None), ~settled_first)
                         .order_by(col(FrictionPoint.first_response_at).desc()).limit(limit)).all()
    settled_stop = exists().where(col(TargetOutcome.stop_change_id) == col(FrictionChange.id))
    stops = session.exec(
        select(FrictionChange).join(FrictionPoint, col(FrictionPoint.id) == col(FrictionChange.friction_point_id))
        .where(col(FrictionChange.action).in_(STOPS), or_(col(FrictionChange.old).is_(None), col(FrictionChange.old).not_in([str(s) for s in CLOSED])),
               col(FrictionPoint.duplicate_of_id).is_(None), ~settled_stop)
        .order_by(col(FrictionChange.at).desc()).limit(limit)
    ).all()
    return list(first), list(stops)


def settle(*, session: Session, policy: Policy, limit: int = BATCH) -> int:
    """Write the outcome of every stopped clock not settled yet (at most ``limit`` of each kind).
    Returns how many were written. Nothing when targets are off."""
    targets = policy.targets
    if not targets.enabled:
        return 0
    first_ids, stops = _candidates(session, limit)
    ids = set(first_ids) | {s.friction_point_id for s in stops}
    if not ids:
        return 0
    points = {p.id: p for p in session.exec(select(FrictionPoint).where(col(FrictionPoint.id).in_(ids))).all()}
    history: dict[int, list[FrictionChange]] = defaultdict(list)
    for change in session.exec(select(FrictionChange).where(col(FrictionChange.friction_point_id).in_(ids),
                                                           col(FrictionChange.action).in_(CLOCK_CHANGES))
                               .order_by(col(FrictionChange.at), col(FrictionChange.id))).all():
        history[change.friction_point_id].append(change)
    calendar = calendar_for(targets)
    written = 0
    for point_id in first_ids:
        point = points[point_id]
        assert point.first_response_at is not None  # _candidates chose reports with one
        stopped = as_utc(point.first_response_at)
        clock = Clock(ClockKind.first_response, as_utc(point.created_at), stopped, pauses_since(history[point_id], as_utc(point.created_at)))
        written += _settle(session, point, clock, 0, stopped, calendar, targets)
    for stop in stops:
        point, at = points[stop.friction_point_id], as_utc(stop.at)
        reopens = [c for c in history[point.id] if is_reopen(c) and (as_utc(c.at), c.id) < (at, stop.id)]
        start = as_utc(reopens[-1].at) if reopens else as_utc(point.created_at)
        clock = Clock(ClockKind.resolution, start, at, pauses_since(history[point.id], start))
        written += _settle(session, point, clock, len(reopens), at, calendar, targets, stop_change_id=stop.id)
    return written


def _settle(session, point, clock, cycle, stopped_at, calendar, targets, **extra) -> int:
    severity = str(point.severity)
    target = target_for(targets, severity, clock.kind, calendar)
    if target is None:  # no target for this severity: kept, so it is not looked at again, but not counted
        values = {"severity": severity, "stopped_at": stopped_at, "target_minutes": None, "met": None}
    else:
        values = _row(clock_state(calendar, clock, target, stopped_at, warn_share=targets.warn_at), severity, stopped_at)
    outcomes.upsert(session=session, point_id=point.id, clock=str(clock.kind), cycle=cycle, **values, **extra)
    return 1


# ------------------------------------------------------------------ reading


@dataclass(frozen=True)
class Week:
    start: datetime
    first_response: Rate
    resolution: Rate


@dataclass(frozen=True)
class Compliance:
    """Compliance over [start, end) and the window of the same length before it (the trend)."""

    start: datetime
    end: datetime
    first_response: Rate
    resolution: Rate
    previous_first_response: Rate
    previous_resolution: Rate
    breaches_by_severity: dict[str, int]
    breaches_by_area: dict[str | None, int]  # None: reports with no area
    weeks: list[Week] = field(default_factory=list)  # oldest first

    @property
    def breaches(self) -> int:
        return sum(self.breaches_by_severity.values())


NONE = Rate(0, 0)


def compliance(*, session: Session, policy: Policy, days: int, now: datetime | None = None, weeks: int = 0) -> Compliance | None:
    """The window of ``days`` ending at ``now``, the one before it, and ``weeks`` weekly rates
    (oldest first). None when targets are off. A few SQL aggregates (2 + 2 per week)."""
    if not policy.targets.enabled:
        return None
    end = now or utcnow()
    start = end - timedelta(days=days)
    current = outcomes.rates(session=session, start=start, end=end)
    previous = outcomes.rates(session=session, start=start - timedelta(days=days), end=start)
    series = []
    for n in range(weeks, 0, -1):
        w_end = end - timedelta(weeks=n - 1)
        r = outcomes.rates(session=session, start=w_end - timedelta(weeks=1), end=w_end)
        series.append(Week(w_end - timedelta(weeks=1), r.get("first_response", NONE), r.get("resolution", NONE)))
    return Compliance(
        start, end,
        current.get("first_response", NONE), current.get("resolution", NONE),
        previous.get("first_response", NONE), previous.get("resolution", NONE),
        outcomes.breaches_by_severity(session=session, start=start, end=end),
        outcomes.breaches_by_area(session=session, start=start, end=end),
        series,
    )


def as_data(c: Compliance, label) -> dict:
    """Plain data for ``report --json`` and the dashboard; ``label(category)`` names an area."""
    def rate(r: Rate) -> dict:
        return {"measured": r.measured, "met": r.met, "percent": r.percent}

    return {
        "first_response": rate(c.first_response), "resolution": rate(c.resolution),
        "previous": {"first_response": rate(c.previous_first_response), "resolution": rate(c.previous_resolution)},
        "breaches": c.breaches,
        "breaches_by_severity": dict(sorted(c.breaches_by_severity.items(), key=lambda kv: -kv[1])),
        "breaches_by_area": {("no area" if k is None else label(k)): v for k, v in sorted(c.breaches_by_area.items(), key=lambda kv: -kv[1])},
        "weeks": [{"start": w.start.isoformat(), "first_response": w.first_response.percent, "resolution": w.resolution.percent} for w in c.weeks],
    }
