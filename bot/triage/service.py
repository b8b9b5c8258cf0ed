"""Triage: what hosts do to a data point. Plain functions on a session; no Slack in here.

Every change takes the point's row lock first (``SELECT ... FOR UPDATE``; SQLite takes its write
lock at BEGIN), so two hosts clicking at once are applied one after the other and neither update
is lost. Every change is kept as a ``FrictionChange``; the first one sets the time to first response.
"""

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlmodel import Session, col, select

from bot.references import format_ref
from bot.trackers import IssueRef
from storage import outbox
from storage.models import (
    ChangeAction,
    FrictionChange,
    FrictionPoint,
    FrictionTag,
    Reporter,
    Severity,
    Status,
    TrackerLink,
    as_utc,
    utcnow,
)

CARD_PURPOSE = "triage_card"  # outbox purpose: the card is rendered by ``CardHook`` when sent
OPEN_STATUSES = (Status.new, Status.acknowledged, Status.linked)
SEVERITY_WEIGHT = {Severity.low: 1, Severity.medium: 2, Severity.high: 4, Severity.blocker: 8}


class TriageError(Exception):
    """The action cannot apply; ``str()`` is what the host is told."""


class Change(StrEnum):
    """Changes a reporter hears about get a DM; the rest only touch the card and history."""

    assigned = ChangeAction.assigned
    tagged = ChangeAction.tagged
    severity = ChangeAction.severity
    linked = ChangeAction.linked
    merged = ChangeAction.merged
    resolved = ChangeAction.resolved
    declined = ChangeAction.declined
    reopened = ChangeAction.reopened
    responded = ChangeAction.responded  # a host answered in the thread (help channel)


@dataclass
class Applied:
    point: FrictionPoint
    change: Change
    entry: FrictionChange
    first_response: bool  # this change was the point's first host action
    picked_up: bool  # the point left "new" with this change
    queued: bool = False  # messages for the outbox were queued with it (``triage_flow.apply_and_notify``)


def lock_point(*, session: Session, point_id: int) -> FrictionPoint:
    point = session.exec(select(FrictionPoint).where(FrictionPoint.id == point_id).with_for_update()).first()
    if point is None:
        raise TriageError("That report no longer exists.")
    return point


def _open_point(session: Session, point_id: int, prefix: str) -> FrictionPoint:
    point = lock_point(session=session, point_id=point_id)
    if point.duplicate_of_id is not None:
        raise TriageError(f"This report was merged into {format_ref(prefix, point.duplicate_of_id)}; work on that one.")
    return point


def _record(
    session: Session, point: FrictionPoint, actor: str, change: Change, *, was: str, old=None, new=None, note=None
) -> Applied:
    """Keep the change in the history; a host's first touch on a new report picks it up."""
    now = utcnow()
    first = point.first_response_at is None
    if first:
        point.first_response_at = now
    picked_up = was == Status.new and change not in (Change.declined, Change.resolved, Change.merged)
    if picked_up and point.status == Status.new:
        point.status = Status.acknowledged
    point.updated_at = now
    entry = FrictionChange(
        friction_point_id=point.id, actor=actor, action=change, old=_s(old), new=_s(new), note=note, at=now
    )
    session.add(point)
    session.add(entry)
    session.flush()
    return Applied(point, change, entry, first_response=first, picked_up=picked_up)


