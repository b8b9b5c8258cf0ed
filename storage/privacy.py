"""Privacy: forget one person, export everything, purge what is older than the team keeps.

Forgetting keeps the aggregate (a report's area, severity, time lost, status) and removes the person:
their reporter rows, their words where they wrote them, their name on history, their notices and
any message still addressed to them."""

import json
from collections.abc import Callable, Iterator
from datetime import datetime

from sqlalchemy import delete, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from storage import surveys, usage
from storage.models import (
    CLOSED,
    ClosureNotice,
    FrictionChange,
    FrictionPoint,
    FrictionTag,
    OutboxMessage,
    Reporter,
    TrackerLink,
    utcnow,
)
from storage.transfer import _plain, all_tables  # every table, not only those whose module was imported

FORGOTTEN = "forgotten"
REDACTED = "[removed at the reporter's request]"


def forget_user(*, session: Session, user_id: str, survey_slot: Callable[[int, str], str] | None = None) -> dict[str, int]:
    """Remove or anonymise everything about ``user_id``; returns what was done, by kind.
    ``survey_slot(run id, nonce)``: their pseudonym in an open survey run (``storage.surveys.forget_user``)."""
    done: dict[str, int] = {}
    own = list(session.exec(select(FrictionPoint).where(FrictionPoint.filed_by == user_id)).all())
    reported_ids = set(session.exec(select(Reporter.friction_point_id).where(Reporter.user_id == user_id)).all())
    for point in own:
        point.text = REDACTED
        point.filed_by = FORGOTTEN
        point.channel_id = point.message_ts = point.permalink = None
        point.link_url = None
        point.intake_key = f"{FORGOTTEN}:{point.id}"  # it can name a message of theirs
        point.updated_at = utcnow()
        session.add(point)
    done["reports_redacted"] = len(own)
    done["reporter_entries_removed"] = session.exec(delete(Reporter).where(col(Reporter.user_id) == user_id)).rowcount
    for point in session.exec(select(FrictionPoint).where(FrictionPoint.assignee == user_id)).all():
        point.assignee = None
        session.add(point)
    changes = list(session.exec(select(FrictionChange).where(
        or_(col(FrictionChange.actor) == user_id, col(FrictionChange.old) == user_id, col(FrictionChange.new) == user_id))).all())
    for change in changes:
        if change.actor == user_id:
            change.actor, change.note = FORGOTTEN, None
        change.old = FORGOTTEN if change.old == user_id else change.old
        change.new = FORGOTTEN if change.new == user_id else change.new
        session.add(change)
    done["history_entries_anonymised"] = len(changes)
    done["closure_notices_removed"] = session.exec(delete(ClosureNotice).where(col(ClosureNotice.user_id) == user_id)).rowcount
    # Messages to them, or quoting them: pending ones would reach a person who asked to be forgotten.
    done["outbox_messages_removed"] = session.exec(
        delete(OutboxMessage).where(col(OutboxMessage.payload).contains(user_id))
    ).rowcount
    done["reports_touched"] = len(reported_ids | {p.id for p in own})
    for kind, count in surveys.forget_user(session=session, user_id=user_id, slot_of=survey_slot).items():
        done[f"survey_{kind}"] = count
    done["usage_events_removed"] = usage.forget_user(session=session, user_id=user_id)
    session.flush()
    return done


def export_rows(*, session: Session) -> Iterator[tuple[str, dict]]:
    """Every row of every table, parents before children, as (table name, plain dict). Not
    slack-sdk's installation tables: they hold bot tokens, and a moved bot is simply installed again."""

    for table in all_tables():
        for row in session.execute(sa_select(table).order_by(*table.primary_key.columns)).mappings():
            yield table.name, {k: _plain(v) for k, v in row.items()}


def export_json(*, session: Session, out) -> dict[str, int]:
    """Write ``{"exported_at": ..., "tables": {name: [rows]}}`` to the text stream ``out``."""
    counts: dict[str, int] = {}
    out.write('{"exported_at": %s, "tables": {' % json.dumps(utcnow().isoformat()))
    first_table = True
    current = None
    for name, row in export_rows(session=session):
        if name != current:
            if current is not None:
                out.write("]")
            out.write(("" if first_table else ", ") + json.dumps(name) + ": [")
            first_table, current = False, name
            counts[name] = 0
        out.write(("" if counts[name] == 0 else ", ") + json.dumps(row, ensure_ascii=False))
        counts[name] += 1
    if current is not None:
        out.write("]")
    out.write("}}\n")
    return counts


def purge_older_than(*, session: Session, cutoff: datetime) -> int:
    """Delete closed reports (resolved, won't fix, merged) created before ``cutoff``, with everything
    hanging off them. Open reports stay: someone is still waiting on them."""
    ids = list(session.exec(select(FrictionPoint.id).where(
        col(FrictionPoint.created_at) < cutoff, col(FrictionPoint.status).in_(CLOSED))).all())
    if not ids:
        return 0
    # Duplicates that point at a purged report lose the pointer, not their own data.
    for point in session.exec(select(FrictionPoint).where(col(FrictionPoint.duplicate_of_id).in_(ids),
                                                          col(FrictionPoint.id).not_in(ids))).all():
        point.duplicate_of_id = None
        session.add(point)
    from storage.targets import TargetOutcome  # before the history it points at

    for table in (ClosureNotice, TargetOutcome, FrictionChange, FrictionTag, Reporter, TrackerLink):
        session.execute(delete(table).where(col(table.friction_point_id).in_(ids)))
    session.execute(delete(OutboxMessage).where(col(OutboxMessage.friction_point_id).in_(ids)))
    session.execute(delete(FrictionPoint).where(col(FrictionPoint.id).in_(ids)))
    return len(ids)
