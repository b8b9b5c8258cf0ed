"""Response targets on stored reports: their clocks from the history, waiting for the reporter,
warnings and breaches queued once each. No Slack in here: messages
go through the outbox, whose unique dedupe key makes each warning and breach go out once per report,
clock and threshold across instances and restarts.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from bot.policy import Policy
from bot.references import format_ref
from bot.targets.blocks import build_breach_dm, build_target_alert
from bot.targets.compliance import record_breach, settle
from bot.targets.service import (  # noqa: F401  (the clock facts, re-exported)
    ANSWERED,
    CLOCK_CHANGES,
    CYCLE_ENDS,
    REOPENED,
    STILL_BROKEN,
    WAITING,
    Clock,
    ClockKind,
    ClockState,
    Threshold,
    calendar_for,
    clock_state,
    ends_cycle,
    is_reopen,
    pauses_since,
    target_for,
    waiting_in,
)
from bot.triage.service import TriageError, lock_point, sync_card
from storage import outbox
from storage.models import CLOSED, ChangeAction, FrictionChange, FrictionPoint, OutboxMessage, Reporter, as_utc, utcnow

log = logging.getLogger(__name__)
# Open reports are a working queue (hundreds), not the archive: a tick reads at most this many.
MAX_OPEN = 5000


class TargetError(Exception):
    """The action cannot apply; ``str()`` is what the person is told."""


@dataclass(frozen=True)
class PointClocks:
    point: FrictionPoint
    states: tuple[ClockState, ...]  # the clocks that have a target, first response first
    cycle: int  # how many times the report was reopened: each reopen starts a new resolution clock

    def running(self) -> tuple[ClockState, ...]:
        return tuple(s for s in self.states if not s.stopped)

    def next_due(self) -> datetime | None:
        dues = [s.due_at for s in self.running() if s.due_at is not None]
        return min(dues) if dues else None










def clocks_for(point: FrictionPoint, changes: list[FrictionChange]) -> tuple[Clock, Clock, int]:
    """The first-response and resolution clocks of ``point`` from its ``changes`` (in time order),
    and the resolution cycle (0, then 1 after the first reopen...)."""
    filed = as_utc(point.created_at)
    reopens = [as_utc(c.at) for c in changes if is_reopen(c)]
    res_start = reopens[-1] if reopens else filed
    first = Clock(ClockKind.first_response, filed, as_utc(point.first_response_at) if point.first_response_at else None, pauses_since(changes, filed))
    resolved = as_utc(point.resolved_at) if point.resolved_at and point.status in CLOSED else None
    resolution = Clock(ClockKind.resolution, res_start, resolved if resolved and resolved >= res_start else None, pauses_since(changes, res_start))
    return first, resolution, len(reopens)


def point_clocks(point: FrictionPoint, changes: list[FrictionChange], policy: Policy, now: datetime) -> PointClocks:
    """Where ``point``'s clocks stand at ``now`` under the policy's targets (none: empty)."""
    targets = policy.targets
    if not targets.enabled:
        return PointClocks(point, (), 0)
    calendar = calendar_for(targets)
    first, resolution, cycle = clocks_for(point, changes)
    states = []
    for clock in (first, resolution):
        target = target_for(targets, str(point.severity), clock.kind, calendar)
        if target is not None:
            states.append(clock_state(calendar, clock, target, now, warn_share=targets.warn_at))
    return PointClocks(point, tuple(states), cycle)


def changes_by_point(session: Session, point_ids: list[int]) -> dict[int, list[FrictionChange]]:
    found: dict[int, list[FrictionChange]] = defaultdict(list)
    if not point_ids:
        return found
    rows = session.exec(
        select(FrictionChange)
        .where(col(FrictionChange.friction_point_id).in_(point_ids), col(FrictionChange.action).in_(CLOCK_CHANGES))
        .order_by(col(FrictionChange.at), col(FrictionChange.id))
    ).all()
    for row in rows:
        found[row.friction_point_id].append(row)
    return found


def open_clocks(*, session: Session, policy: Policy, now: datetime | None = None) -> list[PointClocks]:
    """Every open report's clocks, what is due first first (paused and target-less ones last)."""
    now = now or utcnow()
    points = list(
        session.exec(
            select(FrictionPoint)
            .where(col(FrictionPoint.status).not_in(CLOSED), col(FrictionPoint.duplicate_of_id).is_(None))
            .order_by(col(FrictionPoint.created_at))
            .limit(MAX_OPEN)
        ).all()
    )
    changes = changes_by_point(session, [p.id for p in points])
    clocks = [point_clocks(p, changes.get(p.id, []), policy, now) for p in points]
    far = datetime.max.replace(tzinfo=now.tzinfo)
    return sorted(clocks, key=lambda c: c.next_due() or far)


