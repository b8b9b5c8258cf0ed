"""The outbox: Slack calls to make exactly once, persisted with the change that calls for them."""

import json
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, or_, select

from storage.models import OutboxMessage, OutboxStatus, utcnow

CLAIM_SECONDS = 60  # a sender that crashed mid-send loses its claim after this


def enqueue(
    *,
    session: Session,
    dedupe_key: str,
    method: str,
    payload: dict,
    friction_point_id: int | None = None,
    purpose: str | None = None,
) -> bool:
    """Queue one call. The same ``dedupe_key`` twice queues it once; returns False the second time."""
    try:
        with session.begin_nested():
            session.add(
                OutboxMessage(
                    dedupe_key=dedupe_key,
                    method=method,
                    payload=json.dumps(payload, ensure_ascii=False),
                    friction_point_id=friction_point_id,
                    purpose=purpose,
                )
            )
            session.flush()
    except IntegrityError:
        return False
    return True


def claim_due(*, session: Session, limit: int = 20, now: datetime | None = None) -> list[OutboxMessage]:
    """Claim pending messages that are due. On PostgreSQL ``SKIP LOCKED`` lets several senders
    share the table without taking the same row; SQLite has one writer at a time anyway."""
    now = now or utcnow()
    stmt = (
        select(OutboxMessage)
        .where(OutboxMessage.status == OutboxStatus.pending)
        .where(OutboxMessage.not_before <= now)
        .where(or_(col(OutboxMessage.claimed_until).is_(None), col(OutboxMessage.claimed_until) < now))
        .order_by(col(OutboxMessage.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = list(session.exec(stmt).all())
    for row in rows:
        row.claimed_until = now + timedelta(seconds=CLAIM_SECONDS)
        row.attempts += 1
        session.add(row)
    return rows


def mark_sent(*, session: Session, message_id: int) -> None:
    row = session.get(OutboxMessage, message_id)
    row.status = OutboxStatus.sent
    row.sent_at = utcnow()
    row.claimed_until = None
    row.last_error = None
    session.add(row)


def mark_retry(*, session: Session, message_id: int, delay_seconds: float, error: str) -> None:
    row = session.get(OutboxMessage, message_id)
    row.not_before = utcnow() + timedelta(seconds=delay_seconds)
    row.claimed_until = None
    row.last_error = error[:255]
    session.add(row)


def mark_failed(*, session: Session, message_id: int, error: str) -> None:
    row = session.get(OutboxMessage, message_id)
    row.status = OutboxStatus.failed
    row.claimed_until = None
    row.last_error = error[:255]
    session.add(row)


def pending_count(*, session: Session) -> int:
    return len(session.exec(select(OutboxMessage.id).where(OutboxMessage.status == OutboxStatus.pending)).all())
