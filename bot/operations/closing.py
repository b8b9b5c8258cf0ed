"""Closing the loop: a tracker says an issue closed (or reopened); every data point linked to it
follows, and every person who reported any of them (merged duplicates included) is owed one notice.
Plain functions on a session; no Slack in here."""

import json
import logging
from dataclasses import dataclass, field

from sqlalchemy import insert, update
from sqlalchemy.orm import lazyload
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from bot.blocks.closing import build_announcement, build_closure_notice, build_still_broken_alert
from bot.trackers import IssueEvent, Outcome
from bot.trackers.base import parse_time
from bot.operations.triage import sync_card
from storage import links as link_queries
from storage import outbox
from storage.models import (
    ClosureNotice,
    FrictionChange,
    FrictionPoint,
    Reporter,
    Status,
    TrackerLink,
    as_utc,
    utcnow,
)

log = logging.getLogger(__name__)

CLOSED = (Status.resolved, Status.wont_fix)
# What the card sync hook renders at send time (bot/runtime's triage-card purpose).


@dataclass
class Closure:
    event: IssueEvent
    closure: int  # how many times this issue has closed, this one included
    points: list[FrictionPoint]  # the linked points this closure resolved or declined
    notices: list["Notice"] = field(default_factory=list)  # one per reporter, new this closure


@dataclass(frozen=True)
class Notice:
    """A closure notice row as written (bulk-inserted: a closure can owe thousands)."""

    id: int
    user_id: str
    friction_point_id: int
    key: str
    outcome: str


@dataclass
class Applied:
    """What one event did: ``matched`` links (0: a key no link has), ``closure`` when it closed them."""

    matched: int = 0
    closure: Closure | None = None


def apply_issue_event(*, session: Session, event: IssueEvent) -> Applied:
    """Apply the tracker's news to the links it names: by stable id first, then by normalised key
    (old keys included), following the issue's new key and id. A close or reopen applies only to
    links whose last applied state is older than the event (the tracker's own time), so replays
    and out-of-order deliveries change nothing; a close notifies once per real closure."""
    if event.outcome == Outcome.renamed:
        return Applied(_rename(session, event))
    links = _matching(session, event)
    if not links:
        return Applied()
    _follow(session, event, links)
    if event.outcome == Outcome.moved:
        return Applied(len(links))
    at = parse_time(event.at)
    fresh = [l for l in links if at is None or l.state_at is None or at > as_utc(l.state_at)]
    if at is not None:
        _set(session, TrackerLink, fresh, state_at=at)
    if event.outcome == Outcome.reopened:
        _reopen(session, event, [l for l in fresh if l.closed])
        return Applied(len(links))
    closing = [l for l in fresh if not l.closed]
    if not closing:
        return Applied(len(links))
    now = utcnow()
    closure = max(link.closures for link in links) + 1
    _set(session, TrackerLink, closing, closed=True, closures=closure, closed_at=now)
    points = _targets(session, closing)
    still_open = [p for p in points if p.status not in CLOSED]
    old = {p.id: str(p.status) for p in still_open}
    new = Status.resolved if event.outcome == Outcome.fixed else Status.wont_fix
    _set(session, FrictionPoint, still_open, status=new, resolved_at=now, updated_at=now)
    _set(session, FrictionPoint, [p for p in still_open if p.first_response_at is None], first_response_at=now)
    if old:
        # Bulk, as the notices below: one closure can resolve thousands of reports.
        session.execute(insert(FrictionChange), [
            dict(friction_point_id=i, actor=f"tracker:{event.tracker}", action="closed", old=o, new=str(new),
                 note=event.url, at=now) for i, o in old.items()])
    result = Closure(event, closure, points)
    rows = [dict(friction_point_id=point_id, user_id=user_id, tracker=str(event.tracker), key=event.key,
                 closure=closure, outcome=str(event.outcome), created_at=now)
            for user_id, point_id in _reporters(session, points).items()]
    if rows:
        stmt = insert(ClosureNotice).returning(ClosureNotice.id, sort_by_parameter_order=True)
        ids = session.execute(stmt, rows).scalars().all()
        result.notices = [Notice(i, r["user_id"], r["friction_point_id"], r["key"], r["outcome"]) for i, r in zip(ids, rows)]
    session.flush()
    return Applied(len(links), result)


def _matching(session: Session, event: IssueEvent) -> list[TrackerLink]:
    ids = [i for i in (event.issue_id, *event.old_ids) if i]
    found = link_queries.matching_links(session=session, tracker=event.tracker, keys=[event.key, *event.old_keys], ids=ids)
    # Identity first: a link that knows its issue's id is only that issue, whatever its key says.
    return [l for l in found if l.issue_id is None or not event.issue_id or l.issue_id in ids]


