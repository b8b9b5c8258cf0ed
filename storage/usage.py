"""Queries for usage events (``bot.usage``): storing an event once by the caller's id, the
moment-of-use CSAT's windows, asks and sealed answers, and the adoption measures per capability
and week, computed in the database (SQLite and PostgreSQL alike, in ``storage.insight``'s style:
Python gets a row per capability and week, never one per event).
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, delete, distinct, func, select, update
from sqlmodel import Session, col

from storage.database import insert_or_skip
from storage.insight import bucket, median_duration
from storage.models import (
    RunStatus,
    SurveyRecipient,
    SurveyRun,
    UsageAnswer,
    UsageAsk,
    UsageEvent,
    UsageSealed,
    UsageWindow,
    as_utc,
    utcnow,
)

# ------------------------------------------------------------------ events


def store_event(*, session: Session, key: str, capability: str, user_id: str | None, email: str | None, at: datetime,
                outcome: str, duration_ms: int | None, subject: str | None) -> int | None:
    """Insert the event unless its ``key`` is already stored (``INSERT … ON CONFLICT DO NOTHING``).
    The new row's id, or None when the key was seen before (nothing changed)."""
    statement = insert_or_skip(session, UsageEvent).values(
        key=key, capability=capability, user_id=user_id, pending_email=email, at=at, outcome=outcome,
        duration_ms=duration_ms, subject=subject, received_at=utcnow(), settled=False)
    return session.execute(statement.returning(col(UsageEvent.id))).scalar()


def store_events(*, session: Session, rows: list[dict]) -> int:
    """``store_event`` for many (each a dict of its keywords) in one statement: how many were new."""
    if not rows:
        return 0
    now = utcnow()
    values = [dict(key=r["key"], capability=r["capability"], user_id=r["user_id"], pending_email=r["email"], at=r["at"],
                   outcome=r["outcome"], duration_ms=r["duration_ms"], subject=r["subject"], received_at=now, settled=False)
              for r in rows]
    return len(session.exec(insert_or_skip(session, UsageEvent).values(values).returning(col(UsageEvent.id))).all())


def unsettled(*, session: Session, limit: int = 500, ids: Sequence[int] | None = None) -> list[UsageEvent]:
    """Events whose after-ack work is not done yet (all of them, or those of ``ids``), oldest first."""
    query = select(UsageEvent).where(col(UsageEvent.settled).is_(False)).order_by(col(UsageEvent.id)).limit(limit)
    if ids is not None:
        query = query.where(col(UsageEvent.id).in_(list(ids)))
    return list(session.scalars(query).all())


def settle(*, session: Session, event_id: int, user_id: str | None) -> None:
    """The after-ack work of an event is done: its user id set (an email looked up) and the email erased."""
    session.exec(update(UsageEvent).where(col(UsageEvent.id) == event_id)
                 .values(user_id=user_id, pending_email=None, settled=True).execution_options(synchronize_session=False))


def settle_many(*, session: Session, event_ids: Sequence[int]) -> None:
    """Events with a known user and nothing else to do: marked settled in one statement."""
    session.exec(update(UsageEvent).where(col(UsageEvent.id).in_(list(event_ids)))
                 .values(settled=True).execution_options(synchronize_session=False))


def drop_event(*, session: Session, event_id: int) -> None:
    """An event whose email names nobody in the workspace: nothing to count it for."""
    session.exec(delete(UsageEvent).where(col(UsageEvent.id) == event_id))


def event_count(*, session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(UsageEvent)) or 0)


# ------------------------------------------------------------------ moment-of-use CSAT


def last_asked(*, session: Session, user_id: str) -> datetime | None:
    at = session.scalar(select(func.max(col(UsageAsk.asked_at))).where(col(UsageAsk.user_id) == user_id))
    return as_utc(at) if at else None


def in_open_survey(*, session: Session, user_id: str) -> bool:
    """Whether a pulse-survey run that asks this person is still open (or still being sent)."""
    return (session.scalar(
        select(func.count()).select_from(SurveyRecipient).join(SurveyRun, col(SurveyRun.id) == col(SurveyRecipient.run_id))
        .where(col(SurveyRecipient.user_id) == user_id, col(SurveyRun.status).in_([RunStatus.resolving, RunStatus.open]))
    ) or 0) > 0


