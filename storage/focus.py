"""The quarter's focus: the few friction points (reports or whole areas) the team picked for a
period, each with its baseline at the time it was picked, and the period's announcement."""

from datetime import datetime

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, Session, SQLModel, col, select

from storage.database import insert_unique
from storage.models import _ts, instant


class FocusPeriod(SQLModel, table=True):
    """One period (a calendar quarter in the team's time zone), created when its first item is picked."""

    __tablename__ = "focus_period"

    id: int = Field(default=None, primary_key=True)  # None until flushed; typed int: every row read or returned has one
    key: str = Field(max_length=16, unique=True)  # e.g. 2026-Q4
    starts_at: datetime = instant()
    ends_at: datetime = instant()
    published_at: datetime | None = instant(default=None)
    published_by: str | None = Field(default=None, max_length=32)
    # Where the announcement was posted, once it was (kept up to date in place).
    post_channel: str | None = Field(default=None, max_length=32)
    post_ts: str | None = Field(default=None, max_length=32)
    created_at: datetime = _ts()


class FocusItem(SQLModel, table=True):
    """A report (with its merged duplicates) or an area in a period's focus, and its baseline."""

    __tablename__ = "focus_item"
    __table_args__ = (UniqueConstraint("period_id", "subject"),)

    id: int = Field(default=None, primary_key=True)  # None until flushed; typed int: every row read or returned has one
    period_id: int = Field(foreign_key="focus_period.id", index=True)
    subject: str = Field(max_length=80)  # "report:12" or "area:ci"
    picked_by: str = Field(max_length=32)
    picked_at: datetime = _ts()
    baseline: str = Field(sa_column=Column(Text, nullable=False))  # JSON: bot.focus.service.Measure


def get_period(*, session: Session, key: str) -> FocusPeriod | None:
    return session.exec(select(FocusPeriod).where(FocusPeriod.key == key)).first()


def ensure_period(*, session: Session, key: str, starts_at: datetime, ends_at: datetime) -> FocusPeriod:
    """The period ``key``, created once however many instances ask at the same time."""
    period = get_period(session=session, key=key)
    if period is None:
        insert_unique(session, FocusPeriod(key=key, starts_at=starts_at, ends_at=ends_at))
        period = get_period(session=session, key=key)
        assert period is not None  # ours, or the twin whose insert won
    return period


def items(*, session: Session, period_id: int) -> list[FocusItem]:
    return list(session.exec(select(FocusItem).where(FocusItem.period_id == period_id).order_by(col(FocusItem.id))).all())


def last_ended(*, session: Session, at: datetime) -> FocusPeriod | None:
    """The published period that ended most recently, at or before ``at``."""
    return session.exec(
        select(FocusPeriod).where(col(FocusPeriod.published_at).is_not(None), col(FocusPeriod.ends_at) <= at)
        .order_by(col(FocusPeriod.ends_at).desc()).limit(1)
    ).first()