def _s(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return ",".join(value)
    return str(value)


def assign(*, session: Session, point_id: int, actor: str, assignee: str, prefix: str) -> Applied:
    point = _open_point(session, point_id, prefix)
    old = point.assignee
    point.assignee = assignee
    return _record(session, point, actor, Change.assigned, was=point.status, old=old, new=assignee)


def set_tags(*, session: Session, point_id: int, actor: str, categories: list[str], prefix: str) -> Applied:
    point = _open_point(session, point_id, prefix)
    old = point.categories
    keep = {t.category: t for t in point.tags if t.category in categories}
    point.tags[:] = [keep.get(c) or FrictionTag(friction_point_id=point.id, category=c, automatic=False) for c in dict.fromkeys(categories)]
    for tag in point.tags:  # a host confirming an automatic tag makes it a chosen one
        tag.automatic = False
    return _record(session, point, actor, Change.tagged, was=point.status, old=old, new=categories)


def set_severity(*, session: Session, point_id: int, actor: str, severity: Severity, prefix: str) -> Applied:
    point = _open_point(session, point_id, prefix)
    old = point.severity
    point.severity = Severity(severity)
    return _record(session, point, actor, Change.severity, was=point.status, old=old, new=point.severity)


def link(*, session: Session, point_id: int, actor: str, issue: IssueRef, prefix: str) -> Applied:
    point = _open_point(session, point_id, prefix)
    if not any(lnk.tracker == issue.tracker and lnk.key == issue.key for lnk in point.links):
        point.links.append(TrackerLink(friction_point_id=point.id, tracker=issue.tracker, key=issue.key, url=issue.url))
    was = point.status
    point.status = Status.linked
    return _record(session, point, actor, Change.linked, was=was, new=f"{issue.tracker}:{issue.key}", note=issue.url)


def resolve(*, session: Session, point_id: int, actor: str, note: str | None, prefix: str) -> Applied:
    point = _open_point(session, point_id, prefix)
    if point.status == Status.resolved:
        raise TriageError(f"{format_ref(prefix, point.id)} is already resolved.")
    old = point.status
    point.status = Status.resolved
    point.resolved_at = utcnow()
    point.resolution_note = note
    return _record(session, point, actor, Change.resolved, was=old, old=old, new=Status.resolved, note=note)


def decline(*, session: Session, point_id: int, actor: str, reason: str, prefix: str) -> Applied:
    point = _open_point(session, point_id, prefix)
    if point.status == Status.wont_fix:
        raise TriageError(f"{format_ref(prefix, point.id)} is already marked won't fix.")
    old = point.status
    point.status = Status.wont_fix
    point.resolved_at = utcnow()
    point.resolution_note = reason
    return _record(session, point, actor, Change.declined, was=old, old=old, new=Status.wont_fix, note=reason)


def reopen(*, session: Session, point_id: int, actor: str, prefix: str) -> Applied:
    point = _open_point(session, point_id, prefix)
    if point.status not in (Status.resolved, Status.wont_fix):
        raise TriageError(f"{format_ref(prefix, point.id)} is still open.")
    old = point.status
    point.status = Status.linked if point.links else (Status.acknowledged if point.assignee else Status.new)
    point.resolved_at = None
    point.resolution_note = None
    return _record(session, point, actor, Change.reopened, was=old, old=old, new=point.status)


def merge(*, session: Session, point_id: int, into_id: int, actor: str, prefix: str) -> tuple[Applied, FrictionPoint]:
    """Mark ``point_id`` a duplicate of ``into_id``. The newer points at the older; every reporter
    ends up on the older one, so all of them hear when it is fixed."""
    if point_id == into_id:
        raise TriageError("A report cannot be a duplicate of itself.")
    # Lock both in id order so two opposite merges cannot deadlock.
    first, second = sorted((point_id, into_id))
    locked = {first: lock_point(session=session, point_id=first), second: lock_point(session=session, point_id=second)}
    newer, older = sorted(locked.values(), key=lambda p: (as_utc(p.created_at), p.id), reverse=True)
    for p in (newer, older):
        if p.duplicate_of_id is not None:
            raise TriageError(f"{format_ref(prefix, p.id)} was already merged into {format_ref(prefix, p.duplicate_of_id)}.")
    for reporter in list(newer.reporters):
        if not any(r.user_id == reporter.user_id for r in older.reporters):
            older.reporters.append(Reporter(friction_point_id=older.id, user_id=reporter.user_id, team_id=reporter.team_id,
                                            enterprise_id=reporter.enterprise_id, reported_at=reporter.reported_at))
    for point in session.exec(select(FrictionPoint).where(FrictionPoint.duplicate_of_id == newer.id)).all():
        point.duplicate_of_id = older.id  # keep chains one hop long
        session.add(point)
    old_status = newer.status
    newer.duplicate_of_id = older.id
    newer.status = Status.duplicate
    applied = _record(session, newer, actor, Change.merged, was=old_status, old=old_status, new=format_ref(prefix, older.id))
    _record(session, older, actor, Change.merged, was=older.status, note=f"{format_ref(prefix, newer.id)} merged in")
    return applied, older


# ------------------------------------------------------------------ the queue and its numbers


def priority(point: FrictionPoint, now: datetime) -> float:
    """Documented in the README: severity weight x reporters, plus a week of waiting counts one."""
    age_days = (now - as_utc(point.created_at)).total_seconds() / 86400
    return SEVERITY_WEIGHT.get(Severity(point.severity), 2) * max(1, len(point.reporters)) + age_days / 7


def open_queue(
    *, session: Session, category: str | None = None, status: str | None = None, limit: int = 200
) -> list[FrictionPoint]:
    statuses = [status] if status else list(OPEN_STATUSES)
    stmt = select(FrictionPoint).where(col(FrictionPoint.status).in_(statuses)).where(
        col(FrictionPoint.duplicate_of_id).is_(None)
    )
    if category:
        stmt = stmt.join(FrictionTag, col(FrictionTag.friction_point_id) == FrictionPoint.id).where(
            FrictionTag.category == category
        )
    points = list(session.exec(stmt.order_by(col(FrictionPoint.created_at)).limit(2000)).all())
    now = utcnow()
    points.sort(key=lambda p: (-priority(p, now), as_utc(p.created_at)))
    return points[:limit]


@dataclass(frozen=True)
class Headline:
    open_count: int
    median_first_response: timedelta | None  # this month
    median_resolution: timedelta | None  # this month
    closed_this_week: int


def headline(*, session: Session, now: datetime | None = None) -> Headline:
    now = now or utcnow()
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    week_start = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    open_count = len(
        session.exec(
            select(FrictionPoint.id)
            .where(col(FrictionPoint.status).in_(list(OPEN_STATUSES)))
            .where(col(FrictionPoint.duplicate_of_id).is_(None))
        ).all()
    )
    # (created, then) pairs; ``then`` is never None here (the where clauses compare it), the check says so to the types
    responded = [(c, r) for c, r in session.exec(
        select(FrictionPoint.created_at, FrictionPoint.first_response_at).where(
            col(FrictionPoint.first_response_at) >= month_start, col(FrictionPoint.duplicate_of_id).is_(None)
        )
    ).all() if r is not None]
    closed = [(c, r) for c, r in session.exec(
        select(FrictionPoint.created_at, FrictionPoint.resolved_at).where(
            col(FrictionPoint.resolved_at) >= month_start, col(FrictionPoint.duplicate_of_id).is_(None)
        )
    ).all() if r is not None]
    closed_week = [r for c, r in closed if as_utc(r) >= week_start]
    return Headline(
        open_count=open_count,
        median_first_response=_median([as_utc(r) - as_utc(c) for c, r in responded]),
        median_resolution=_median([as_utc(r) - as_utc(c) for c, r in closed]),
        closed_this_week=len(closed_week),
    )


def _median(values: list[timedelta]) -> timedelta | None:
    if not values:
        return None
    return timedelta(seconds=statistics.median(v.total_seconds() for v in values))


def history(*, session: Session, point_id: int) -> list[FrictionChange]:
    return list(
        session.exec(
            select(FrictionChange).where(FrictionChange.friction_point_id == point_id).order_by(col(FrictionChange.id))
        ).all()
    )


# ------------------------------------------------------------------ the card

def enqueue_card(*, session: Session, point_id: int, channel: str | None) -> None:
    """Queue the card of a point filed in this transaction. It is rendered when sent, so it shows
    the latest state."""
    if channel:
        outbox.enqueue(
            session=session,
            dedupe_key=f"card:{point_id}",
            method="chat.postMessage",
            payload={"channel": channel},
            friction_point_id=point_id,
            purpose=CARD_PURPOSE,
            fresh=True,  # a point made in this transaction has no card queued yet
        )


def sync_card(*, session: Session, point: FrictionPoint, why: str) -> None:
    """Queue an in-place update of the point's triage card, rendered when sent. Not posted yet:
    nothing to do, the queued post renders the latest state. ``why`` makes the dedupe key."""
    if point.card_ts:
        outbox.enqueue(session=session, dedupe_key=f"card-sync:{point.id}:{why}", method="chat.update",
                       payload={}, friction_point_id=point.id, purpose=CARD_PURPOSE)



def sync_cards(*, session: Session, point_ids: list[int], why: str) -> None:
    """``sync_card`` for many posted cards at once (``point_ids``: points that have a card), in
    one INSERT: a tracker closure can redraw thousands."""
    outbox.enqueue_many(session=session, messages=[
        dict(dedupe_key=f"card-sync:{i}:{why}", method="chat.update", payload={}, friction_point_id=i, purpose=CARD_PURPOSE)
        for i in point_ids])