def window(*, session: Session, capability: str, week_start: datetime, closes_at: datetime, secret: str) -> UsageWindow:
    """The capability's window for the week starting ``week_start``, made if missing (with ``secret``)."""
    session.exec(insert_or_skip(session, UsageWindow).values(capability=capability, week_start=week_start, closes_at=closes_at,
                                                            status="open", secret=secret, answers=0))
    return session.scalars(select(UsageWindow).where(col(UsageWindow.capability) == capability,
                                                     col(UsageWindow.week_start) == week_start)).one()


def add_ask(*, session: Session, event_id: int, window_id: int, user_id: str, capability: str, asked_at: datetime,
            deliver_at: datetime) -> UsageAsk | None:
    """The ask for this event, or None if it was already made (a second settling of the same event)."""
    statement = insert_or_skip(session, UsageAsk).values(event_id=event_id, window_id=window_id, user_id=user_id,
                                                         capability=capability, asked_at=asked_at, deliver_at=deliver_at)
    new = session.execute(statement.returning(col(UsageAsk.id))).scalar()
    return session.get(UsageAsk, new) if new is not None else None


def get_ask(*, session: Session, ask_id: int) -> UsageAsk | None:
    return session.get(UsageAsk, ask_id)


def get_window(*, session: Session, window_id: int, lock: bool = False) -> UsageWindow | None:
    query = select(UsageWindow).where(col(UsageWindow.id) == window_id)
    return session.scalars(query.with_for_update() if lock else query).first()


def seal_answer(*, session: Session, window_id: int, slot: str, sealed: str) -> None:
    """Keep (or replace) the sealed answer under ``slot``."""
    existing = session.get(UsageSealed, slot)
    if existing is None:
        session.add(UsageSealed(slot=slot, window_id=window_id, sealed=sealed))
    else:
        existing.sealed = sealed
        session.add(existing)
    session.flush()


def sealed_of(*, session: Session, window_id: int) -> list[UsageSealed]:
    return list(session.scalars(select(UsageSealed).where(col(UsageSealed.window_id) == window_id)).all())


def windows_due(*, session: Session, now: datetime) -> list[int]:
    return list(session.scalars(select(col(UsageWindow.id)).where(col(UsageWindow.status) == "open", col(UsageWindow.closes_at) <= now)
                                .order_by(col(UsageWindow.id))).all())


def close_window(*, session: Session, window: UsageWindow, answers: list[tuple[int, str | None]], keep: bool) -> None:
    """Close ``window`` (locked by the caller): write ``answers`` (score, comment) in random order with
    random ids and no time, only if ``keep`` (the minimum group was reached); erase its sealed
    answers and its key's nonce in the same transaction."""
    shuffled = list(answers)
    random.SystemRandom().shuffle(shuffled)
    if keep:
        for score, comment in shuffled:
            session.add(UsageAnswer(window_id=window.id, score=score, comment=comment))
    session.exec(delete(UsageSealed).where(col(UsageSealed.window_id) == window.id))
    window.status, window.secret, window.answers = "closed", None, len(answers)
    session.add(window)
    session.flush()


@dataclass(frozen=True)
class WindowScore:
    capability: str
    week_start: datetime
    answers: int  # counted at close
    scores: tuple[int, ...]  # empty when under the minimum group

    @property
    def average(self) -> float | None:
        return sum(self.scores) / len(self.scores) if self.scores else None


def closed_scores(*, session: Session, since: datetime) -> list[WindowScore]:
    """Per closed window whose week starts at or after ``since``: its answer count and, when kept, the scores."""
    wins = session.scalars(select(UsageWindow).where(col(UsageWindow.status) == "closed", col(UsageWindow.week_start) >= since)
                           .order_by(col(UsageWindow.week_start))).all()
    scores: dict[int, list[int]] = {}
    if wins:
        for wid, score in session.execute(select(col(UsageAnswer.window_id), col(UsageAnswer.score))
                                       .where(col(UsageAnswer.window_id).in_([w.id for w in wins]))):
            scores.setdefault(wid, []).append(int(score))
    return [WindowScore(w.capability, as_utc(w.week_start), w.answers, tuple(sorted(scores.get(w.id, [])))) for w in wins]


