"""Closing the loop: a tracker says an issue closed (or reopened); every data point linked to it
follows, and every person who reported any of them (merged duplicates included) is owed one notice.
Plain functions on a session; no Slack in here."""

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, update
from sqlalchemy.orm import lazyload, selectinload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from bot.closing.audience import CHUNK
from bot.closing.audience import reporters as _reporters
from bot.closing.audience import targets as _targets
from bot.closing.blocks import build_announcement, build_closure_notice, build_issue_deleted_alert, build_still_broken_alert
from bot.references import format_ref
from bot.trackers import IssueEvent, Outcome
from bot.trackers.base import parse_time
from bot.triage.service import sync_card, sync_cards
from storage import links as link_queries
from storage import outbox
from storage.database import insert_or_skip
from storage.models import (
    DECIDED,
    ChangeAction,
    ClosureNotice,
    FrictionChange,
    FrictionPoint,
    Status,
    TrackerLink,
    as_utc,
    utcnow,
)

log = logging.getLogger(__name__)

# A tracker's time later than this past the delivery's receipt is not believed for ordering (issue
# #26 item 11): one delivery stamped 2099 would otherwise make every real change after it "older".
# Such a time counts as the receipt time. Five minutes covers clocks that are merely off.
MAX_CLOCK_SKEW = timedelta(minutes=5)


@dataclass
class Applied:
    """What one event did: ``matched`` links (0: a key no link has), ``closure`` (its number) when it
    closed them, and the ``steps`` it owes, to run in order with ``run_step`` (JSON-able dicts:
    close reports, notify reporters, announce; or reopen reports), each at most ``CHUNK`` rows."""

    matched: int = 0
    closure: int | None = None
    steps: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class Notice:
    """A closure notice row as written (bulk-inserted: a closure can owe thousands)."""

    id: int
    user_id: str
    friction_point_id: int
    key: str
    outcome: str


def apply_issue_event(*, session: Session, event: IssueEvent, index: int = 0, received_at: datetime | None = None) -> Applied:
    """Apply the tracker's news to the links it names: by stable id first, then by normalised key
    (old keys included), following the issue's new key and id. A close or reopen applies only to
    links whose last applied state is older than the event (the tracker's own time), so replays
    and out-of-order deliveries change nothing; a close notifies once per real closure.

    Only the links change here; what follows for the reports and their reporters comes back as
    ``steps`` (``index``: the event's place in its delivery, kept in each step), so a closure
    reaching thousands of reports never holds the database in one long transaction.

    Time: ``at`` later than ``received_at`` (default now) + ``MAX_CLOCK_SKEW`` counts as
    ``received_at``. Two events of the same time (trackers with one-second timestamps: a GitLab
    close and reopen in the same second) both apply, in the order they are applied (deliveries in
    the order received): the later one is the state that stands. Repeating a state changes nothing
    (a closed link is not closed again), so an equal time never notifies twice."""
    if event.outcome == Outcome.renamed:
        return Applied(_rename(session, event))
    links = _matching(session, event)
    if not links:
        return Applied()
    if event.outcome == Outcome.deleted:
        return Applied(len(links), steps=_unlink_deleted(session, event, links))
    _follow(session, event, links)
    if event.outcome == Outcome.moved:
        return Applied(len(links))
    if event.outcome in (Outcome.started, Outcome.update):  # progress to reporters (issue #28): bot/progress
        from bot.progress.service import steps_for

        return Applied(len(links), steps=steps_for(session=session, event=event, links=links, index=index))
    at = believable_time(parse_time(event.at), received_at)
    fresh = [lnk for lnk in links if at is None or lnk.state_at is None or at >= as_utc(lnk.state_at)]
    if at is not None:
        _set(session, TrackerLink, fresh, state_at=at)
    if event.outcome == Outcome.reopened:
        reopening = [lnk for lnk in fresh if lnk.closed]
        _set(session, TrackerLink, reopening, closed=False)
        head = dict(do="reopen", event=index, links=[lnk.id for lnk in reopening])
        return Applied(len(links), steps=[dict(head, points=c) for c in _chunks(_targets(session, reopening))])
    closing = [lnk for lnk in fresh if not lnk.closed]
    if not closing:
        return Applied(len(links))
    closure = max(link.closures for link in links) + 1
    _set(session, TrackerLink, closing, closed=True, closures=closure, closed_at=utcnow())
    points = _targets(session, closing)
    owners = _reporters(session, points)
    head = dict(event=index, closure=closure, links=[lnk.id for lnk in closing])
    steps = [dict(head, do="close", points=c) for c in _chunks(points)]
    steps += [dict(head, do="notify", owners=c) for c in _chunks([[u, p] for u, p in owners.items()])]
    steps.append(dict(head, do="announce", points=points[:20], reporters=len(owners)))
    return Applied(len(links), closure, steps)


