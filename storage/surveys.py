"""Pulse surveys: runs, who was asked, what they answered, who opted out, and the short CSAT
follow-up after a resolve. Tables and queries (keyword-only session); no Slack in here.

Anonymity is a property of the tables, not of the screens that read them:

- ``survey_recipient`` is about people: who was asked, when their DM goes, whether they answered
  (to remind only those who did not) and, while the run is open, their answers *sealed*
  (encrypted under a run key that is never stored; see ``bot.operations.surveys.sealing``).
- ``survey_response`` / ``survey_answer`` are about answers, and are written only when the run
  closes (``close_run``): all at once, in random order, with random ids, without a time, and with
  ``user_id`` only for surveys that are not anonymous. Before that nothing in the clear ties an
  answer to anyone; after it nothing ties one to a person.
- At close the run's nonce and every sealed blob are erased, segments with fewer answers than
  the survey's ``min_group`` are generalised, and for anonymous runs the recipients' answered
  flags, reminder counts and reminder messages are erased too (and if fewer than ``min_group``
  answered, no answer is written, only their number). SQLite overwrites what is deleted with
  zeros (``PRAGMA secure_delete``, ``storage.database``) and ``wipe_files`` empties the WAL.
"""

import secrets
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Column, DateTime, String, Text, UniqueConstraint, delete, func, literal, text, update
from storage.database import insert_unique
from sqlmodel import Field, Session, SQLModel, col, or_, select

from storage.models import FrictionPoint, OutboxMessage, OutboxStatus, Reporter, utcnow


def _ts(**kw):
    return Field(default_factory=utcnow, sa_type=DateTime(timezone=True), **kw)


def _random_id() -> str:
    return uuid.uuid4().hex


class RunStatus:
    resolving = "resolving"  # finding the audience and queuing DMs (resumable)
    open = "open"
    closed = "closed"


