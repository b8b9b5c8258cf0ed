"""The outbox: Slack calls to make exactly once, persisted with the change that calls for them."""

import json
from collections.abc import Callable, Collection, Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, case, delete, func, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, or_, select

from storage.database import insert_or_skip, insert_unique, queued
from storage.models import OutboxMessage, OutboxStatus, Workspace, as_utc, utcnow

# A sender that crashed mid-send loses its claim after this; the default for OUTBOX_CLAIM_SECONDS
# (Settings.outbox_claim_seconds), which the sender passes to the claims below.
CLAIM_SECONDS = 60
# The table itself, for the bulk statements that bypass the ORM (SQLModel's stubs do not declare the
# ``__table__`` every table class has).
TABLE: Table = OutboxMessage.__table__  # type: ignore[attr-defined]


def enqueue(
    *,
    session: Session,
    dedupe_key: str,
    method: str,
    payload: dict,
    friction_point_id: int | None = None,
    purpose: str | None = None,
    workspace: Workspace | None = None,
    fresh: bool = False,
) -> bool:
    """Queue one call, sent through ``workspace``'s installation (None: the team policy's).
    The same ``dedupe_key`` twice queues it once; returns False the second time. ``fresh``: the key
    names a row made in this same transaction, so it cannot be taken yet; added without the
    savepoint that the check needs (two statements less)."""
    if _to_a_bot(method, payload):
        return False
    message = OutboxMessage(
        dedupe_key=dedupe_key,
        method=method,
        payload=json.dumps(payload, ensure_ascii=False),
        friction_point_id=friction_point_id,
        purpose=purpose,
        team_id=workspace.team_id if workspace else None,
        enterprise_id=workspace.enterprise_id if workspace else None,
    )
    if fresh:
        session.add(message)
        queued(session)
        return True
    if insert_unique(session, message):
        queued(session)
        return True
    return False


def enqueue_many(*, session: Session, messages: list[dict]) -> None:
    """``enqueue`` for many calls in one INSERT (``messages``: dicts of enqueue's arguments but the
    session); a dedupe key already queued is skipped, as one at a time."""
    messages = [m for m in messages if not _to_a_bot(m["method"], m["payload"])]
    if not messages:
        return
    now = utcnow()
    rows = [dict(dedupe_key=m["dedupe_key"], method=m["method"], payload=json.dumps(m["payload"], ensure_ascii=False),
                 friction_point_id=m.get("friction_point_id"), purpose=m.get("purpose"),
                 team_id=m["workspace"].team_id if m.get("workspace") else None,
                 enterprise_id=m["workspace"].enterprise_id if m.get("workspace") else None,
                 status=OutboxStatus.pending, attempts=0, not_before=now, created_at=now) for m in messages]
    session.execute(insert_or_skip(session, OutboxMessage), rows)
    queued(session)


def _to_a_bot(method: str, payload: dict) -> bool:
    """A post addressed to a bot id (``B…``): the reporter of a Workflow Builder form that named
    nobody is the workflow (``bot.help_channel.service``). Slack has no conversation with a bot
    id, so such a DM could only fail: it is not queued."""
    channel = payload.get("channel")
    return method == "chat.postMessage" and isinstance(channel, str) and channel.startswith("B")


def exists(*, session: Session, dedupe_key: str) -> bool:
    """Whether a message with ``dedupe_key`` was ever queued (to skip building one again)."""
    return session.exec(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key)).first() is not None


def _due(now: datetime) -> tuple:
    """Pending, due, and not held by a live claim."""
    return (
        OutboxMessage.status == OutboxStatus.pending,
        OutboxMessage.not_before <= now,
        or_(col(OutboxMessage.claimed_until).is_(None), col(OutboxMessage.claimed_until) < now),
    )