def believable_time(at: datetime | None, received_at: datetime | None = None) -> datetime | None:
    """``at``, or the receipt time when ``at`` is implausibly far ahead of it (see ``MAX_CLOCK_SKEW``)."""
    if at is None:
        return None
    received = as_utc(received_at) if received_at is not None else utcnow()
    return received if at > received + MAX_CLOCK_SKEW else at


def _unlink_deleted(session: Session, event: IssueEvent, links: list[TrackerLink]) -> list[dict]:
    """The issue was deleted in its tracker: no closure can come. Its links are removed here; each
    report it was linked to gets one ``deleted`` step (history entry, back to the queue when that
    was its only link and it is open, its card redrawn, the hosts told in the card's thread). Its
    reporters are told nothing: nothing was fixed, and a host decides what happens next."""
    points = sorted({lnk.friction_point_id for lnk in links})
    for chunk in _chunks([lnk.id for lnk in links]):
        session.execute(delete(TrackerLink).where(col(TrackerLink.id).in_(chunk)).execution_options(synchronize_session=False))
    for link in links:
        session.expunge(link)
    log.info("%s %s was deleted: %d link(s) removed", event.tracker, event.key, len(links))
    return [dict(do="deleted", event=0, points=c) for c in _chunks(points)]


def _deleted(session: Session, event: IssueEvent, step: dict, policy) -> None:
    now = utcnow()
    rows = session.exec(select(FrictionPoint).where(col(FrictionPoint.id).in_(step["points"]))
                        .options(selectinload(FrictionPoint.links))  # type: ignore[arg-type]  # SQLModel types a relationship as its Python value
                        .execution_options(populate_existing=True)).all()
    for point in rows:
        old = point.status
        if point.status == Status.linked and not point.links:
            point.status = Status.acknowledged if point.assignee else Status.new
            point.updated_at = now
            session.add(point)
        session.add(FrictionChange(friction_point_id=point.id, actor=f"tracker:{event.tracker}", action=ChangeAction.issue_deleted,
                                   old=str(old), new=str(point.status), note=f"{event.tracker}:{event.key}", at=now))
        why = f"deleted:{event.tracker}:{event.key}:{now.isoformat()}"
        sync_card(session=session, point=point, why=why)
        if point.card_ts:
            ref = format_ref(policy.reference_prefix, point.id)
            outbox.enqueue(session=session, dedupe_key=f"issue-deleted:{point.id}:{why}", method="chat.postMessage",
                           payload={"channel": point.card_channel, "thread_ts": point.card_ts,
                                    **build_issue_deleted_alert(ref, point, str(event.tracker), event.key, back=old != point.status)},
                           friction_point_id=point.id)


def run_step(*, session: Session, event: IssueEvent, step: dict, policy) -> None:
    """Do one step an event owes (``Applied.steps``). A step whose links have moved on since (closed
    again, or reopened, by a later delivery) is dropped: state only moves forward. Every write is
    keyed (history per step, notices unique per reporter and closure, outbox dedupe keys), and the
    caller records the step as done in the same transaction."""
    if not _still_current(session, step):
        log.info("%s %s: %s step superseded by a later change", event.tracker, event.key, step["do"])
        return
    from bot.progress.service import STEPS as PROGRESS_STEPS

    {"close": _close, "reopen": _reopen, "notify": _notify, "announce": _announce, "queue": _queue_notices,
     "deleted": _deleted, **PROGRESS_STEPS}[step["do"]](
        session, event, step, policy)


