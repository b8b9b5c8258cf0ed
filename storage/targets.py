"""Response-target outcomes: one row per report, clock and resolution cycle, written when the
clock breaches (``breached_at``) and when it stops (``stopped_at``, ``met``), so compliance over any
window is a few indexed SQL aggregates instead of business-time arithmetic over every report.

Shapes: ``clock`` is ``first_response`` or ``resolution``; ``cycle`` 0 for the first resolution
clock, n after the n-th reopen (always 0 for first response); minutes are business minutes; ``met``
is None when the report's severity had no target for that clock (not counted in the rates).
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import UniqueConstraint, case, func
from sqlmodel import Field, Session, SQLModel, col, select

from storage.database import insert_unique
from storage.models import FrictionPoint, FrictionTag, instant


class TargetOutcome(SQLModel, table=True):
    __tablename__ = "target_outcome"
    __table_args__ = (UniqueConstraint("friction_point_id", "clock", "cycle"),)

    id: int = Field(default=None, primary_key=True)  # None until flushed; typed int: every row read or returned has one
    friction_point_id: int = Field(foreign_key="friction_point.id", index=True)
    clock: str = Field(max_length=16)
    cycle: int = 0
    severity: str = Field(max_length=16)  # the report's severity when the row was last written
    target_minutes: int | None = None
    due_at: datetime | None = instant(default=None)
    breached_at: datetime | None = instant(default=None, index=True)
    stopped_at: datetime | None = instant(default=None, index=True)
    used_minutes: int | None = None
    met: bool | None = None
    # The history entry (resolve, decline, tracker close) that stopped a resolution clock.
    stop_change_id: int | None = Field(default=None, foreign_key="friction_change.id", index=True)


def get(*, session: Session, point_id: int, clock: str, cycle: int) -> TargetOutcome | None:
    return session.exec(select(TargetOutcome).where(TargetOutcome.friction_point_id == point_id, TargetOutcome.clock == clock,
                                                    TargetOutcome.cycle == cycle)).first()


def upsert(*, session: Session, point_id: int, clock: str, cycle: int, **values) -> TargetOutcome:
    """Create or update the row for (point, clock, cycle) with ``values``; a twin written meanwhile
    by another instance is updated instead (the unique constraint decides)."""
    row = get(session=session, point_id=point_id, clock=clock, cycle=cycle)
    if row is None:
        row = TargetOutcome(friction_point_id=point_id, clock=clock, cycle=cycle, **values)
        if insert_unique(session, row):
            return row
        row = get(session=session, point_id=point_id, clock=clock, cycle=cycle)
        assert row is not None  # the twin whose insert won
    for name, value in values.items():
        setattr(row, name, value)
    session.add(row)
    session.flush()
    return row


def known(*, session: Session, point_ids: list[int]) -> set[tuple[int, str, int]]:
    """(point, clock, cycle) of the rows these points already have."""
    if not point_ids:
        return set()
    rows = session.exec(select(TargetOutcome.friction_point_id, TargetOutcome.clock, TargetOutcome.cycle)
                        .where(col(TargetOutcome.friction_point_id).in_(point_ids))).all()
    return {(point, clock, cycle) for point, clock, cycle in rows}


@dataclass(frozen=True)
class Rate:
    measured: int  # clocks with a target that stopped in the window
    met: int

    @property
    def percent(self) -> float | None:
        return round(100 * self.met / self.measured, 1) if self.measured else None


def _canonical(stmt):
    """Only the outcomes of reports that are not merged duplicates: a report measured (or breached)
    and then merged into another counts not at all, whenever the merge came."""
    return stmt.join(FrictionPoint, col(FrictionPoint.id) == col(TargetOutcome.friction_point_id)).where(
        col(FrictionPoint.duplicate_of_id).is_(None))


def rates(*, session: Session, start: datetime, end: datetime) -> dict[str, Rate]:
    """Per clock: how many clocks with a target stopped in [start, end) and how many met it."""
    rows = session.exec(
        _canonical(select(TargetOutcome.clock, func.count(), func.sum(case((col(TargetOutcome.met).is_(True), 1), else_=0))))
        .where(col(TargetOutcome.met).is_not(None), col(TargetOutcome.stopped_at) >= start, col(TargetOutcome.stopped_at) < end)
        .group_by(TargetOutcome.clock)
    ).all()
    return {clock: Rate(int(n), int(met or 0)) for clock, n, met in rows}


def breaches_by_severity(*, session: Session, start: datetime, end: datetime) -> dict[str, int]:
    """Clocks whose target was passed in [start, end) (stopped late or still overdue), by severity."""
    rows = session.exec(
        _canonical(select(TargetOutcome.severity, func.count()))
        .where(col(TargetOutcome.breached_at) >= start, col(TargetOutcome.breached_at) < end)
        .group_by(TargetOutcome.severity)
    ).all()
    return {severity: int(n) for severity, n in rows}


def breaches_by_area(*, session: Session, start: datetime, end: datetime) -> dict[str | None, int]:
    """The same breaches by area (a report in two areas counts in both; None: no area)."""
    rows = session.exec(
        select(FrictionTag.category, func.count(col(TargetOutcome.id)))
        .select_from(TargetOutcome)
        .outerjoin(FrictionTag, col(FrictionTag.friction_point_id) == col(TargetOutcome.friction_point_id))
        .join(FrictionPoint, col(FrictionPoint.id) == col(TargetOutcome.friction_point_id))
        .where(col(FrictionPoint.duplicate_of_id).is_(None), col(TargetOutcome.breached_at) >= start, col(TargetOutcome.breached_at) < end)
        .group_by(FrictionTag.category)
    ).all()
    return {category: int(n) for category, n in rows}