def clocks_of(*, session: Session, point: FrictionPoint, policy: Policy, now: datetime | None = None) -> PointClocks:
    """One report's clocks (for its card)."""
    return point_clocks(point, changes_by_point(session, [point.id]).get(point.id, []), policy, now or utcnow())


# ------------------------------------------------------------------ waiting for the reporter


def _waiting(session: Session, point_id: int) -> bool:
    """Whether the report's latest question still waits: only the changes since its last question count."""
    asked = session.exec(
        select(FrictionChange)
        .where(FrictionChange.friction_point_id == point_id, FrictionChange.action == WAITING)
        .order_by(col(FrictionChange.at).desc(), col(FrictionChange.id).desc())
        .limit(1)
    ).first()
    if asked is None:
        return False
    since = session.exec(
        select(FrictionChange)
        .where(FrictionChange.friction_point_id == point_id, col(FrictionChange.action).in_(CLOCK_CHANGES),
               col(FrictionChange.at) >= asked.at)
        .order_by(col(FrictionChange.at), col(FrictionChange.id))
    ).all()
    return waiting_in(c for c in since if (as_utc(c.at), c.id) >= (as_utc(asked.at), asked.id))


def is_waiting(*, session: Session, point_id: int) -> bool:
    return _waiting(session, point_id)


def ask_reporter(*, session: Session, point: FrictionPoint, actor: str, question: str | None) -> FrictionChange:
    """A host waits for the reporter: both clocks pause until the reporter answers. The caller
    holds the point's lock and has checked that ``actor`` is a host. TargetError if it is closed or
    already waiting."""
    if point.status in CLOSED or point.duplicate_of_id is not None:
        raise TargetError("That report is closed: there is nothing to wait for.")
    if _waiting(session, point.id):
        raise TargetError("That report is already waiting for the reporter.")
    entry = FrictionChange(friction_point_id=point.id, actor=actor, action=WAITING, note=question)
    session.add(entry)
    if point.first_response_at is None:  # asking the reporter a question is a host's response
        point.first_response_at = entry.at
    point.updated_at = entry.at
    session.add(point)
    session.flush()
    return entry


def reporter_answered(*, session: Session, point: FrictionPoint, user: str) -> FrictionChange | None:
    """``user`` answered (a thread reply, a DM reply, "Add details"): if they are one of the point's
    reporters and it waits for them, the clocks run again. None: nothing changed."""
    if user not in {r.user_id for r in point.reporters} or not _waiting(session, point.id):
        return None
    entry = FrictionChange(friction_point_id=point.id, actor=user, action=ANSWERED)
    session.add(entry)
    session.flush()
    return entry


# ------------------------------------------------------------------ warnings and breaches