def _chunks(items: list) -> list[list]:
    return [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]


def _still_current(session: Session, step: dict) -> bool:
    """The step's links are still as its event left them (open; or closed at its closure)."""
    if "links" not in step:  # notices written before steps existed (migration 0013), and deletions (their links are gone)
        return True
    stmt = select(func.count()).select_from(TrackerLink).where(col(TrackerLink.id).in_(step["links"]))
    if step["do"] == "reopen":
        stmt = stmt.where(col(TrackerLink.closed).is_(False))
    else:
        stmt = stmt.where(col(TrackerLink.closed).is_(True), TrackerLink.closures == step["closure"])
    return session.exec(stmt).one() > 0


def _close(session: Session, event: IssueEvent, step: dict, policy) -> None:
    """The step's reports that are still open become resolved (fixed) or won't fix; every card redrawn."""
    now, new = utcnow(), Status.resolved if event.outcome == Outcome.fixed else Status.wont_fix
    rows = session.exec(select(FrictionPoint.id, FrictionPoint.status, FrictionPoint.first_response_at, FrictionPoint.card_ts)
                        .where(col(FrictionPoint.id).in_(step["points"]))).all()
    still_open = [(point_id, status, responded) for point_id, status, responded, _ in rows if status not in DECIDED]
    _update(session, [point_id for point_id, _, _ in still_open], status=new, resolved_at=now, updated_at=now)
    _update(session, [point_id for point_id, _, responded in still_open if responded is None], first_response_at=now)
    if still_open:
        session.execute(insert(FrictionChange), [
            dict(friction_point_id=point_id, actor=f"tracker:{event.tracker}", action=ChangeAction.closed, old=str(status), new=str(new),
                 note=event.url, at=now) for point_id, status, _ in still_open])
    sync_cards(session=session, point_ids=[point_id for point_id, _, _, card_ts in rows if card_ts],
               why=f"closure:{event.tracker}:{event.key}:{step['closure']}")


def _reopen(session: Session, event: IssueEvent, step: dict, policy) -> None:
    """The step's closed reports go back to linked, and their cards are redrawn."""
    now = utcnow()
    rows = session.exec(select(FrictionPoint.id, FrictionPoint.status, FrictionPoint.card_ts)
                        .where(col(FrictionPoint.id).in_(step["points"]))).all()
    reopened = [(point_id, status, card_ts) for point_id, status, card_ts in rows if status in DECIDED]
    if not reopened:
        return
    _update(session, [point_id for point_id, _, _ in reopened], status=Status.linked, resolved_at=None, updated_at=now)
    session.execute(insert(FrictionChange), [
        dict(friction_point_id=point_id, actor=f"tracker:{event.tracker}", action=ChangeAction.reopened, old=str(status),
             new=str(Status.linked), note=event.url, at=now) for point_id, status, _ in reopened])
    # Keyed by the change's time: each reopen is its own redraw.
    sync_cards(session=session, point_ids=[point_id for point_id, _, card_ts in reopened if card_ts],
               why=f"reopen:{event.tracker}:{event.key}:{now.isoformat()}")


def _notify(session: Session, event: IssueEvent, step: dict, policy) -> None:
    """One notice per reporter in the step (unique per reporter and closure), each queued as a DM."""
    now = utcnow()
    rows = [dict(friction_point_id=point_id, user_id=user_id, tracker=str(event.tracker), key=event.key,
                 closure=step["closure"], outcome=str(event.outcome), created_at=now) for user_id, point_id in step["owners"]]
    stmt = insert_or_skip(session, ClosureNotice).returning(ClosureNotice.id, ClosureNotice.user_id)
    ids = dict((user, i) for i, user in session.execute(stmt, rows).all())
    _queue(session, event, [Notice(ids[r["user_id"]], r["user_id"], r["friction_point_id"], r["key"], r["outcome"])
                            for r in rows if r["user_id"] in ids], policy)