def _claim(session: Session, rows: list[OutboxMessage], now: datetime, claim_seconds: float) -> list[OutboxMessage]:
    """Hold ``rows`` for ``claim_seconds`` and count the attempt, in one UPDATE."""
    if not rows:
        return rows
    until = now + timedelta(seconds=claim_seconds)
    session.exec(
        update(OutboxMessage)
        .where(col(OutboxMessage.id).in_([r.id for r in rows]))
        .values(claimed_until=until, attempts=OutboxMessage.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    for row in rows:  # the same values on the objects, without a second UPDATE at flush
        set_committed_value(row, "claimed_until", until)
        set_committed_value(row, "attempts", row.attempts + 1)
    return rows


def claim_due(
    *, session: Session, limit: int = 20, now: datetime | None = None, claim_seconds: float = CLAIM_SECONDS
) -> list[OutboxMessage]:
    """Claim pending messages that are due, each held for ``claim_seconds``. On PostgreSQL
    ``SKIP LOCKED`` lets several senders share the table without taking the same row; SQLite has
    one writer at a time anyway."""
    now = now or utcnow()
    stmt = (
        select(OutboxMessage)
        .where(*_due(now))
        .order_by(col(OutboxMessage.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return _claim(session, list(session.exec(stmt).all()), now, claim_seconds)


def claim_batch(
    *,
    session: Session,
    limit_for: Callable[[str], int],
    skip_methods: Collection[str] = (),
    now: datetime | None = None,
    claim_seconds: float = CLAIM_SECONDS,
) -> list[OutboxMessage]:
    """Like ``claim_due``, with a limit per method (``limit_for(method)``: what the sender can send
    of it before the claim runs out) and none of ``skip_methods`` (paused: a 429, or Slack failing
    them). Each is held for ``claim_seconds``. Oldest first."""
    now = now or utcnow()
    methods = set(session.exec(select(OutboxMessage.method).where(*_due(now)).distinct()).all())
    rows: list[OutboxMessage] = []
    for method in sorted(methods - set(skip_methods)):
        limit = limit_for(method)
        if limit < 1:
            continue
        stmt = (
            select(OutboxMessage)
            .where(*_due(now), OutboxMessage.method == method)
            .order_by(col(OutboxMessage.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows.extend(session.exec(stmt).all())
    rows.sort(key=lambda r: r.id)
    return _claim(session, rows, now, claim_seconds)


def mark_sent(*, session: Session, message_id: int) -> None:
    row = session.get(OutboxMessage, message_id)
    assert row is not None  # a message being marked is one this sender claimed
    row.status = OutboxStatus.sent
    row.sent_at = utcnow()
    row.claimed_until = None
    row.last_error = None
    session.add(row)


def mark_retry(*, session: Session, message_id: int, delay_seconds: float, error: str) -> None:
    row = session.get(OutboxMessage, message_id)
    assert row is not None  # a message being marked is one this sender claimed
    row.not_before = utcnow() + timedelta(seconds=delay_seconds)
    row.claimed_until = None
    row.last_error = error[:255]
    session.add(row)


def mark_failed(*, session: Session, message_id: int, error: str) -> None:
    row = session.get(OutboxMessage, message_id)
    assert row is not None  # a message being marked is one this sender claimed
    row.status = OutboxStatus.failed
    row.claimed_until = None
    row.last_error = error[:255]
    session.add(row)


def mark_sent_many(*, session: Session, message_ids: Iterable[int]) -> None:
    """``mark_sent`` for many messages, in one UPDATE (of the table, not through the ORM: the
    sender runs it after every send, and the ORM's bulk-update path was most of its cost)."""
    ids = list(message_ids)
    if ids:
        session.connection().execute(
            update(TABLE)
            .where(TABLE.c.id.in_(ids))
            .values(status=OutboxStatus.sent, sent_at=utcnow(), claimed_until=None, last_error=None)
        )


def erase(*, session: Session, message_ids: Iterable[int]) -> None:
    """Delete messages whose outcome must leave no trace (sent or dropped alike)."""
    ids = list(message_ids)
    if ids:
        session.connection().execute(delete(TABLE).where(TABLE.c.id.in_(ids)))


def release(*, session: Session, message_ids: Iterable[int], delay_seconds: float, error: str | None = None) -> None:
    """Give claimed messages back unsent, due again after ``delay_seconds``, without counting the
    claim as an attempt: Slack asked us to wait (429), or the sender ran out of time for them."""
    ids = list(message_ids)
    if not ids:
        return
    values: dict[str, Any] = {
        "not_before": utcnow() + timedelta(seconds=delay_seconds),
        "claimed_until": None,
        "attempts": case((col(OutboxMessage.attempts) > 0, col(OutboxMessage.attempts) - 1), else_=0),
    }
    if error is not None:
        values["last_error"] = error[:255]
    session.exec(
        update(OutboxMessage)
        .where(col(OutboxMessage.id).in_(ids), col(OutboxMessage.status) == OutboxStatus.pending)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def defer_method(*, session: Session, method: str, until: datetime) -> int:
    """Slack paused ``method`` until ``until`` (429 Retry-After, per method per workspace): keep
    every unclaimed pending message of it back until then, so other senders wait too."""
    now = utcnow()
    result = session.exec(
        update(OutboxMessage)
        .where(
            col(OutboxMessage.method) == method,
            col(OutboxMessage.status) == OutboxStatus.pending,
            col(OutboxMessage.not_before) < until,
            or_(col(OutboxMessage.claimed_until).is_(None), col(OutboxMessage.claimed_until) < now),
        )
        .values(not_before=until)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def pending_count(*, session: Session) -> int:
    return len(session.exec(select(OutboxMessage.id).where(OutboxMessage.status == OutboxStatus.pending)).all())


def backlog(*, session: Session) -> tuple[int, float]:
    """How many messages wait to be sent, and how old the oldest is (seconds), for /metrics."""
    count, oldest = session.exec(
        select(func.count(), func.min(OutboxMessage.created_at)).where(OutboxMessage.status == OutboxStatus.pending)
    ).one()
    return count, (utcnow() - as_utc(oldest)).total_seconds() if oldest else 0.0