def check_targets(
    *,
    session: Session,
    policy: Policy,
    now: datetime,
    on_duty: str | None,
) -> int:
    """Queue each warning and breach that has fallen due and was not queued before (dedupe keys
    ``target:{point}:{clock}:{cycle}:{target in force}:{threshold}:{to}``, the target in force e.g.
    ``medium-360m``, so a severity change that brings another target brings its own warning and
    breach, and going back to a target already alerted on says nothing twice): a warning in the card's thread to the
    assignee, or the host on duty; at a breach the same thread, a DM to that person, and a DM to each
    of ``targets.escalate_to``'s users (its user group is named in the thread). Each also queues
    the card's redraw so it shows the new state. Returns how many alerts were queued."""
    from storage.targets import known

    queued = 0
    prefix = policy.reference_prefix
    every = open_clocks(session=session, policy=policy, now=now)
    counted = known(session=session, point_ids=[c.point.id for c in every if (due := c.next_due()) is not None and due <= now])
    for clocks in every:
        point = clocks.point
        owner = point.assignee or on_duty
        for state in clocks.running():
            for threshold in (Threshold.warning, Threshold.breach):
                if not state.passed(threshold, now):
                    continue
                cycle = clocks.cycle if state.kind is ClockKind.resolution else 0
                if threshold is Threshold.breach and (point.id, str(state.kind), cycle) not in counted:
                    record_breach(session=session, point=point, state=state, cycle=cycle)  # counted in compliance from now on
                key = f"target:{point.id}:{state.kind}:{cycle}:{in_force(point, state)}:{threshold}"
                if _sent_before_keys_named_targets(session, point.id, f"target:{point.id}:{state.kind}:{cycle}:{threshold}"):
                    continue
                alert = build_target_alert(format_ref(prefix, point.id), point.text, state, threshold, now, owner=owner,
                                           escalate_group=policy.targets.escalate_to.usergroup if threshold is Threshold.breach else None)
                channel = point.card_channel or policy.triage.channel
                thread = {"thread_ts": point.card_ts} if point.card_ts else {}
                if channel and outbox.enqueue(session=session, dedupe_key=f"{key}:thread", method="chat.postMessage",
                                              payload={"channel": channel, **thread, **alert}, friction_point_id=point.id):
                    queued += 1
                    sync_card(session=session, point=point, why=key)
                if threshold is Threshold.breach:
                    people = ([owner] if owner else []) + list(policy.targets.escalate_to.users)
                    for person in dict.fromkeys(people):
                        dm = build_breach_dm(format_ref(prefix, point.id), point.text, state, now, permalink=None)
                        queued += outbox.enqueue(session=session, dedupe_key=f"{key}:dm:{person}", method="chat.postMessage",
                                                 payload={"channel": person, **dm}, friction_point_id=point.id)
    return queued


def _sent_before_keys_named_targets(session: Session, point_id: int, legacy: str) -> bool:
    """Whether this alert went out under the key without the target in force (before issue #30),
    for the target still in force: no severity change since. Without this, upgrading would send
    each alert of an open report again once."""
    sent = session.exec(select(OutboxMessage.created_at).where(OutboxMessage.dedupe_key == f"{legacy}:thread")).first()
    if sent is None:
        return False
    return session.exec(select(FrictionChange.id).where(FrictionChange.friction_point_id == point_id, FrictionChange.action == ChangeAction.severity,
                                                        col(FrictionChange.at) > sent).limit(1)).first() is None


def in_force(point: FrictionPoint, state: ClockState) -> str:
    """The target a clock runs against, as it goes in an alert's key: ``medium-360m``."""
    return f"{point.severity}-{int(state.target.total_seconds() // 60)}m"


def check_job(*, session: Session, occurrence: datetime, policy: Policy) -> None:
    """The scheduled job: ``check_targets`` at the tick's time, the host on duty then told when
    nobody is assigned; then the clocks that stopped since are measured (``compliance.settle``)."""

    queued = check_targets(session=session, policy=policy, now=occurrence, on_duty=on_duty_at(policy, occurrence))
    if queued:
        log.info("response targets: %d warning(s) or breach(es) queued", queued)
    settled = settle(session=session, policy=policy)
    if settled:
        log.info("response targets: %d stopped clock(s) measured", settled)


# ------------------------------------------------------------------ operations a handler calls