def comments(*, session: Session, since: datetime, limit: int = 50) -> list[tuple[str, int, str]]:
    """(capability, score, comment) of kept answers in closed windows since ``since``, lowest score first."""
    rows = session.execute(
        select(col(UsageWindow.capability), col(UsageAnswer.score), col(UsageAnswer.comment))
        .join(UsageWindow, col(UsageWindow.id) == col(UsageAnswer.window_id))
        .where(col(UsageAnswer.comment).is_not(None), col(UsageWindow.week_start) >= since)
        .order_by(col(UsageAnswer.score), col(UsageAnswer.id)).limit(limit)
    ).all()
    return [(c, int(s), t) for c, s, t in rows]


def asks_since(*, session: Session, since: datetime) -> int:
    return int(session.scalar(select(func.count()).select_from(UsageAsk).where(col(UsageAsk.asked_at) >= since)) or 0)


# ------------------------------------------------------------------ adoption


def weekly_activity(*, session: Session, edges: Sequence[datetime]) -> list[tuple[str, int, int, int, int]]:
    """Per capability and week of ``edges`` (bucket index): ``(capability, bucket, active users,
    events, failed events)`` over events in ``[edges[0], edges[-1])`` with a known user."""
    b = bucket(col(UsageEvent.at), edges).label("b")
    inner = (select(col(UsageEvent.capability).label("c"), b, col(UsageEvent.user_id).label("u"), col(UsageEvent.outcome).label("o"))
             .where(col(UsageEvent.at) >= edges[0], col(UsageEvent.at) < edges[-1], col(UsageEvent.user_id).is_not(None)).subquery("e"))
    rows = session.execute(
        select(inner.c.c, inner.c.b, func.count(distinct(inner.c.u)), func.count(),
               func.sum(case((inner.c.o == "failed", 1), else_=0)))
        .group_by(inner.c.c, inner.c.b)
    ).all()
    return [(c, int(bk), int(u), int(n), int(f or 0)) for c, bk, u, n, f in rows]


def rolling_users(*, session: Session, edges: Sequence[datetime], span: int = 4) -> list[tuple[str, int, int]]:
    """Per capability and week of ``edges``: distinct users in that week and the ``span - 1`` before
    it (``edges`` must start ``span - 1`` weeks before the first week wanted): ``(capability, bucket, users)``."""
    b = bucket(col(UsageEvent.at), edges)
    act = (select(col(UsageEvent.capability).label("c"), b.label("b"), col(UsageEvent.user_id).label("u"))
           .where(col(UsageEvent.at) >= edges[0], col(UsageEvent.at) < edges[-1], col(UsageEvent.user_id).is_not(None))
           .distinct().subquery("act"))
    weeks = select(act.c.b.label("w")).distinct().subquery("weeks")
    x = act.alias("x")
    rows = session.execute(
        select(x.c.c, weeks.c.w, func.count(distinct(x.c.u)))
        .select_from(weeks).join(x, and_(x.c.b <= weeks.c.w, x.c.b > weeks.c.w - span))
        .group_by(x.c.c, weeks.c.w)
    ).all()
    return [(c, int(w), int(n)) for c, w, n in rows]


def _firsts():
    """A subquery ``(c, u, first_cap, first_any)``: per capability and person, their first use of it
    and their first event of any capability."""
    any_first = (select(col(UsageEvent.user_id).label("u"), func.min(col(UsageEvent.at)).label("first_any"))
                 .where(col(UsageEvent.user_id).is_not(None)).group_by(col(UsageEvent.user_id)).subquery("anyf"))
    cap_first = (select(col(UsageEvent.capability).label("c"), col(UsageEvent.user_id).label("u"), func.min(col(UsageEvent.at)).label("first_cap"))
                 .where(col(UsageEvent.user_id).is_not(None)).group_by(col(UsageEvent.capability), col(UsageEvent.user_id)).subquery("capf"))
    return (select(cap_first.c.c, cap_first.c.u, cap_first.c.first_cap, any_first.c.first_any)
            .join(any_first, any_first.c.u == cap_first.c.u).subquery("firsts"))


