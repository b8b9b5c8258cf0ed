"""The help channel, without Slack: which messages count, follow-ups joining a question, a host's
answer in the thread, and resolving, each with the thread posts it calls for. Plain functions on a
session.

Times here are Slack's message timestamps (``ts``), not when the event reached us: Slack retries a
delivery up to about five minutes late, and a follow-up must join by when it was written.
"""

import re
from dataclasses import dataclass

from sqlmodel import Session, col, select

from bot.help_channel.blocks import build_help_reply, build_resolved_reply
from bot.intake.filing import file_report
from bot.references import format_ref
from bot.triage import service as triage
from bot.triage.blocks import build_reporter_notice
from bot.triage.flows import queue_notices
from bot.triage.service import sync_card
from storage import friction, outbox
from storage.friction import FrictionDraft
from storage.models import ChangeAction, FrictionChange, FrictionPoint, Source, utcnow

MAX_TEXT = 3000
JOINED = ChangeAction.joined  # a follow-up appended to the question; ``new`` is its ts
# Plain messages, and the two subtypes people produce by writing: a file with a comment, a reply
# also sent to the channel. Edits, deletions, joins and bots' posts are not questions.
PERSON_SUBTYPES = (None, "file_share", "thread_broadcast")


def intake_key(channel: str, ts: str) -> str:
    """The same key the filing reaction uses, so reacting to a help-channel message files nothing new."""
    return f"message:{channel}:{ts}"


def by_a_person(event: dict) -> bool:
    return event.get("subtype") in PERSON_SUBTYPES and not event.get("bot_id") and bool(event.get("user"))


# Workflow Builder's "send a message" step posts a form's answers as the workflow, not the person:
# a ``bot_id`` and no ``user``, with ``subtype: bot_message`` (legacy workflows, and what Slack
# answered in slackapi/bolt-python#817) or with none and a ``bot_profile`` (newer ones). The
# submitter appears only as a mention the form's author put in: ``<@U123>`` in the text, a ``user``
# element of a rich_text block, or an attachment field.
FORM_SUBTYPES = (None, "bot_message")
_MENTION = re.compile(r"<@([UW][A-Z0-9]{2,31})(?:\|[^>]*)?>")


def is_form_post(event: dict, own: set[str]) -> bool:
    """A top-level post by a bot or workflow that is not this app (``own``: its bot id, bot user id
    and app id: the bot's own posts are never filed, or it would file its own answers)."""
    return (
        event.get("subtype") in FORM_SUBTYPES
        and bool(event.get("bot_id"))
        and not ({event.get("bot_id"), event.get("user"), event.get("app_id"), (event.get("bot_profile") or {}).get("app_id")} & own)
        and is_top_level(event)
    )


def form_submitter(event: dict) -> str | None:
    """Who filled in the form: the first person the post mentions (its text, then its blocks, then
    its attachments), or None when it names nobody."""
    found = _MENTION.search(event.get("text") or "")
    if found:
        return found.group(1)
    for element in _walk(event.get("blocks")):
        if element.get("type") == "user" and isinstance(element.get("user_id"), str):
            return element["user_id"]
    for attachment in event.get("attachments") or []:
        if isinstance(attachment, dict):
            words = " ".join(str(v) for v in [attachment.get("text"), attachment.get("pretext"),
                                              *[f.get("value") for f in attachment.get("fields") or [] if isinstance(f, dict)]] if v)
            found = _MENTION.search(words)
            if found:
                return found.group(1)
    return None


def _walk(value):
    """Every dict inside a blocks structure, depth first (rich_text nests sections in lists)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(reversed([v for v in item.values() if isinstance(v, (dict, list))]))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def is_top_level(event: dict) -> bool:
    return event.get("thread_ts") in (None, event.get("ts"))


def thread_point(*, session: Session, channel: str, thread_ts: str) -> FrictionPoint | None:
    """The data point whose question starts the thread ``thread_ts``, if any."""
    return session.exec(select(FrictionPoint).where(FrictionPoint.intake_key == intake_key(channel, thread_ts))).first()


def join_follow_up(
    *, session: Session, channel: str, user: str, ts: str, text: str, join_minutes: int
) -> FrictionPoint | None:
    """Append ``text`` to ``user``'s last question in ``channel`` when it is still open and they wrote
    to it (first message or a follow-up) within ``join_minutes`` of ``ts``. None: a new question."""
    if join_minutes <= 0:
        return None
    last = session.exec(
        select(FrictionPoint)
        .where(FrictionPoint.source == Source.help_channel)
        .where(FrictionPoint.channel_id == channel)
        .where(FrictionPoint.filed_by == user)
        .order_by(col(FrictionPoint.created_at).desc(), col(FrictionPoint.id).desc())
        .limit(1)
    ).first()
    if last is None or last.status not in triage.OPEN_STATUSES or last.duplicate_of_id is not None:
        return None
    point = triage.lock_point(session=session, point_id=last.id)
    joined = _joined(session, point.id)
    if ts in joined:  # the same follow-up again: already in
        return point
    latest = max(_seconds(t) for t in [point.message_ts, *joined] if t)
    if abs(_seconds(ts) - latest) > join_minutes * 60:
        return None
    point.text = f"{point.text}\n{text}"[:MAX_TEXT]
    point.updated_at = utcnow()
    session.add(point)
    session.add(FrictionChange(friction_point_id=point.id, actor=user, action=JOINED, new=ts))
    session.flush()
    return point


def _joined(session: Session, point_id: int) -> list[str]:
    stmt = select(FrictionChange.new).where(FrictionChange.friction_point_id == point_id).where(FrictionChange.action == JOINED)
    return [t for t in session.exec(stmt).all() if t]


def _seconds(ts: str) -> float:
    try:
        return float(ts)
    except (TypeError, ValueError):
        return 0.0


def record_response(*, session: Session, point_id: int, actor: str) -> triage.Applied:
    """A host answered in the thread: the first answer is the point's first response."""
    point = triage.lock_point(session=session, point_id=point_id)
    return triage._record(session, point, actor, triage.Change.responded, was=point.status)


