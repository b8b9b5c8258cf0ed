"""Queries on tracker links and recorded tracker deliveries."""

import hashlib
import json
from datetime import datetime, timedelta

from sqlalchemy import delete, or_
from sqlmodel import Session, col, select

from storage.database import insert_unique
from storage.models import ScheduledRun, TrackerDelivery, TrackerLink, utcnow


def matching_links(*, session: Session, tracker: str, keys: list[str], ids: list[str]) -> list[TrackerLink]:
    """Links of ``tracker`` whose stable id is one of ``ids`` or whose key is one of ``keys``,
    locked for update, in id order."""
    conditions = [col(TrackerLink.key).in_(keys)] if keys else []
    if ids:
        conditions.append(col(TrackerLink.issue_id).in_(ids))
    if not conditions:
        return []
    stmt = select(TrackerLink).where(TrackerLink.tracker == tracker, or_(*conditions)).order_by(col(TrackerLink.id))
    return list(session.exec(stmt.with_for_update()).all())


def project_links(*, session: Session, tracker: str, prefixes: list[str], project_id: str | None) -> list[TrackerLink]:
    """Links of ``tracker`` in a project: its id, or a key starting with ``prefix#``/``prefix!``."""
    conditions = [col(TrackerLink.key).startswith(p + sep, autoescape=True) for p in prefixes for sep in ("#", "!")]
    if project_id:
        conditions.append(col(TrackerLink.project_id) == project_id)
    if not conditions:
        return []
    stmt = select(TrackerLink).where(TrackerLink.tracker == tracker, or_(*conditions)).order_by(col(TrackerLink.id))
    return list(session.exec(stmt.with_for_update()).all())


def record_delivery(*, session: Session, tracker: str, body: bytes, events: list[dict]) -> int | None:
    """Record a verified delivery's events; its id, or None when this body was recorded before
    (a redelivery or a replay)."""
    row = TrackerDelivery(tracker=tracker, body_sha256=hashlib.sha256(body).hexdigest(), events=json.dumps(events))
    return row.id if insert_unique(session, row) else None


def claim_delivery(*, session: Session, delivery_id: int) -> TrackerDelivery | None:
    """The delivery, locked, if it is still to apply."""
    stmt = select(TrackerDelivery).where(TrackerDelivery.id == delivery_id, col(TrackerDelivery.applied_at).is_(None))
    return session.exec(stmt.with_for_update()).first()


def pending_deliveries(*, session: Session, received_before: datetime, max_attempts: int, limit: int = 100) -> list[int]:
    """Ids of deliveries recorded but not applied (a crash or a failure after the answer)."""
    stmt = (select(TrackerDelivery.id).where(col(TrackerDelivery.applied_at).is_(None), TrackerDelivery.attempts < max_attempts,
                                             col(TrackerDelivery.received_at) < received_before)
            .order_by(col(TrackerDelivery.id)).limit(limit))
    return list(session.exec(stmt).all())


def count_attempt(*, session: Session, delivery_id: int) -> int:
    row = session.get(TrackerDelivery, delivery_id)
    if row is None:
        return 0
    row.attempts += 1
    session.add(row)
    return row.attempts


def prune_deliveries(*, session: Session, keep: timedelta) -> None:
    """Applied deliveries older than ``keep`` go (their body hash stops catching replays that old;
    the links' ``state_at`` still does)."""
    session.exec(delete(TrackerDelivery).where(col(TrackerDelivery.applied_at).is_not(None),
                                               col(TrackerDelivery.received_at) < utcnow() - keep))


def prune_runs(*, session: Session, job: str, before: datetime) -> None:
    """Claims of a frequent closing job (polling, delivery recovery) older than ``before``."""
    session.exec(delete(ScheduledRun).where(col(ScheduledRun.job) == job, col(ScheduledRun.occurrence) < before))