def _follow(session: Session, event: IssueEvent, links: list[TrackerLink]) -> None:
    """Fill in the issue's stable ids and follow a new key (transfer, project or team move)."""
    if event.issue_id:
        _set(session, TrackerLink, [l for l in links if l.issue_id != event.issue_id], issue_id=event.issue_id)
    if event.project_id:
        _set(session, TrackerLink, [l for l in links if l.project_id != event.project_id], project_id=event.project_id)
    taken = {(l.friction_point_id, l.key) for l in links}
    for link in links:
        if link.key != event.key and (link.friction_point_id, event.key) not in taken:
            taken.add((link.friction_point_id, event.key))
            log.info("%s link %s now follows %s", event.tracker, link.key, event.key)
            link.key = event.key
            if event.url:
                link.url = event.url[:3000]
            session.add(link)


def _set(session: Session, model, rows: list, **values) -> None:
    """One UPDATE per 500 ``rows`` (objects of ``model``), and the same values on the objects
    (evaluating the UPDATE against the session's objects instead costs seconds for thousands)."""
    ids = [row.id for row in rows]
    for start in range(0, len(ids), 500):
        stmt = update(model).where(col(model.id).in_(ids[start:start + 500])).values(**values)
        session.execute(stmt.execution_options(synchronize_session=False))
    for row in rows:
        for name, value in values.items():
            set_committed_value(row, name, value)


def _rename(session: Session, event: IssueEvent) -> int:
    """A repository/project renamed or moved: its links take the new path."""
    links = link_queries.project_links(session=session, tracker=event.tracker, prefixes=list(event.old_keys),
                                       project_id=event.project_id)
    for link in links:
        path, sep, number = link.key.rpartition("!" if "!" in link.key else "#")
        if path != event.key:
            link.key = f"{event.key}{sep}{number}"
        if event.project_id:
            link.project_id = event.project_id
        session.add(link)
    session.flush()
    return len(links)


def _targets(session: Session, links: list[TrackerLink]) -> list[FrictionPoint]:
    """The points linked to the issue; a link on a merged duplicate counts for the point it joined.
    Their relationships load only if used (a closure can reach thousands of points)."""
    ids = {link.friction_point_id for link in links}
    points = list(session.exec(select(FrictionPoint).where(col(FrictionPoint.id).in_(ids))
                               .options(lazyload("*")).order_by(col(FrictionPoint.id))).all())
    merged_into = {p.duplicate_of_id for p in points if p.duplicate_of_id}
    if merged_into:
        points += session.exec(select(FrictionPoint).where(col(FrictionPoint.id).in_(merged_into)).options(lazyload("*"))).all()
    return list({p.id: p for p in points if p.duplicate_of_id is None}.values())


def _reporters(session: Session, points: list[FrictionPoint]) -> dict[str, int]:
    """Every reporter of these points and of the duplicates merged into them, once each, with the
    id of the report that is theirs (a duplicate they filed: their own words)."""
    ids = [p.id for p in points]
    if not ids:
        return {}
    duplicates = list(session.exec(select(FrictionPoint.id).where(col(FrictionPoint.duplicate_of_id).in_(ids))
                                   .order_by(col(FrictionPoint.id))).all())
    order = {point_id: n for n, point_id in enumerate(duplicates + ids)}
    rows = session.exec(select(Reporter.friction_point_id, Reporter.user_id)
                        .where(col(Reporter.friction_point_id).in_(list(order))).order_by(col(Reporter.id))).all()
    owners: dict[str, int] = {}
    for point_id, user_id in sorted(rows, key=lambda r: order[r[0]]):  # stable: reporters in id order per point
        owners.setdefault(user_id, point_id)
    return owners


def _reopen(session: Session, event: IssueEvent, links: list[TrackerLink]) -> None:
    if not links:
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


def answer_notice(*, session: Session, notice_id: int, user_id: str, works: bool, comment: str | None, prefix: str) -> str | None:
    """Record the answer; "still broken" alerts the hosts in the card's thread. Returns the ref."""
    recorded = record_feedback(session=session, notice_id=notice_id, user_id=user_id, works=works, comment=comment)
    if recorded is None:
        return None
    notice, point = recorded
    ref = f"{prefix}-{point.id}"
    if not works:
        sync_card(session=session, point=point, why=f"broken:{notice.id}")
        if point.card_ts:
            outbox.enqueue(session=session, dedupe_key=f"still-broken:{notice.id}", method="chat.postMessage",
                           payload={"channel": point.card_channel, "thread_ts": point.card_ts,
                                    **build_still_broken_alert(ref, point, user_id, comment)},
                           friction_point_id=point.id)
    return ref


# ------------------------------------------------------------------ queuing what a closure owes