def _announce(session: Session, event: IssueEvent, step: dict, policy) -> None:
    """"You said, we did" in the announcement channel, once per closure (when the policy asks)."""
    channel = policy.closing.announce_channel
    if not channel or policy.closing.announce != "per_closure" or event.outcome != Outcome.fixed or not step["points"]:
        return
    points = list(session.exec(select(FrictionPoint).where(col(FrictionPoint.id).in_(step["points"]))
                               .options(lazyload("*")).order_by(col(FrictionPoint.id))).all())
    if not points:
        return
    post = build_announcement(policy.reference_prefix, event.key, event.url, event.title, points, step["reporters"])
    outbox.enqueue(session=session, dedupe_key=f"announce:{event.tracker}:{event.key}:{step['closure']}",
                   method="chat.postMessage", payload={"channel": channel, **post})


def _queue(session: Session, event: IssueEvent, notices: list[Notice], policy) -> None:
    """Queue each notice's "you reported this, it's fixed" DM (once: keyed by the notice's id)."""
    points = {p.id: p for p in session.exec(select(FrictionPoint)
                                            .options(selectinload(FrictionPoint.reporters))  # type: ignore[arg-type]  # as above
                                            .where(col(FrictionPoint.id).in_({n.friction_point_id for n in notices})))}
    messages = []
    for notice in notices:
        point = points.get(notice.friction_point_id)
        if point is None:
            continue  # erased since (retention)
        message = build_closure_notice(format_ref(policy.reference_prefix, point.id), point, notice, event.url, event.title,
                                       not_planned_message=policy.closing.not_planned_message)
        messages.append(dict(dedupe_key=f"closure-notice:{notice.id}", method="chat.postMessage",
                             payload={"channel": notice.user_id, **message}, friction_point_id=point.id,
                             workspace=point.reporter_workspace(notice.user_id)))
    outbox.enqueue_many(session=session, messages=messages)


def _queue_notices(session: Session, event: IssueEvent, step: dict, policy) -> None:
    rows = session.exec(select(ClosureNotice).where(col(ClosureNotice.id).in_(step["notices"]))).all()
    _queue(session, event, [Notice(n.id, n.user_id, n.friction_point_id, n.key, n.outcome) for n in rows], policy)


def _update(session: Session, ids: list[int], *, model=FrictionPoint, **values) -> None:
    """One UPDATE of ``model`` per ``CHUNK`` ids."""
    for chunk in _chunks(ids):
        session.execute(update(model).where(col(model.id).in_(chunk)).values(**values)
                        .execution_options(synchronize_session=False))


def _matching(session: Session, event: IssueEvent) -> list[TrackerLink]:
    ids = [i for i in (event.issue_id, *event.old_ids) if i]
    found = link_queries.matching_links(session=session, tracker=event.tracker, keys=[event.key, *event.old_keys], ids=ids)
    # Identity first: a link that knows its issue's id is only that issue, whatever its key says.
    return [lnk for lnk in found if lnk.issue_id is None or not event.issue_id or lnk.issue_id in ids]


def _follow(session: Session, event: IssueEvent, links: list[TrackerLink]) -> None:
    """Fill in the issue's stable ids and follow a new key (transfer, project or team move)."""
    if event.issue_id:
        _set(session, TrackerLink, [lnk for lnk in links if lnk.issue_id != event.issue_id], issue_id=event.issue_id)
    if event.project_id:
        _set(session, TrackerLink, [lnk for lnk in links if lnk.project_id != event.project_id], project_id=event.project_id)
    taken = {(lnk.friction_point_id, lnk.key) for lnk in links}
    for link in links:
        if link.key != event.key and (link.friction_point_id, event.key) not in taken:
            taken.add((link.friction_point_id, event.key))
            log.info("%s link %s now follows %s", event.tracker, link.key, event.key)
            link.key = event.key
            if event.url:
                link.url = event.url[:3000]
            session.add(link)