class SurveyRun(SQLModel, table=True):
    """One sending of a survey: scheduled (``occurrence`` = the cron time) or by hand."""

    __tablename__ = "survey_run"
    __table_args__ = (UniqueConstraint("survey", "occurrence"),)

    id: int | None = Field(default=None, primary_key=True)
    survey: str = Field(max_length=32, index=True)
    occurrence: datetime = Field(sa_type=DateTime(timezone=True))
    manual: bool = False
    started_by: str | None = Field(default=None, max_length=32)
    # The survey's definition when the run started (JSON), so its results read right after the policy changes.
    definition: str = Field(sa_column=Column(Text, nullable=False))
    anonymous: bool = True
    deliver_now: bool = False  # by hand, "now": DMs go at once instead of at each person's delivery hour
    status: str = Field(default=RunStatus.resolving, sa_type=String(16), index=True)
    # A random nonce (hex): with the process key it gives the run's key (never stored); erased at close.
    secret: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # who is resolving it
    recipients: int = 0
    responses: int = 0  # how many answered, counted at close (the answers of a too-small anonymous run are not kept)
    error: str | None = Field(default=None, max_length=255)  # e.g. an audience channel the bot cannot read
    started_at: datetime = _ts()
    closes_at: datetime = Field(sa_type=DateTime(timezone=True))
    closed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class SurveyRecipient(SQLModel, table=True):
    """A person asked in a run. Nothing here says what they answered."""

    __tablename__ = "survey_recipient"
    __table_args__ = (UniqueConstraint("run_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="survey_run.id", index=True)
    user_id: str = Field(max_length=32)
    tz: str = Field(max_length=64)
    segment: str | None = Field(default=None, max_length=48)  # "usergroup:S123" or "channel:C123"
    deliver_at: datetime = Field(sa_type=DateTime(timezone=True))
    delivered: bool = False
    answered: bool | None = False  # for reminders; erased (None) when an anonymous run closes
    reminders: int = 0  # reminders queued; reset when an anonymous run closes
    # Their answers while the run is open, sealed (bot.operations.surveys.sealing); erased at close.
    sealed: str | None = Field(default=None, sa_column=Column(Text))


class SurveyResponse(SQLModel, table=True):
    """One person's answers in one run, without the person (see the module docstring); written at close."""

    __tablename__ = "survey_response"

    id: str = Field(default_factory=_random_id, primary_key=True, max_length=32)
    run_id: int = Field(foreign_key="survey_run.id", index=True)
    user_id: str | None = Field(default=None, max_length=32)  # only when the survey is not anonymous
    segment: str | None = Field(default=None, max_length=48)  # generalised at close if the group is small
    comment: str | None = Field(default=None, sa_column=Column(Text))


class SurveyAnswer(SQLModel, table=True):
    __tablename__ = "survey_answer"

    response_id: str = Field(foreign_key="survey_response.id", primary_key=True, max_length=32)
    question: str = Field(primary_key=True, max_length=32)
    score: int | None = None  # nps 0-10, csat 1-5
    choice: str | None = Field(default=None, max_length=75)
    text: str | None = Field(default=None, sa_column=Column(Text))


class SurveyOptOut(SQLModel, table=True):
    """``/platform-feedback surveys off``: no survey DMs for this person until ``surveys on``."""

    __tablename__ = "survey_opt_out"

    user_id: str = Field(primary_key=True, max_length=32)
    at: datetime = _ts()


class CsatFollowup(SQLModel, table=True):
    """"Did this solve your problem?" asked of a reporter after a host resolved their report."""

    __tablename__ = "csat_followup"
    __table_args__ = (UniqueConstraint("friction_change_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    # Purging a report (storage.privacy) takes its follow-ups with it.
    friction_point_id: int = Field(foreign_key="friction_point.id", index=True, ondelete="CASCADE")
    friction_change_id: int = Field(foreign_key="friction_change.id", ondelete="CASCADE")
    user_id: str = Field(max_length=32)
    asked_at: datetime = _ts(index=True)
    score: int | None = None
    answered_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


# ------------------------------------------------------------------ runs


def lock_survey(*, session: Session, survey: str) -> None:
    """Serialise starting runs of one survey until the transaction ends (PostgreSQL: an advisory
    lock; SQLite has one writer at a time anyway)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": zlib.crc32(f"survey:{survey}".encode())})


def create_run(
    *,
    session: Session,
    survey: str,
    definition: str,
    anonymous: bool,
    occurrence: datetime,
    closes_at: datetime,
    manual: bool = False,
    started_by: str | None = None,
    deliver_now: bool = False,
) -> SurveyRun | None:
    """A new run in "resolving"; None if this survey already has a run for ``occurrence``."""
    run = SurveyRun(
        survey=survey, definition=definition, anonymous=anonymous, occurrence=occurrence, closes_at=closes_at,
        manual=manual, started_by=started_by, deliver_now=deliver_now, secret=secrets.token_hex(32),
    )
    return run if insert_unique(session, run) else None


def get_run(*, session: Session, run_id: int) -> SurveyRun | None:
    return session.get(SurveyRun, run_id)


def lock_run(*, session: Session, run_id: int) -> SurveyRun | None:
    return session.exec(select(SurveyRun).where(SurveyRun.id == run_id).with_for_update()).first()


def live_runs(*, session: Session, survey: str | None = None) -> list[SurveyRun]:
    """Runs not closed yet (resolving or open), oldest first."""
    stmt = select(SurveyRun).where(SurveyRun.status != RunStatus.closed)
    if survey is not None:
        stmt = stmt.where(SurveyRun.survey == survey)
    return list(session.exec(stmt.order_by(col(SurveyRun.id))).all())


def latest_run(*, session: Session, survey: str) -> SurveyRun | None:
    return session.exec(select(SurveyRun).where(SurveyRun.survey == survey).order_by(col(SurveyRun.id).desc())).first()


def closed_runs(*, session: Session, survey: str, up_to_id: int | None = None, limit: int = 12) -> list[SurveyRun]:
    """The survey's closed runs, oldest first (the last ``limit`` of them, up to ``up_to_id``)."""
    stmt = select(SurveyRun).where(SurveyRun.survey == survey, SurveyRun.status == RunStatus.closed)
    if up_to_id is not None:
        stmt = stmt.where(SurveyRun.id <= up_to_id)
    rows = list(session.exec(stmt.order_by(col(SurveyRun.id).desc()).limit(limit)).all())
    return rows[::-1]


def take_lease(*, session: Session, run_id: int, seconds: float, now: datetime | None = None) -> SurveyRun | None:
    """Hold a resolving run for ``seconds`` so one instance resolves it at a time; None if it is
    not resolving any more, or someone else holds it. A crashed holder's lease simply runs out."""
    now = now or utcnow()
    run = session.exec(
        select(SurveyRun)
        .where(SurveyRun.id == run_id, SurveyRun.status == RunStatus.resolving)
        .where(or_(col(SurveyRun.lease_until).is_(None), col(SurveyRun.lease_until) < now))
        .with_for_update(skip_locked=True)
    ).first()
    if run is None:
        return None
    run.lease_until = now + timedelta(seconds=seconds)
    session.add(run)
    session.flush()
    return run


def renew_lease(*, session: Session, run_id: int, seconds: float) -> None:
    session.exec(
        update(SurveyRun).where(col(SurveyRun.id) == run_id).values(lease_until=utcnow() + timedelta(seconds=seconds))
        .execution_options(synchronize_session=False)
    )


def runs_to_resolve(*, session: Session, now: datetime | None = None) -> list[int]:
    now = now or utcnow()
    stmt = select(SurveyRun.id).where(SurveyRun.status == RunStatus.resolving).where(
        or_(col(SurveyRun.lease_until).is_(None), col(SurveyRun.lease_until) < now)
    )
    return list(session.exec(stmt.order_by(col(SurveyRun.id))).all())


def runs_due_to_close(*, session: Session, now: datetime | None = None) -> list[int]:
    now = now or utcnow()
    stmt = select(SurveyRun.id).where(SurveyRun.status == RunStatus.open, SurveyRun.closes_at <= now)
    return list(session.exec(stmt.order_by(col(SurveyRun.id))).all())


def open_run(*, session: Session, run_id: int, error: str | None = None) -> SurveyRun | None:
    run = lock_run(session=session, run_id=run_id)
    if run is None or run.status != RunStatus.resolving:
        return run
    run.status = RunStatus.open
    run.lease_until = None
    run.recipients = recipient_count(session=session, run_id=run_id)
    if error:
        run.error = error[:255]
    session.add(run)
    session.flush()
    return run


# ------------------------------------------------------------------ recipients


@dataclass(frozen=True)
class NewRecipient:
    user_id: str
    tz: str
    segment: str | None
    deliver_at: datetime


def recipient_ids(*, session: Session, run_id: int) -> set[str]:
    return set(session.exec(select(SurveyRecipient.user_id).where(SurveyRecipient.run_id == run_id)).all())


def recipient_count(*, session: Session, run_id: int) -> int:
    return session.exec(select(func.count()).select_from(SurveyRecipient).where(SurveyRecipient.run_id == run_id)).one()


def add_recipients(*, session: Session, run_id: int, people: list[NewRecipient]) -> list[SurveyRecipient]:
    """Add the people not yet in the run; returns the rows added (a repeat adds none). All at once,
    or one by one if another instance added some of them meanwhile."""
    known = recipient_ids(session=session, run_id=run_id)
    fresh = [p for p in dict((p.user_id, p) for p in people).values() if p.user_id not in known]
    rows = [SurveyRecipient(run_id=run_id, user_id=p.user_id, tz=p.tz, segment=p.segment, deliver_at=p.deliver_at) for p in fresh]
    if insert_unique(session, *rows):
        return rows
    known = recipient_ids(session=session, run_id=run_id)
    added = []
    for person in fresh:
        if person.user_id in known:
            continue
        row = SurveyRecipient(run_id=run_id, user_id=person.user_id, tz=person.tz, segment=person.segment, deliver_at=person.deliver_at)
        if not insert_unique(session, row):  # another instance added them meanwhile
            continue
        known.add(person.user_id)
        added.append(row)
    return added


def get_recipient(*, session: Session, run_id: int, user_id: str, lock: bool = False) -> SurveyRecipient | None:
    stmt = select(SurveyRecipient).where(SurveyRecipient.run_id == run_id, SurveyRecipient.user_id == user_id)
    if lock:
        stmt = stmt.with_for_update()
    return session.exec(stmt).first()


def recipients_of(*, session: Session, run_id: int) -> list[SurveyRecipient]:
    return list(session.exec(select(SurveyRecipient).where(SurveyRecipient.run_id == run_id).order_by(col(SurveyRecipient.id))).all())


def dm_key(run_id: int, user_id: str, reminder: int = 0) -> str:
    """The outbox dedupe key of a run's DM (``reminder`` 0) or reminder (1, 2) to one person."""
    return f"survey:{run_id}:{'dm' if not reminder else f'reminder{reminder}'}:{user_id}"


def mark_delivered(*, session: Session, run_id: int) -> int:
    """Note who has had their DM (its outbox message was sent): the response rate's base, and who
    may be reminded."""
    sent = (
        select(OutboxMessage.id)
        .where(OutboxMessage.dedupe_key == literal(f"survey:{run_id}:dm:") + SurveyRecipient.user_id)
        .where(OutboxMessage.status == OutboxStatus.sent)
    )
    result = session.exec(
        update(SurveyRecipient)
        .where(col(SurveyRecipient.run_id) == run_id, col(SurveyRecipient.delivered).is_(False), sent.exists())
        .values(delivered=True)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def cancel_pending(*, session: Session, run_id: int, user_id: str | None = None, reminders_only: bool = False, reason: str) -> int:
    """Take back survey messages not sent yet: a person's reminders once they answered, a person's
    DMs once they opted out, or all of a run's once it closed. They stay in the outbox as failed,
    with ``reason``."""
    if user_id is not None:
        keys = [dm_key(run_id, user_id, n) for n in ((1, 2) if reminders_only else (0, 1, 2))]
        which = col(OutboxMessage.dedupe_key).in_(keys)
    else:
        which = col(OutboxMessage.dedupe_key).like(f"survey:{run_id}:%:%")
    result = session.exec(
        update(OutboxMessage)
        .where(which, OutboxMessage.status == OutboxStatus.pending)
        .values(status=OutboxStatus.failed, last_error=reason[:255], claimed_until=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def pending_runs_of(*, session: Session, user_id: str) -> list[int]:
    """Live runs that still hold an unsent DM or reminder for ``user_id``."""
    recipient_runs = select(SurveyRecipient.run_id).where(SurveyRecipient.user_id == user_id)
    return list(session.exec(
        select(SurveyRun.id).where(SurveyRun.status != RunStatus.closed, col(SurveyRun.id).in_(recipient_runs))
    ).all())


def reminder_candidates(*, session: Session, run_id: int) -> list[SurveyRecipient]:
    """Who may still need a reminder: delivered, not answered, fewer than two reminders."""
    stmt = select(SurveyRecipient).where(
        SurveyRecipient.run_id == run_id,
        col(SurveyRecipient.delivered).is_(True),
        col(SurveyRecipient.answered).is_not(True),
        SurveyRecipient.reminders < 2,
    )
    return list(session.exec(stmt.order_by(col(SurveyRecipient.id))).all())


# ------------------------------------------------------------------ opt-out


def opted_out(*, session: Session, user_ids: set[str] | None = None) -> set[str]:
    stmt = select(SurveyOptOut.user_id)
    if user_ids is not None:
        if not user_ids:
            return set()
        stmt = stmt.where(col(SurveyOptOut.user_id).in_(list(user_ids)))
    return set(session.exec(stmt).all())


def set_opt_out(*, session: Session, user_id: str, out: bool) -> bool:
    """Opt ``user_id`` out (``out``) or back in. Returns whether anything changed."""
    row = session.get(SurveyOptOut, user_id)
    if out and row is None:
        return insert_unique(session, SurveyOptOut(user_id=user_id))
    if not out and row is not None:
        session.delete(row)
        session.flush()
        return True
    return False


def active_users(*, session: Session, since: datetime) -> set[str]:
    """Everyone who used the bot since ``since``: reporters and the people who filed."""
    reporters = session.exec(select(Reporter.user_id).where(Reporter.reported_at >= since)).all()
    filers = session.exec(select(FrictionPoint.filed_by).where(FrictionPoint.created_at >= since)).all()
    return {u for u in (*reporters, *filers) if u and u[:1] in ("U", "W")}


# ------------------------------------------------------------------ answers


def answers_of(*, session: Session, response_id: str) -> dict[str, SurveyAnswer]:
    rows = session.exec(select(SurveyAnswer).where(SurveyAnswer.response_id == response_id)).all()
    return {a.question: a for a in rows}


def sealed_of_run(*, session: Session, run_id: int) -> list[SurveyRecipient]:
    """The recipients of a run who have answers sealed on their row."""
    stmt = select(SurveyRecipient).where(SurveyRecipient.run_id == run_id, col(SurveyRecipient.sealed).is_not(None))
    return list(session.exec(stmt.order_by(col(SurveyRecipient.id))).all())


@dataclass
class ResponseRow:
    id: str
    segment: str | None
    user_id: str | None
    comment: str | None
    answers: dict[str, SurveyAnswer]


def responses_of(*, session: Session, run_id: int) -> list[ResponseRow]:
    responses = list(session.exec(select(SurveyResponse).where(SurveyResponse.run_id == run_id).order_by(col(SurveyResponse.id))).all())
    if not responses:
        return []
    answers = session.exec(select(SurveyAnswer).where(col(SurveyAnswer.response_id).in_([r.id for r in responses]))).all()
    by_response: dict[str, dict[str, SurveyAnswer]] = {}
    for a in answers:
        by_response.setdefault(a.response_id, {})[a.question] = a
    return [ResponseRow(r.id, r.segment, r.user_id, r.comment, by_response.get(r.id, {})) for r in responses]


def get_response(*, session: Session, response_id: str) -> SurveyResponse | None:
    return session.get(SurveyResponse, response_id)


# ------------------------------------------------------------------ closing


@dataclass
class NewResponse:
    """An answer set written at close: question id -> {"score"|"choice"|"text": value}."""

    segment: str | None
    user_id: str | None  # only when the survey is not anonymous
    comment: str | None
    answers: dict[str, dict]


def close_run(*, session: Session, run: SurveyRun, responses: list[NewResponse], answered: int, now: datetime | None = None) -> SurveyRun:
    """Close ``run`` (open, and locked by the caller with ``lock_run``): write ``responses`` in
    the order given (the caller shuffles them: row order must not be answer order), note that
    ``answered`` people answered, and erase the nonce and every sealed blob. For an anonymous
    run also erase who answered: the answered flags, reminder counts and the reminder messages in
    the outbox (sent or taken back alike)."""
    run.status = RunStatus.closed
    run.closed_at = now or utcnow()
    run.secret = None
    run.responses = answered
    session.add(run)
    for draft in responses:
        response = SurveyResponse(run_id=run.id, user_id=draft.user_id, segment=draft.segment, comment=draft.comment)
        session.add(response)
        session.flush()
        for question, value in draft.answers.items():
            session.add(SurveyAnswer(response_id=response.id, question=question, score=value.get("score"),
                                     choice=value.get("choice"), text=value.get("text")))
    scrub = {"sealed": None} | ({"answered": None, "reminders": 0} if run.anonymous else {})
    session.exec(
        update(SurveyRecipient).where(col(SurveyRecipient.run_id) == run.id).values(**scrub).execution_options(synchronize_session=False)
    )
    if run.anonymous:
        session.exec(
            delete(OutboxMessage).where(col(OutboxMessage.dedupe_key).like(f"survey:{run.id}:reminder%"))
            .execution_options(synchronize_session=False)
        )
    session.flush()
    return run


def wipe_files(engine) -> None:
    """After a close, on SQLite: fold the WAL into the database file and truncate it to zero
    bytes, so what the close erased (zeroed in the file by ``secure_delete``) is not left in the
    WAL either. Best effort: a long-running reader can keep the WAL; the next call empties it.
    Nothing to do on PostgreSQL (nothing linkable was written there)."""
    if engine.dialect.name != "sqlite":
        return
    raw = engine.raw_connection()
    try:
        raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        raw.close()


def recipient_segments(*, session: Session, run_id: int) -> dict[str | None, tuple[int, int]]:
    """Per segment: (recipients, of whom delivered)."""
    rows = session.exec(
        select(SurveyRecipient.segment, SurveyRecipient.delivered, func.count())
        .where(SurveyRecipient.run_id == run_id)
        .group_by(SurveyRecipient.segment, SurveyRecipient.delivered)
    ).all()
    out: dict[str | None, tuple[int, int]] = {}
    for segment, delivered, n in rows:
        total, done = out.get(segment, (0, 0))
        out[segment] = (total + n, done + (n if delivered else 0))
    return out


# ------------------------------------------------------------------ CSAT follow-up


def add_followup(*, session: Session, point_id: int, change_id: int, user_id: str) -> CsatFollowup | None:
    row = CsatFollowup(friction_point_id=point_id, friction_change_id=change_id, user_id=user_id)
    return row if insert_unique(session, row) else None


def get_followup(*, session: Session, followup_id: int) -> CsatFollowup | None:
    return session.get(CsatFollowup, followup_id)


def answer_followup(*, session: Session, followup_id: int, user_id: str, score: int) -> CsatFollowup | None:
    row = session.exec(select(CsatFollowup).where(CsatFollowup.id == followup_id).with_for_update()).first()
    if row is None or row.user_id != user_id:
        return None
    row.score, row.answered_at = score, utcnow()
    session.add(row)
    session.flush()
    return row


def followup_scores(*, session: Session, since: datetime) -> tuple[int, list[int]]:
    """(how many were asked since ``since``, the scores given)."""
    rows = session.exec(select(CsatFollowup.score).where(CsatFollowup.asked_at >= since)).all()
    return len(rows), [s for s in rows if s is not None]


# ------------------------------------------------------------------ privacy


def forget_user(*, session: Session, user_id: str) -> dict[str, int]:
    """A person's survey data, for ``storage.privacy.forget_user``: their answers in runs still
    open (sealed on their recipient rows), their name on answers to surveys that were not
    anonymous, their recipient entries and their CSAT follow-ups. Their opt-out is kept: someone
    who asked to be forgotten is not surveyed again."""
    live = select(SurveyRun.id).where(SurveyRun.status != RunStatus.closed)
    removed = session.exec(
        select(func.count()).select_from(SurveyRecipient)
        .where(SurveyRecipient.user_id == user_id, col(SurveyRecipient.sealed).is_not(None), col(SurveyRecipient.run_id).in_(live))
    ).one()  # their sealed answers go with their recipient rows
    return {
        "survey_responses_removed": removed,
        "survey_names_removed": session.execute(
            update(SurveyResponse).where(col(SurveyResponse.user_id) == user_id).values(user_id=None)
            .execution_options(synchronize_session=False)).rowcount,
        "survey_recipient_entries_removed": session.execute(delete(SurveyRecipient).where(col(SurveyRecipient.user_id) == user_id)).rowcount,
        "csat_followups_removed": session.execute(delete(CsatFollowup).where(col(CsatFollowup.user_id) == user_id)).rowcount,
    }
