"""A direct message to the bot (its Messages tab) is a one-line report: filed like the slash
command's, its triage card queued, and the answer queued for the same DM, all in one transaction.

A reply in a thread of that DM (``thread_ts`` other than its own ``ts``) is more about a report,
not a new one, when the thread is the report's: the reporter's own message (its ``intake_key``) or
the bot's answer to it (where that answer was posted is recorded when it is sent: the outbox hook
``DmAnswerHook``, a ``FrictionChange`` ``dm_answer`` whose ``new`` is the answer's ``ts``). The
reply is added to the report (to the one it was merged into, for a duplicate): appended to its
words, posted in its card thread for the hosts, and confirmed once in the DM thread. A reply in
any other thread of the DM is a new report, as before.
"""

from dataclasses import dataclass

from sqlmodel import Session, col, select

from bot.intake.blocks import build_added_to_report, build_addition_alert, build_filed_message
from bot.references import format_ref
from bot.runtime.outbox.sender import Hook
from bot.targets import alerts as target_alerts
from storage import friction, outbox
from storage.friction import FrictionDraft
from storage.models import ChangeAction, FrictionChange, FrictionPoint, OutboxMessage, Source, utcnow

DM_ANSWER_PURPOSE = "dm_answer"  # the outbox purpose of the bot's answer in a DM (``DmAnswerHook``)
ANSWERED_IN = ChangeAction.dm_answer  # the bot's answer is at ``new`` (its ts) in the DM
ADDED = ChangeAction.added  # the reporter added ``note`` from the report's DM thread
MAX_TEXT = 3000

# Message subtypes that are not a person writing a new message (edits, deletions, joins, bots' posts):
# https://api.slack.com/events/message#subtypes. A person's own message has no subtype, or
# file_share / thread_broadcast / me_message.
PERSON_SUBTYPES = {None, "file_share", "thread_broadcast", "me_message"}


def by_a_person(event: dict, bot_user_id: str | None) -> bool:
    """True for a new message a person wrote in a DM with the bot: not an edit or deletion (they
    carry a subtype), not a bot's message (``bot_id``), not the bot's own, not empty."""
    return (
        event.get("channel_type") == "im"
        and event.get("subtype") in PERSON_SUBTYPES
        and not event.get("bot_id")
        and bool(event.get("user"))
        and event.get("user") != bot_user_id
        and bool((event.get("text") or "").strip() or event.get("files"))  # a screenshot alone is a report too
    )


@dataclass(frozen=True)
class DmFiled:
    point: FrictionPoint
    created: bool
    answered: bool = False  # not a new report: the reporter's answer to a host's question about ``point``


def file_direct_message(*, session: Session, draft: FrictionDraft, event_id: str, dm_channel: str, prefix: str,
                        triage_channel: str | None) -> DmFiled | None:
    """File ``draft`` (source dm) and queue its triage card and the one answer in ``dm_channel``;
    or, when one of the writer's reports waits for their answer, take it as that answer instead.
    None: Slack delivered this event before (a retry). The card is queued by the triage module's
    ``enqueue_card`` (rendered at send time)."""
    from bot.triage.service import enqueue_card  # the one card path (rendered when sent); see the report

    if not friction.first_delivery(session=session, event_id=event_id):
        return None
    answered = target_alerts.answer_by_dm(session=session, user=draft.reporter_id, text=draft.text, dm_channel=dm_channel,
                                          prefix=prefix, workspace=draft.workspace)
    if answered is not None:
        return DmFiled(answered, created=False, answered=True)
    filed = friction.file_friction(session=session, draft=draft)
    if not filed.created:
        return DmFiled(filed.point, created=False)
    point = filed.point
    enqueue_card(session=session, point_id=point.id, channel=triage_channel)
    outbox.enqueue(
        session=session,
        dedupe_key=f"dm-filed:{point.id}",
        method="chat.postMessage",
        payload={"channel": dm_channel, **build_filed_message(format_ref(prefix, point.id), point, with_details_button=False)},
        friction_point_id=point.id,
        purpose=DM_ANSWER_PURPOSE,
        workspace=draft.workspace,
    )
    return DmFiled(point, created=True)