def _set(session: Session, model, rows: list, **values) -> None:
    """``_update`` of ``rows`` (objects of ``model``), and the same values on the objects
    (evaluating the UPDATE against the session's objects instead costs seconds for thousands)."""
    _update(session, [row.id for row in rows], model=model, **values)
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


def record_feedback(*, session: Session, notice_id: int, user_id: str, works: bool, comment: str | None = None) -> tuple[ClosureNotice, FrictionPoint] | None:
    """The reporter's answer to a notice. "Still broken" puts the report back in the triage queue:
    the one it was merged into when it is a duplicate (``_canonical``), which is the one returned."""
    notice = session.get(ClosureNotice, notice_id)
    if notice is None or notice.user_id != user_id:
        return None
    notice.feedback = "works" if works else "broken"
    notice.feedback_at = utcnow()
    notice.comment = comment
    session.add(notice)
    point = _canonical(session, notice.friction_point_id)
    if not works:
        old = point.status
        if point.status in DECIDED:
            point.status = Status.acknowledged if point.assignee else Status.new
            point.resolved_at = None
            point.updated_at = utcnow()
            session.add(point)
        session.add(FrictionChange(friction_point_id=point.id, actor=user_id, action=ChangeAction.still_broken, old=old, new=point.status, note=comment))
    else:
        session.add(FrictionChange(friction_point_id=point.id, actor=user_id, action=ChangeAction.works_for_me))
    session.flush()
    return notice, point


def _canonical(session: Session, point_id: int) -> FrictionPoint:
    """The report a notice's answer belongs to, locked: the notice names the reporter's own report
    (their words), but a duplicate merged into another is closed, reopened and watched as that one
    (its card, its hosts). Followed through at most a few merges."""
    point = session.exec(select(FrictionPoint).where(FrictionPoint.id == point_id).with_for_update()).one()
    for _ in range(5):
        if point.duplicate_of_id is None:
            break
        into = session.exec(select(FrictionPoint).where(FrictionPoint.id == point.duplicate_of_id).with_for_update()).first()
        if into is None:  # purged since: the duplicate is all there is
            break
        point = into
    return point


def answer_notice(*, session: Session, notice_id: int, user_id: str, works: bool, comment: str | None, prefix: str) -> str | None:
    """Record the answer; "still broken" alerts the hosts in the card's thread of the report that is
    back in the queue (a merged duplicate's canonical report). Returns that report's ref."""
    recorded = record_feedback(session=session, notice_id=notice_id, user_id=user_id, works=works, comment=comment)
    if recorded is None:
        return None
    notice, point = recorded
    ref = format_ref(prefix, point.id)
    if not works:
        sync_card(session=session, point=point, why=f"broken:{notice.id}")
        if point.card_ts:
            outbox.enqueue(session=session, dedupe_key=f"still-broken:{notice.id}", method="chat.postMessage",
                           payload={"channel": point.card_channel, "thread_ts": point.card_ts,
                                    **build_still_broken_alert(ref, point, user_id, comment)},
                           friction_point_id=point.id)
    return ref


# ------------------------------------------------------------------ deliveries and polls


def apply_and_queue(*, session: Session, event: IssueEvent, policy) -> Applied:
    """Apply a tracker event and everything it owes in this one transaction (the poller's path:
    nobody waits on it). Repeats of the same news queue nothing."""
    applied = apply_issue_event(session=session, event=event)
    for step in applied.steps:
        run_step(session=session, event=event, step=step, policy=policy)
    return applied


@dataclass
class DeliveryResult:
    """What applying one recorded delivery did, per event: (tracker, key, "applied" | "unchanged" | "unmatched")."""

    outcomes: list[tuple[str, str, str]] = field(default_factory=list)
    steps: int = 0  # steps owed, run afterwards one transaction each (``run_steps``)

    @property
    def closures(self) -> int:
        return sum(1 for *_, o in self.outcomes if o == "applied")

    @property
    def outcome(self) -> str | None:
        """The delivery's as a whole: "applied" when an event closed links, "unchanged" when one
        matched a link, else "unmatched" (None: no events). A merged pull request names itself as
        well as the issues it closes; nobody links the pull request, and that is no miss."""
        found = {o for *_, o in self.outcomes}
        return next((o for o in ("applied", "unchanged", "unmatched") if o in found), None)