def wait_for_reporter(*, session: Session, point_id: int, actor: str, question: str, prefix: str) -> FrictionPoint:
    """A host asks the reporters a question: the clocks pause, each reporter gets the question by DM
    (once, through the outbox) with a Reply button, and the card is redrawn. TargetError if the point
    does not exist, is closed or already waits."""
    from bot.targets.blocks import build_question_dm
    try:
        point = lock_point(session=session, point_id=point_id)
    except TriageError:
        raise TargetError(f"There is no {format_ref(prefix, point_id)}.") from None
    entry = ask_reporter(session=session, point=point, actor=actor, question=question)
    for reporter in point.reporters:
        outbox.enqueue(session=session, dedupe_key=f"question:{entry.id}:{reporter.user_id}", method="chat.postMessage",
                       payload={"channel": reporter.user_id, **build_question_dm(format_ref(prefix, point.id), point.id, actor, question)},
                       friction_point_id=point.id, workspace=reporter.workspace)
    sync_card(session=session, point=point, why=f"waiting:{entry.id}")
    return point


def answer_as_reporter(*, session: Session, point_id: int, user: str, answer: str, prefix: str) -> FrictionChange | None:
    """A reporter answers (the Reply modal, a reply in the report's thread, a DM): the clocks run
    again and the answer goes to the card's thread. Returns the history entry; None when the point
    is not theirs or does not wait for them (nothing changed)."""
    from bot.targets.blocks import build_reporter_answer
    try:
        point = lock_point(session=session, point_id=point_id)
    except TriageError:
        return None
    entry = reporter_answered(session=session, point=point, user=user)
    if entry is None:
        return None
    entry.note = answer
    session.add(entry)
    if point.card_channel and point.card_ts:
        outbox.enqueue(session=session, dedupe_key=f"answer:{entry.id}", method="chat.postMessage",
                       payload={"channel": point.card_channel, "thread_ts": point.card_ts,
                                **build_reporter_answer(format_ref(prefix, point.id), user, answer)},
                       friction_point_id=point.id)
    sync_card(session=session, point=point, why=f"answered:{entry.id}")
    return entry


def answer_in_thread(*, session: Session, channel: str, thread_ts: str, user: str, text: str, prefix: str) -> bool:
    """A reply in the thread of the message a report was filed from (a reaction, a help-channel
    question): the reporter's answer if that report waits for them. False: nothing changed."""
    point_id = session.exec(select(FrictionPoint.id).where(FrictionPoint.intake_key == f"message:{channel}:{thread_ts}")).first()
    return point_id is not None and answer_as_reporter(session=session, point_id=point_id, user=user, answer=text, prefix=prefix) is not None


def answer_by_dm(*, session: Session, user: str, text: str, dm_channel: str, prefix: str, workspace=None) -> FrictionPoint | None:
    """A DM from a reporter while one of their reports waits for them (the question came by DM):
    the answer to the latest such question, confirmed once in the DM. None: nothing waits for them,
    so the DM is a new report."""
    from bot.targets.blocks import build_answer_received

    asked = session.exec(
        select(FrictionChange.friction_point_id)
        .join(Reporter, col(Reporter.friction_point_id) == col(FrictionChange.friction_point_id))
        .where(Reporter.user_id == user, FrictionChange.action == WAITING)
        .order_by(col(FrictionChange.at).desc(), col(FrictionChange.id).desc()).limit(20)
    ).all()
    for point_id in dict.fromkeys(asked):
        entry = _waiting(session, point_id) and answer_as_reporter(session=session, point_id=point_id, user=user, answer=text, prefix=prefix)
        if entry:
            outbox.enqueue(session=session, dedupe_key=f"answer-received:{entry.id}", method="chat.postMessage",
                           payload={"channel": dm_channel, **build_answer_received(format_ref(prefix, point_id))},
                           friction_point_id=point_id, workspace=workspace)
            return session.get(FrictionPoint, point_id)
    return None


def on_duty_at(policy: Policy, now: datetime) -> str | None:
    """The host of the office-hours session that started most recently (the rotation's), if any."""
    from bot.office_hours import service as oh

    sessions = policy.office_hours.sessions
    if not sessions or not policy.office_hours.rotation:
        return None
    before = policy.office_hours.agenda_before_minutes
    latest = max((oh.latest(s, before, now, when="start") for s in sessions), key=lambda occ: occ.start)
    return oh.host_on_duty(policy.office_hours, latest)
