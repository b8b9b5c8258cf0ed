"""Pulse-survey answers: sealed answer sets of an open run, the responses written at its close
(``close_run``, the step that makes a run anonymous; see ``storage.surveys``), and reading them
back for results. Queries with a keyword-only session."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, update
from sqlmodel import Session, col, select

from storage.models import OutboxMessage, RunStatus, SurveyAnswer, SurveyRecipient, SurveyResponse, SurveyRun, utcnow


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
