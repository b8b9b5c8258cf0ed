"""Closing the loop: a tracker says an issue closed (or reopened); every data point linked to it
follows, and every person who reported any of them (merged duplicates included) is owed one notice.
Plain functions on a session; no Slack in here."""

from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from bot.trackers.events import IssueEvent, Outcome
from storage.models import (
    ClosureNotice,
    FrictionChange,
    FrictionPoint,
    Status,
    TrackerLink,
    utcnow,
)

CLOSED = (Status.resolved, Status.wont_fix)


@dataclass
class Closure:
    event: IssueEvent
    closure: int  # how many times this issue has closed, this one included
    points: list[FrictionPoint]  # the linked points this closure resolved or declined
    notices: list[ClosureNotice] = field(default_factory=list)  # one per reporter, new this closure


def apply_issue_event(*, session: Session, event: IssueEvent) -> Closure | None:
    """Apply the tracker's news. None when it changes nothing: an issue we do not track, or news
    we already had (a redelivery, or a second webhook for the same closure)."""
    links = list(
        session.exec(
            select(TrackerLink)
            .where(TrackerLink.tracker == event.tracker, TrackerLink.key == event.key)
            .order_by(col(TrackerLink.id))
            .with_for_update()
        ).all()
    )
    if not links:
        return None
    if event.outcome == Outcome.reopened:
        _reopen(session, event, links)
        return None
    if all(link.closed for link in links):
        return None
    now = utcnow()
    closure = max(link.closures for link in links) + 1
    for link in links:
        link.closed, link.closures, link.closed_at = True, closure, now
        session.add(link)
    actor = f"tracker:{event.tracker}"
    points = _targets(session, links)
    changed = []
    for point in points:
        if point.status in CLOSED:
            continue
        old = point.status
        point.status = Status.resolved if event.outcome == Outcome.fixed else Status.wont_fix
        point.resolved_at = now
        point.updated_at = now
        if point.first_response_at is None:
            point.first_response_at = now
        session.add(point)
        session.add(
            FrictionChange(friction_point_id=point.id, actor=actor, action="closed", old=old, new=point.status, note=event.url)
        )
        changed.append(point)
    result = Closure(event, closure, points)
    for user_id, point in _reporters(session, points).items():
        notice = ClosureNotice(
            friction_point_id=point.id, user_id=user_id, tracker=event.tracker, key=event.key,
            closure=closure, outcome=event.outcome,
        )
        session.add(notice)
        result.notices.append(notice)
    session.flush()
    return result


def _targets(session: Session, links: list[TrackerLink]) -> list[FrictionPoint]:
    """The points linked to the issue; a link on a merged duplicate counts for the point it joined."""
    ids = {link.friction_point_id for link in links}
    points = list(session.exec(select(FrictionPoint).where(col(FrictionPoint.id).in_(ids)).order_by(col(FrictionPoint.id))).all())
    merged_into = {p.duplicate_of_id for p in points if p.duplicate_of_id}
    if merged_into:
        points += session.exec(select(FrictionPoint).where(col(FrictionPoint.id).in_(merged_into))).all()
    return list({p.id: p for p in points if p.duplicate_of_id is None}.values())


def _reporters(session: Session, points: list[FrictionPoint]) -> dict[str, FrictionPoint]:
    """Every reporter of these points and of the duplicates merged into them, once each,
    with the report that is theirs (their own words when they have one)."""
    ids = [p.id for p in points]
    duplicates = list(session.exec(select(FrictionPoint).where(col(FrictionPoint.duplicate_of_id).in_(ids))).all()) if ids else []
    owners: dict[str, FrictionPoint] = {}
    for point in duplicates + points:  # a duplicate someone filed themselves is "their words"
        for reporter in point.reporters:
            if point.filed_by == reporter.user_id or reporter.user_id not in owners:
                owners.setdefault(reporter.user_id, point)
    return owners


def _reopen(session: Session, event: IssueEvent, links: list[TrackerLink]) -> None:
    if not any(link.closed for link in links):
        return
    for link in links:
        link.closed = False
        session.add(link)
    for point in _targets(session, links):
        if point.status in CLOSED:
            old = point.status
            point.status = Status.linked
            point.resolved_at = None
            point.updated_at = utcnow()
            session.add(point)
            session.add(FrictionChange(friction_point_id=point.id, actor=f"tracker:{event.tracker}", action="reopened", old=old, new=Status.linked, note=event.url))


def record_feedback(*, session: Session, notice_id: int, user_id: str, works: bool, comment: str | None = None) -> tuple[ClosureNotice, FrictionPoint] | None:
    """The reporter's answer to a notice. "Still broken" puts the point back in the triage queue."""
    notice = session.get(ClosureNotice, notice_id)
    if notice is None or notice.user_id != user_id:
        return None
    notice.feedback = "works" if works else "broken"
    notice.feedback_at = utcnow()
    notice.comment = comment
    session.add(notice)
    point = session.exec(select(FrictionPoint).where(FrictionPoint.id == notice.friction_point_id).with_for_update()).one()
    if not works:
        old = point.status
        if point.status in CLOSED:
            point.status = Status.acknowledged if point.assignee else Status.new
            point.resolved_at = None
            point.updated_at = utcnow()
            session.add(point)
        session.add(FrictionChange(friction_point_id=point.id, actor=user_id, action="still_broken", old=old, new=point.status, note=comment))
    else:
        session.add(FrictionChange(friction_point_id=point.id, actor=user_id, action="works_for_me"))
    session.flush()
    return notice, point