class NotAllowed(triage.TriageError):
    """Only a host or the person who asked may resolve a question."""


@dataclass
class Resolved:
    applied: triage.Applied
    asker: str  # who asked in the channel: the thread post tells them, so no DM


def resolve(*, session: Session, point_id: int, actor: str, actor_is_host: bool, prefix: str) -> Resolved:
    """Resolve from the thread. Hosts may, and so may the person who asked (or anyone who reported
    the same thing): they know when their question is answered. The asker closing their own question
    is not a host's response, so it leaves the time to first response unset."""
    point = triage.lock_point(session=session, point_id=point_id)
    if not actor_is_host and actor not in {r.user_id for r in point.reporters}:
        raise NotAllowed("Only the person who asked or a platform host can resolve this. Nothing was changed.")
    responded_before = point.first_response_at
    applied = triage.resolve(session=session, point_id=point_id, actor=actor, note=None, prefix=prefix)
    if not actor_is_host and responded_before is None:
        applied.point.first_response_at = None
        applied.first_response = False
        session.add(applied.point)
        session.flush()
    return Resolved(applied, asker=applied.point.filed_by)


# ------------------------------------------------------------------ with the posts they call for


@dataclass
class Taken:
    point: FrictionPoint
    created: bool  # a new data point (and its thread reply) was made
    joined: bool  # the message was appended to the person's open question


def take_question(
    *,
    session: Session,
    draft: FrictionDraft,
    event_id: str,
    join_minutes: int,
    resolve_reaction: str,
    prefix: str,
    triage_channel: str | None,
) -> Taken | None:
    """A top-level message: join it to the asker's open question, or file it and queue the one
    thread reply. None: this event was handled before."""
    if not friction.first_delivery(session=session, event_id=event_id):
        return None
    channel, ts = draft.channel_id, draft.message_ts
    assert channel is not None and ts is not None  # a help-channel question's draft names its message
    existing = thread_point(session=session, channel=channel, thread_ts=ts)
    if existing is not None:  # this very message was filed already
        return Taken(existing, created=False, joined=False)
    joined = join_follow_up(
        session=session, channel=channel, user=draft.reporter_id, ts=ts, text=draft.text, join_minutes=join_minutes
    )
    if joined is not None:
        sync_card(session=session, point=joined, why=f"help-joined:{ts}")
        return Taken(joined, created=False, joined=True)
    filed = file_report(session=session, draft=draft, prefix=prefix, triage_channel=triage_channel)
    assert filed is not None  # None only for an event id handled before, and none is given
    if filed.created:
        point = filed.point
        outbox.enqueue(
            session=session,
            dedupe_key=f"help-reply:{point.id}",
            method="chat.postMessage",
            payload={"channel": channel, "thread_ts": ts, **build_help_reply(format_ref(prefix, point.id), point.id, resolve_reaction)},
            friction_point_id=point.id,
        )
    return Taken(filed.point, created=filed.created, joined=False)


def take_answer(*, session: Session, event_id: str, channel: str, thread_ts: str, actor: str) -> triage.Applied | None:
    """A host's reply in a question's thread. None: not a question's thread, or handled before."""
    point = thread_point(session=session, channel=channel, thread_ts=thread_ts)
    if point is None or not friction.first_delivery(session=session, event_id=event_id):
        return None
    applied = record_response(session=session, point_id=point.id, actor=actor)
    if applied.picked_up:
        sync_card(session=session, point=applied.point, why=f"help-response:{applied.entry.id}")
    return applied


def resolve_in_thread(
    *, session: Session, point_id: int, actor: str, actor_is_host: bool, prefix: str, event_id: str | None = None
) -> triage.Applied | None:
    """Resolve, and queue the one "resolved" post in the thread. Reporters who are not in the
    thread (merged in from elsewhere) get the usual DM; the asker and the actor do not.
    Raises ``triage.TriageError`` when it cannot apply. None: this event was handled before."""
    if event_id is not None and not friction.first_delivery(session=session, event_id=event_id):
        return None
    resolved = resolve(session=session, point_id=point_id, actor=actor, actor_is_host=actor_is_host, prefix=prefix)
    applied = resolved.applied
    point, ref = applied.point, format_ref(prefix, applied.point.id)
    if point.channel_id and point.message_ts:
        outbox.enqueue(
            session=session,
            dedupe_key=f"help-resolved:{applied.entry.id}",
            method="chat.postMessage",
            payload={"channel": point.channel_id, "thread_ts": point.message_ts, **build_resolved_reply(ref, actor)},
            friction_point_id=point.id,
        )
    notice = build_reporter_notice(ref, point, applied.change, actor, picked_up=False)
    if notice is not None:
        queue_notices(session=session, point=point, notice=notice, once=f"closed:{applied.entry.id}", skip={actor, resolved.asker})
    sync_card(session=session, point=point, why=f"help-resolved:{applied.entry.id}")
    return applied