def new_users(*, session: Session, edges: Sequence[datetime]) -> list[tuple[str, int, int]]:
    """Per capability and week: people whose first use of it ever falls in that week: ``(capability, bucket, people)``."""
    f = _firsts()
    b = bucket(f.c.first_cap, edges).label("b")
    inner = select(f.c.c, b).where(f.c.first_cap >= edges[0], f.c.first_cap < edges[-1]).subquery("n")
    rows = session.execute(select(inner.c.c, inner.c.b, func.count()).group_by(inner.c.c, inner.c.b)).all()
    return [(c, int(bk), int(n)) for c, bk, n in rows]


def time_to_first_use(*, session: Session, capability: str, start: datetime, end: datetime) -> timedelta | None:
    """The median, over people whose first use of ``capability`` falls in ``[start, end)``, of the time
    from their first event of any kind to that first use (0 for people whose first event it was)."""
    f = _firsts()
    return median_duration(session=session, since=f.c.first_any, until=f.c.first_cap, start=start, end=end,
                           where=(f.c.c == capability,))


def users_ever(*, session: Session, before: datetime) -> dict[str, int]:
    """Per capability, the people who used it before ``before``."""
    rows = session.execute(select(col(UsageEvent.capability), func.count(distinct(col(UsageEvent.user_id))))
                        .where(col(UsageEvent.at) < before, col(UsageEvent.user_id).is_not(None)).group_by(col(UsageEvent.capability))).all()
    return {c: int(n) for c, n in rows}


def forget_user(*, session: Session, user_id: str) -> int:
    """Delete a person's usage events, asks and audience entry (``platform-feedback forget``); how many
    events. A sealed answer of theirs in an open window can no longer be found (only their asks led
    to its pseudonym): it is erased unread at close."""
    from storage.models import UsageAudienceMember

    session.exec(delete(UsageAudienceMember).where(col(UsageAudienceMember.user_id) == user_id))
    session.exec(delete(UsageAsk).where(col(UsageAsk.user_id) == user_id))
    n = session.exec(delete(UsageEvent).where(col(UsageEvent.user_id) == user_id)).rowcount
    return int(n or 0)


# ------------------------------------------------------------------ the audience


def replace_audience(*, session: Session, users: Sequence[str]) -> int:
    """The audience is now exactly ``users`` (one transaction: readers see the old set or the new)."""
    from storage.models import UsageAudienceMember

    session.exec(delete(UsageAudienceMember))
    people = sorted(set(users))
    if people:
        now = utcnow()
        session.execute(insert_or_skip(session, UsageAudienceMember), [{"user_id": u, "seen_at": now} for u in people])
    return len(people)


def audience_size(*, session: Session) -> int:
    from storage.models import UsageAudienceMember

    return int(session.scalar(select(func.count()).select_from(UsageAudienceMember)) or 0)


def audience_active(*, session: Session, edges: Sequence[datetime]) -> list[tuple[str, int, int]]:
    """Per capability and week: audience members who used it: ``(capability, bucket, people)``."""
    from storage.models import UsageAudienceMember

    b = bucket(col(UsageEvent.at), edges).label("b")
    inner = (select(col(UsageEvent.capability).label("c"), b, col(UsageEvent.user_id).label("u"))
             .join(UsageAudienceMember, col(UsageAudienceMember.user_id) == col(UsageEvent.user_id))
             .where(col(UsageEvent.at) >= edges[0], col(UsageEvent.at) < edges[-1]).subquery("e"))
    rows = session.execute(select(inner.c.c, inner.c.b, func.count(distinct(inner.c.u))).group_by(inner.c.c, inner.c.b)).all()
    return [(c, int(bk), int(n)) for c, bk, n in rows]


def active_between(*, session: Session, capability: str, start: datetime, end: datetime) -> int:
    """Distinct people who used ``capability`` in ``[start, end)``."""
    return int(session.scalar(select(func.count(distinct(col(UsageEvent.user_id))))
                              .where(col(UsageEvent.capability) == capability, col(UsageEvent.at) >= start, col(UsageEvent.at) < end,
                                     col(UsageEvent.user_id).is_not(None))) or 0)