def queue_notice(*, session: Session, notice: Notice, event: IssueEvent, policy, point: FrictionPoint | None = None) -> None:
    """Queue one "you reported this, it's fixed" DM (once: the dedupe key is the notice's id)."""
    point = point or session.get(FrictionPoint, notice.friction_point_id)  # the reporter's own report
    message = build_closure_notice(f"{policy.reference_prefix}-{point.id}", point, notice, event.url, event.title,
                                   not_planned_message=policy.closing.not_planned_message)
    outbox.enqueue(session=session, dedupe_key=f"closure-notice:{notice.id}", method="chat.postMessage",
                   payload={"channel": notice.user_id, **message}, friction_point_id=point.id,
                   workspace=point.reporter_workspace(notice.user_id))


def apply_and_queue(*, session: Session, event: IssueEvent, policy, notices: bool = True) -> Applied:
    """Apply a tracker event and queue, in the same transaction, the card updates, the
    announcement and (``notices``) one notice per reporter; with ``notices=False`` the caller
    queues them (``queue_notice``). Repeats of the same news queue nothing."""
    applied = apply_issue_event(session=session, event=event)
    closure = applied.closure
    if closure is None:
        return applied
    prefix = policy.reference_prefix
    if notices:
        for notice in closure.notices:
            queue_notice(session=session, notice=notice, event=event, policy=policy)
    for point in closure.points:
        sync_card(session=session, point=point, why=f"closure:{event.tracker}:{event.key}:{closure.closure}")
    channel = policy.closing.announce_channel
    if channel and policy.closing.announce == "per_closure" and event.outcome == Outcome.fixed and closure.points:
        post = build_announcement(prefix, event.key, event.url, event.title, closure.points, len(closure.notices))
        outbox.enqueue(session=session, dedupe_key=f"announce:{event.tracker}:{event.key}:{closure.closure}",
                       method="chat.postMessage", payload={"channel": channel, **post})
    return applied


@dataclass
class DeliveryResult:
    """What applying one recorded delivery did, per event: (tracker, key, "applied" | "unchanged" | "unmatched")."""

    outcomes: list[tuple[str, str, str]] = field(default_factory=list)
    to_queue: int = 0  # notices owed, queued afterwards in batches (``queue_notices``)

    @property
    def closures(self) -> int:
        return sum(1 for *_, o in self.outcomes if o == "applied")


def apply_delivery(*, session: Session, delivery_id: int, policy) -> DeliveryResult | None:
    """Apply a recorded delivery's events once (None: applied already, by this or another
    instance). The notices it owes are recorded on the delivery and queued by ``queue_notices``
    in short transactions (on SQLite a long one would hold up every other write, the next
    delivery's answer included)."""
    delivery = link_queries.claim_delivery(session=session, delivery_id=delivery_id)
    if delivery is None:
        return None
    result = DeliveryResult()
    if delivery.notices is not None:  # applied; its notices were being queued when we stopped
        result.to_queue = len(json.loads(delivery.notices)) - delivery.queued
        return result
    owed = []
    for index, data in enumerate(json.loads(delivery.events)):
        event = IssueEvent.from_json(data)
        applied = apply_and_queue(session=session, event=event, policy=policy, notices=False)
        outcome = "applied" if applied.closure else "unchanged" if applied.matched else "unmatched"
        result.outcomes.append((str(event.tracker), event.key, outcome))
        if applied.closure:
            owed += [[n.id, index] for n in applied.closure.notices]
    delivery.notices, delivery.queued = json.dumps(owed), 0
    if not owed:
        delivery.applied_at = utcnow()
    session.add(delivery)
    result.to_queue = len(owed)
    return result


def queue_notices(*, session: Session, delivery_id: int, policy, limit: int = 50) -> int:
    """Queue the next ``limit`` notices a delivery owes; returns how many remain (0: done)."""
    delivery = link_queries.claim_delivery(session=session, delivery_id=delivery_id)
    if delivery is None or delivery.notices is None:
        return 0
    owed, events = json.loads(delivery.notices), [IssueEvent.from_json(e) for e in json.loads(delivery.events)]
    batch = owed[delivery.queued:delivery.queued + limit]
    rows = {n.id: n for n in session.exec(select(ClosureNotice).where(col(ClosureNotice.id).in_([i for i, _ in batch])))}
    point_ids = {n.friction_point_id for n in rows.values()}
    points = {p.id: p for p in session.exec(select(FrictionPoint).where(col(FrictionPoint.id).in_(point_ids)))}
    for notice_id, index in batch:
        row = rows.get(notice_id)
        if row is None:
            continue  # erased since (retention)
        notice = Notice(row.id, row.user_id, row.friction_point_id, row.key, row.outcome)
        queue_notice(session=session, notice=notice, event=events[index], policy=policy, point=points[row.friction_point_id])
    delivery.queued += len(batch)
    if delivery.queued >= len(owed):
        delivery.applied_at = utcnow()
    session.add(delivery)
    return len(owed) - delivery.queued
