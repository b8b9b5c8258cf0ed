"""A direct message to the bot (its Messages tab) is a one-line report: filed like the slash
command's, its triage card queued, and the answer queued for the same DM, all in one transaction."""

from dataclasses import dataclass

from sqlmodel import Session

from bot.blocks.intake import build_filed_message
from bot.operations import target_alerts
from storage import friction, outbox
from storage.friction import FrictionDraft
from storage.models import FrictionPoint

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
        and bool((event.get("text") or "").strip())
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
    from bot.operations.triage import enqueue_card  # the one card path (rendered when sent); see the report

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
        payload={"channel": dm_channel, **build_filed_message(f"{prefix}-{point.id}", point, with_details_button=False)},
        friction_point_id=point.id,
        workspace=draft.workspace,
    )
    return DmFiled(point, created=True)
