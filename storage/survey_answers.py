"""Pulse-survey answers: sealed answer sets of an open run, the responses written at its close
(``close_run``, the step that makes a run anonymous; see ``storage.surveys``), and reading them
back for results. Queries with a keyword-only session."""

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from storage.database import insert_unique
from storage.models import OutboxMessage, RunStatus, SurveyAnswer, SurveyRecipient, SurveyResponse, SurveyRun, SurveySealed, utcnow

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ answers


def answers_of(*, session: Session, response_id: str) -> dict[str, SurveyAnswer]:
    rows = session.exec(select(SurveyAnswer).where(col(SurveyAnswer.response_id) == response_id)).all()
    return {a.question: a for a in rows}


def sealed_of_run(*, session: Session, run_id: int) -> dict[str, str]:
    """A run's sealed answer sets: slot -> sealed blob."""
    return dict(session.exec(select(col(SurveySealed.slot), col(SurveySealed.sealed)).where(col(SurveySealed.run_id) == run_id)).all())


def get_sealed(*, session: Session, slot: str, lock: bool = False) -> SurveySealed | None:
    stmt = select(SurveySealed).where(col(SurveySealed.slot) == slot)
    if lock:
        stmt = stmt.with_for_update()
    return session.exec(stmt).first()


def has_sealed(*, session: Session, slot: str) -> bool:
    return session.exec(select(col(SurveySealed.slot)).where(col(SurveySealed.slot) == slot)).first() is not None


def put_sealed(*, session: Session, run_id: int, slot: str, sealed: str, row: SurveySealed | None) -> bool:
    """Store a sealed answer set under ``slot``: replace ``row`` (read with ``lock``), or add it.
    False if another transaction added that slot meanwhile (read it again and retry)."""
    if row is not None:
        row.sealed = sealed
        session.add(row)
        session.flush()
        return True
    return insert_unique(session, SurveySealed(slot=slot, run_id=run_id, sealed=sealed))


@dataclass
class ResponseRow:
    id: str
    segment: str | None
    user_id: str | None
    comment: str | None
    answers: dict[str, SurveyAnswer]


def responses_of(*, session: Session, run_id: int) -> list[ResponseRow]:
    responses = list(session.exec(select(SurveyResponse).where(col(SurveyResponse.run_id) == run_id).order_by(col(SurveyResponse.id))).all())
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
    ``answered`` people answered, and erase the nonce, every sealed answer set and every reminder
    message (sent, dropped or taken back alike). Nothing written while the run was open said who
    answered (answering writes only ``survey_sealed``, under a pseudonym); ``wipe_files`` then
    removes the old versions of what was erased from the database's files."""
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
    session.exec(delete(SurveySealed).where(col(SurveySealed.run_id) == run.id).execution_options(synchronize_session=False))
    session.exec(
        delete(OutboxMessage).where(col(OutboxMessage.dedupe_key).like(f"survey:{run.id}:reminder%"))
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return run


# What a close erases, and the run row whose old version held the nonce: rewritten on PostgreSQL.
WIPED_TABLES = ("survey_sealed", "survey_run")
# How long a close keeps rewriting while an older transaction still sees what it erased (a report,
# a backup's dump, autovacuum's ANALYZE): such versions are copied into the new files, not dropped.
REWRITE_SECONDS = 60.0


def wipe_files(engine, *, within: float = REWRITE_SECONDS, sleep: Callable[[float], None] = time.sleep) -> bool:
    """After a close, remove the old versions of what it erased from the database's files.
    SQLite: fold the WAL into the database file and truncate it to zero bytes, so what the close
    erased (zeroed in the file by ``secure_delete``) is not left in the WAL either (best effort: a
    long-running reader can keep the WAL; the next call empties it). PostgreSQL: ``VACUUM FULL``
    of ``WIPED_TABLES`` (both small: the sealed answers of open runs, and the runs), because a plain
    VACUUM leaves a dead tuple's bytes in the page's free space; it takes each table's lock for a
    moment. A rewrite copies a dead version that a transaction begun before the close could still
    see ("N dead row versions cannot be removed yet", in VACUUM VERBOSE's detail), so each table is
    rewritten again, 0.1 s then up to 2 s apart, until none is kept, for at most ``within`` seconds.
    Returns False if something was left (logged; the caller tries again later). The WAL, archives,
    backups and replicas keep what they had (README, "Survey anonymity")."""
    if engine.dialect.name == "postgresql":
        deadline = time.monotonic() + within
        clean = [_rewrite(engine, table, deadline, sleep) for table in WIPED_TABLES]  # each, whatever the one before did
        return all(clean)
    if engine.dialect.name != "sqlite":
        return True
    raw = engine.raw_connection()
    try:
        raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        raw.close()
    return True


def _rewrite(engine, table: str, deadline: float, sleep: Callable[[float], None]) -> bool:
    """``VACUUM (FULL, VERBOSE) table`` until it keeps no dead version (or ``deadline`` passes)."""
    pause = 0.1
    while True:
        try:
            kept = _vacuum_full(engine, table)
        except SQLAlchemyError as exc:  # e.g. lock_timeout behind a long writer
            kept, why = None, f"could not rewrite it: {exc}".splitlines()[0]
        else:
            why = f"{kept} dead versions are kept for a transaction older than the close"
        if kept == 0:
            return True
        if time.monotonic() + pause > deadline:
            log.warning("survey close: %s still holds what the close erased (%s); the next survey tick rewrites it again",
                        table, why)
            return False
        log.debug("survey close: %s: %s; rewriting again in %.1f s", table, why, pause)
        sleep(pause)
        pause = min(2.0, pause * 2)


def _vacuum_full(engine, table: str) -> int:
    """Rewrite ``table``; return how many dead versions the rewrite had to keep (VACUUM VERBOSE's
    detail line "N dead row versions cannot be removed yet.", its first number in any language)."""
    details: list[str] = []
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        driver = conn.connection.driver_connection  # psycopg 3: INFO notices reach its handlers

        def notice(diag) -> None:
            if diag.message_detail:
                details.append(diag.message_detail)

        driver.add_notice_handler(notice)
        try:
            conn.exec_driver_sql("SET lock_timeout = '10s'")  # never queue for long behind a writer
            conn.exec_driver_sql(f"VACUUM (FULL, VERBOSE) {table}")
            conn.exec_driver_sql("RESET lock_timeout")  # the pooled connection goes back as it came
        finally:
            driver.remove_notice_handler(notice)
    counts = [int(m.group(1)) for d in details if (m := re.match(r"\D*(\d+)", d.splitlines()[0]))]
    if not counts:  # a server that says nothing of it: taken as done, once
        log.info("survey close: VACUUM VERBOSE did not say what it kept of %s; rewritten once", table)
        return 0
    return sum(counts)


def recipient_segments(*, session: Session, run_id: int) -> dict[str | None, tuple[int, int]]:
    """Per segment: (recipients, of whom delivered)."""
    rows = session.exec(
        select(col(SurveyRecipient.segment), col(SurveyRecipient.delivered), func.count())
        .where(col(SurveyRecipient.run_id) == run_id)
        .group_by(col(SurveyRecipient.segment), col(SurveyRecipient.delivered))
    ).all()
    out: dict[str | None, tuple[int, int]] = {}
    for segment, delivered, n in rows:
        total, done = out.get(segment, (0, 0))
        out[segment] = (total + n, done + (n if delivered else 0))
    return out