def apply_delivery(*, session: Session, delivery_id: int) -> DeliveryResult | None:
    """Apply a recorded delivery's events to the links once (None: applied already, by this or
    another instance). The steps they owe are recorded on the delivery and run by ``run_steps``
    in short transactions (on SQLite a long one would hold up every other write, the next
    delivery's answer included)."""
    delivery = link_queries.claim_delivery(session=session, delivery_id=delivery_id)
    if delivery is None:
        return None
    result = DeliveryResult()
    if delivery.work is not None:  # applied; its steps were running when we stopped
        result.steps = len(json.loads(delivery.work)) - delivery.done
        return result
    steps = []
    events = [IssueEvent.from_json(data) for data in json.loads(delivery.events)]
    known = _known(session, events)
    for index, event in enumerate(events):
        if event.outcome != Outcome.renamed and not known & {event.key, *event.old_keys, event.issue_id, *event.old_ids} - {None}:
            # No link has any key or id it names: nothing to lock or change (a body naming fifty
            # issues nobody linked costs one query, not fifty).
            result.outcomes.append((str(event.tracker), event.key, "unmatched"))
            continue
        applied = apply_issue_event(session=session, event=event, index=index, received_at=delivery.received_at)
        for step in applied.steps:
            step["event"] = index
        outcome = "applied" if applied.closure else "unchanged" if applied.matched else "unmatched"
        result.outcomes.append((str(event.tracker), event.key, outcome))
        steps += applied.steps
    delivery.work, delivery.done = json.dumps(steps), 0
    if not steps:
        delivery.applied_at = utcnow()
    session.add(delivery)
    result.steps = len(steps)
    return result


def names_a_link(*, session: Session, events: list[IssueEvent]) -> bool:
    """Whether applying ``events`` could change anything: one of them renames an issue, or some
    link of their tracker has a key or id one names. One read (``Database.read``): an org-wide
    webhook's merged PRs mostly name issues nobody linked, and such a delivery is answered without
    being recorded (``bot.closing.webhooks``)."""
    return any(e.outcome == Outcome.renamed for e in events) or bool(_known(session, events))


def _known(session: Session, events: list[IssueEvent]) -> set[str]:
    """The keys and ids, of those the events name, that some link of their tracker has."""
    if not events:
        return set()
    keys = sorted({k for e in events for k in (e.key, *e.old_keys)})
    ids = sorted({i for e in events for i in (e.issue_id, *e.old_ids) if i})
    condition: ColumnElement[bool] = col(TrackerLink.key).in_(keys)
    if ids:
        condition = condition | col(TrackerLink.issue_id).in_(ids)
    rows = session.exec(select(TrackerLink.key, TrackerLink.issue_id)
                        .where(TrackerLink.tracker == str(events[0].tracker), condition)).all()
    return {value for row in rows for value in row if value}


def run_steps(*, session: Session, delivery_id: int, policy, limit: int = 1) -> int:
    """Run the next ``limit`` steps a delivery owes, and count them done in the same transaction;
    returns how many remain (0: the delivery is applied)."""
    delivery = link_queries.claim_delivery(session=session, delivery_id=delivery_id)
    if delivery is None or delivery.work is None:
        return 0
    steps, events = json.loads(delivery.work), [IssueEvent.from_json(e) for e in json.loads(delivery.events)]
    for step in steps[delivery.done:delivery.done + limit]:
        run_step(session=session, event=events[step["event"]], step=step, policy=policy)
    delivery.done = min(len(steps), delivery.done + limit)
    if delivery.done >= len(steps):
        delivery.applied_at = utcnow()
    session.add(delivery)
    return len(steps) - delivery.done
