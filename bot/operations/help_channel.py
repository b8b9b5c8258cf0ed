"""The help channel, without Slack: which messages count, follow-ups joining a question, a host's
answer in the thread, and resolving. Plain functions on a session.

Times here are Slack's message timestamps (``ts``), not when the event reached us: Slack retries a
delivery up to about five minutes late, and a follow-up must join by when it was written.
"""

from dataclasses import dataclass

from sqlmodel import Session, col, select

from bot.operations import triage
from storage.models import FrictionChange, FrictionPoint, Source, utcnow

MAX_TEXT = 3000
JOINED = "joined"  # FrictionChange.action for a follow-up appended to the question; ``new`` is its ts
# Plain messages, and the two subtypes people produce by writing: a file with a comment, a reply
# also sent to the channel. Edits, deletions, joins and bots' posts are not questions.
PERSON_SUBTYPES = (None, "file_share", "thread_broadcast")


def intake_key(channel: str, ts: str) -> str:
    """The same key the filing reaction uses, so reacting to a help-channel message files nothing new."""
    return f"message:{channel}:{ts}"


def by_a_person(event: dict) -> bool:
    return event.get("subtype") in PERSON_SUBTYPES and not event.get("bot_id") and bool(event.get("user"))


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


def resolve(*, session: Session, point_id: int, actor: str, actor_is_host: bool, prefix: str = "FB") -> Resolved:
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
