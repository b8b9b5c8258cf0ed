"""Filing a report: the data point and, in the same transaction, the messages it calls for. Plain
functions on a session; no Slack in here. (Apart from ``bot.intake.service`` because the intake
blocks import that module.)"""

from sqlmodel import Session

from bot.intake.blocks import build_filed_message, build_thread_reply
from bot.intake.ids import IntakeBlock
from bot.references import format_ref
from bot.targets import alerts as target_alerts
from bot.triage import service as triage
from bot.triage.service import enqueue_card, sync_card
from storage import friction, outbox
from storage.friction import Filed, FrictionDraft
from storage.models import CLOSED, ChangeAction, FrictionChange, FrictionPoint, Severity, Status, utcnow


def file_report(
    *,
    session: Session,
    draft: FrictionDraft,
    prefix: str,
    triage_channel: str | None,
    confirm_by_dm: bool = False,
    event_id: str | None = None,
    thread_ts: str | None = None,
    unread_note: str | None = None,
) -> Filed | None:
    """File the data point and, in the same transaction, queue what it calls for: its triage card,
    the reporter's DM confirmation, the reply in the message's thread, and with ``unread_note`` (the
    message itself could not be read) a DM telling the person who filed it, with the reference and
    an Add details button. A repeated intake (same key, same event id) queues nothing again.
    None: this event id was handled before."""
    if event_id is not None and not friction.first_delivery(session=session, event_id=event_id):
        return None
    filed = friction.file_friction(session=session, draft=draft)
    if not filed.created:
        return filed
    point, ref = filed.point, format_ref(prefix, filed.point.id)
    enqueue_card(session=session, point_id=point.id, channel=triage_channel)
    if confirm_by_dm:
        outbox.enqueue(
            session=session,
            dedupe_key=f"filed-dm:{point.id}",
            method="chat.postMessage",
            payload={"channel": draft.reporter_id, **build_filed_message(ref, point, with_details_button=False)},
            friction_point_id=point.id,
            workspace=draft.workspace,
        )
    if unread_note is not None:
        outbox.enqueue(
            session=session,
            dedupe_key=f"unread-dm:{point.id}",
            method="chat.postMessage",
            payload={"channel": draft.filed_by,
                     **build_filed_message(ref, point, with_details_button=True, note=unread_note)},
            friction_point_id=point.id,
            workspace=draft.workspace,
        )
    if thread_ts is not None:
        outbox.enqueue(
            session=session,
            dedupe_key=f"thread-reply:{point.id}",
            method="chat.postMessage",
            payload={"channel": draft.channel_id, "thread_ts": thread_ts, **build_thread_reply(ref, draft.filed_by)},
            friction_point_id=point.id,
            workspace=draft.workspace,
        )
    return filed


# ------------------------------------------------------------------ Add details

DETAILS = ChangeAction.details  # a reporter's own change; ``note`` names the field


class DetailsRefused(Exception):
    """The reporter may not make this change. ``errors``: what to show, keyed by the modal's block
    ids (``Block``); ``str()`` is the first of them."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(next(iter(errors.values())))
        self.errors = errors


def details_point(*, session: Session, point_id: int, user: str, prefix: str) -> FrictionPoint:
    """The report ``user`` may add details to: one they filed or reported, still open.
    Raises ``DetailsRefused`` otherwise."""
    point = friction.get_point(session=session, point_id=point_id)
    if point is None:
        raise DetailsRefused({IntakeBlock.text: "That report no longer exists."})
    if user != point.filed_by and user not in {r.user_id for r in point.reporters}:
        raise DetailsRefused({IntakeBlock.text: "That report is no longer yours to edit."})
    if point.status in CLOSED or point.duplicate_of_id is not None:
        raise DetailsRefused({IntakeBlock.text: f"{format_ref(prefix, point.id)} is closed, so it can no longer be edited. "
                                          "If it still gets in your way, please file a new report."})
    return point


def add_details(*, session: Session, point_id: int, user: str, draft: FrictionDraft, prefix: str) -> FrictionPoint:
    """The Add details modal's answers on ``user``'s open report, under its row lock.

    Until a host has touched the report (status ``new``, no first response) the reporter's answers
    replace everything, the automatic guesses included. Once triaged, impact and areas are the
    hosts' call: a change to them is refused (the modal shows why and keeps what was typed), and
    text, time lost, kind and link may still be changed. Each changed field is kept as a
    ``FrictionChange`` (action ``details``, ``note`` the field, ``old``/``new`` its values cut to
    255 characters) and the triage card is refreshed. Raises ``DetailsRefused``."""
    try:  # lock first, then check: a host resolving it meanwhile is seen here
        triage.lock_point(session=session, point_id=point_id)
    except triage.TriageError as exc:
        raise DetailsRefused({IntakeBlock.text: str(exc)}) from exc
    point = details_point(session=session, point_id=point_id, user=user, prefix=prefix)
    chosen = sorted(t.category for t in point.tags if not t.automatic)
    triaged = point.status != Status.new or point.first_response_at is not None
    if triaged:
        ref, errors = format_ref(prefix, point.id), dict[str, str]()
        if Severity(draft.severity) != Severity(point.severity):
            errors[IntakeBlock.severity] = f"A host has triaged {ref}, so its impact is theirs to change now. Ask them in its thread."
        if draft.categories and sorted(set(draft.categories)) != chosen:
            errors[IntakeBlock.categories] = f"A host has triaged {ref}, so its areas are theirs to change now. Ask them in its thread."
        if errors:
            raise DetailsRefused(errors)
    before = _details(point, chosen)
    friction.update_details(session=session, point_id=point.id, draft=draft)
    after = _details(point, sorted(t.category for t in point.tags if not t.automatic))
    changed = [name for name in before if before[name] != after[name]]
    now = utcnow()
    entries = [FrictionChange(friction_point_id=point.id, actor=user, action=DETAILS, note=name,
                              old=_cut(before[name]), new=_cut(after[name]), at=now) for name in changed]
    if entries:
        session.add_all(entries)
        session.flush()
        sync_card(session=session, point=point, why=f"details:{entries[0].id}")
    # Details sent while the team waits for this reporter answer its question: the clocks run again.
    answered = target_alerts.reporter_answered(session=session, point=point, user=user)
    if answered is not None:
        sync_card(session=session, point=point, why=f"answered:{answered.id}")
    return point


def _details(point: FrictionPoint, categories: list[str]) -> dict[str, str | None]:
    return {"text": point.text, "severity": str(point.severity), "minutes_lost": _str(point.minutes_lost),
            "kind": str(point.kind), "link_url": point.link_url, "categories": ",".join(categories) or None}


def _str(value) -> str | None:
    return None if value is None else str(value)


def _cut(value: str | None) -> str | None:
    return None if value is None else value[:255]