class DmAnswerHook(Hook):
    """Outbox hook (``DM_ANSWER_PURPOSE``): the answer goes as queued; once Slack has it, where it
    is (``ts``) is kept with its report, so a reply in its thread finds the report."""

    by_channel = True  # answers to different people do not wait for each other

    def prepare(self, session: Session, message: OutboxMessage, payload: dict) -> tuple[str, dict] | None:
        return message.method, payload

    def sent(self, session: Session, message: OutboxMessage, response: dict) -> None:
        ts = response.get("ts")
        if not isinstance(ts, str) or message.friction_point_id is None:
            return
        if session.get(FrictionPoint, message.friction_point_id) is not None:  # not erased since
            session.add(FrictionChange(friction_point_id=message.friction_point_id, actor="bot", action=ANSWERED_IN, new=ts[:255]))


def thread_report(*, session: Session, dm_channel: str, thread_ts: str) -> FrictionPoint | None:
    """The report whose thread ``thread_ts`` is in ``dm_channel``: the reporter's own message, or the
    bot's answer to it; None: some other thread."""
    point = session.exec(select(FrictionPoint).where(FrictionPoint.intake_key == f"dm:{dm_channel}:{thread_ts}")).first()
    if point is not None:
        return point
    mine = select(FrictionPoint.id).where(FrictionPoint.source == Source.dm, FrictionPoint.channel_id == dm_channel)
    point_id = session.exec(
        select(FrictionChange.friction_point_id)
        .where(col(FrictionChange.friction_point_id).in_(mine), FrictionChange.action == ANSWERED_IN, FrictionChange.new == thread_ts)
        .limit(1)
    ).first()
    return session.get(FrictionPoint, point_id) if point_id is not None else None


def add_from_thread(*, session: Session, event_id: str, dm_channel: str, thread_ts: str, ts: str, user: str, text: str,
                    prefix: str, workspace=None) -> DmFiled | None:
    """A reply in a DM thread: added to the thread's report (see the module's docstring) and
    confirmed once; None when the thread is no report's (the caller files it as a new one)."""
    from bot.triage.service import lock_point, sync_card

    found = thread_report(session=session, dm_channel=dm_channel, thread_ts=thread_ts)
    if found is None:
        return None
    if not friction.first_delivery(session=session, event_id=event_id):
        return DmFiled(found, created=False, answered=True)
    point = lock_point(session=session, point_id=found.id)
    for _ in range(5):  # a merged duplicate: the report hosts watch now
        if point.duplicate_of_id is None:
            break
        point = lock_point(session=session, point_id=point.duplicate_of_id)
    ref = format_ref(prefix, point.id)
    if target_alerts.answer_as_reporter(session=session, point_id=point.id, user=user, answer=text, prefix=prefix) is None:
        point.text = f"{point.text}\n{text}"[:MAX_TEXT]
        point.updated_at = utcnow()
        session.add(point)
        session.add(FrictionChange(friction_point_id=point.id, actor=user, action=ADDED, new=ts[:255], note=text))
        if point.card_ts:
            outbox.enqueue(session=session, dedupe_key=f"dm-added-alert:{dm_channel}:{ts}", method="chat.postMessage",
                           payload={"channel": point.card_channel, "thread_ts": point.card_ts, **build_addition_alert(ref, user, text)},
                           friction_point_id=point.id)
        sync_card(session=session, point=point, why=f"dm-added:{dm_channel}:{ts}")
    outbox.enqueue(session=session, dedupe_key=f"dm-added:{dm_channel}:{ts}", method="chat.postMessage",
                   payload={"channel": dm_channel, "thread_ts": thread_ts, **build_added_to_report(ref)},
                   friction_point_id=point.id, workspace=workspace)
    return DmFiled(point, created=False, answered=True)
