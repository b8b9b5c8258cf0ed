"""Pulse surveys: runs, who was asked, what they answered, who opted out, and the short CSAT
follow-up after a resolve. Tables and queries (keyword-only session); no Slack in here.

Anonymity is a property of the tables, not of the screens that read them:

- ``survey_recipient`` is about people: who was asked, when their DM goes, whether it went and
  how many reminders were queued. Answering never writes it, so no version of a recipient row
  differs between those who answered and those who did not.
- ``survey_sealed`` holds, while the run is open, each answer set *sealed* (encrypted under a run
  key that is never stored; see ``bot.surveys.sealing``) under a pseudonym, HMAC(run
  key, user id): without the bot's secret no row there names anyone.
- ``survey_response`` / ``survey_answer`` are about answers, and are written only when the run
  closes (``close_run``): all at once, in random order, with random ids, without a time, and with
  ``user_id`` only for surveys that are not anonymous.
- At close the run's nonce, every sealed answer set and every reminder message are erased, and
  segments with fewer answers than the survey's ``min_group`` are generalised (if fewer than
  ``min_group`` answered an anonymous run, no answer is written, only their number). SQLite
  overwrites what is deleted with zeros (``PRAGMA secure_delete``, ``storage.database``);
  ``wipe_files`` empties its WAL, or rewrites PostgreSQL's tables that held the erased rows.
"""

import secrets
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, literal, text, update
from sqlmodel import Session, col, or_, select

from storage.database import insert_unique
from storage.models import (  # noqa: F401 (the survey tables live in storage.models; callers import them from here too)
    CsatFollowup,
    FrictionPoint,
    OutboxMessage,
    OutboxStatus,
    Reporter,
    RunStatus,
    SurveyAnswer,
    SurveyOptOut,
    SurveyRecipient,
    SurveyResponse,
    SurveyRun,
    SurveySealed,
    utcnow,
)
from storage.survey_answers import (  # noqa: E402,F401 (one import for callers: storage.surveys)
    NewResponse,
    ResponseRow,
    answers_of,
    close_run,
    get_response,
    get_sealed,
    has_sealed,
    put_sealed,
    recipient_segments,
    responses_of,
    sealed_of_run,
    wipe_files,
)

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
    return session.exec(select(SurveyRun).where(col(SurveyRun.id) == run_id).with_for_update()).first()


def live_runs(*, session: Session, survey: str | None = None) -> list[SurveyRun]:
    """Runs not closed yet (resolving or open), oldest first."""
    stmt = select(SurveyRun).where(col(SurveyRun.status) != RunStatus.closed)
    if survey is not None:
        stmt = stmt.where(col(SurveyRun.survey) == survey)
    return list(session.exec(stmt.order_by(col(SurveyRun.id))).all())


def latest_run(*, session: Session, survey: str) -> SurveyRun | None:
    return session.exec(select(SurveyRun).where(col(SurveyRun.survey) == survey).order_by(col(SurveyRun.id).desc())).first()


def closed_runs(*, session: Session, survey: str, up_to_id: int | None = None, limit: int = 12) -> list[SurveyRun]:
    """The survey's closed runs, oldest first (the last ``limit`` of them, up to ``up_to_id``)."""
    stmt = select(SurveyRun).where(col(SurveyRun.survey) == survey, col(SurveyRun.status) == RunStatus.closed)
    if up_to_id is not None:
        stmt = stmt.where(col(SurveyRun.id) <= up_to_id)
    rows = list(session.exec(stmt.order_by(col(SurveyRun.id).desc()).limit(limit)).all())
    return rows[::-1]


def take_lease(*, session: Session, run_id: int, seconds: float, now: datetime | None = None) -> SurveyRun | None:
    """Hold a resolving run for ``seconds`` so one instance resolves it at a time; None if it is
    not resolving any more, or someone else holds it. A crashed holder's lease simply runs out."""
    now = now or utcnow()
    run = session.exec(
        select(SurveyRun)
        .where(col(SurveyRun.id) == run_id, col(SurveyRun.status) == RunStatus.resolving)
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
    stmt = select(col(SurveyRun.id)).where(col(SurveyRun.status) == RunStatus.resolving).where(
        or_(col(SurveyRun.lease_until).is_(None), col(SurveyRun.lease_until) < now)
    )
    return list(session.exec(stmt.order_by(col(SurveyRun.id))).all())


def runs_due_to_close(*, session: Session, now: datetime | None = None) -> list[int]:
    now = now or utcnow()
    stmt = select(col(SurveyRun.id)).where(col(SurveyRun.status) == RunStatus.open, col(SurveyRun.closes_at) <= now)
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
    return set(session.exec(select(col(SurveyRecipient.user_id)).where(col(SurveyRecipient.run_id) == run_id)).all())


def recipient_count(*, session: Session, run_id: int) -> int:
    return session.exec(select(func.count()).select_from(SurveyRecipient).where(col(SurveyRecipient.run_id) == run_id)).one()


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
    stmt = select(SurveyRecipient).where(col(SurveyRecipient.run_id) == run_id, col(SurveyRecipient.user_id) == user_id)
    if lock:
        stmt = stmt.with_for_update()
    return session.exec(stmt).first()


def recipients_of(*, session: Session, run_id: int) -> list[SurveyRecipient]:
    return list(session.exec(select(SurveyRecipient).where(col(SurveyRecipient.run_id) == run_id).order_by(col(SurveyRecipient.id))).all())


def dm_key(run_id: int, user_id: str, reminder: int = 0) -> str:
    """The outbox dedupe key of a run's DM (``reminder`` 0) or reminder (1, 2) to one person."""
    return f"survey:{run_id}:{'dm' if not reminder else f'reminder{reminder}'}:{user_id}"


def mark_delivered(*, session: Session, run_id: int) -> int:
    """Note who has had their DM (its outbox message was sent): the response rate's base, and who
    may be reminded."""
    sent = (
        select(col(OutboxMessage.id))
        .where(col(OutboxMessage.dedupe_key) == literal(f"survey:{run_id}:dm:") + col(SurveyRecipient.user_id))
        .where(col(OutboxMessage.status) == OutboxStatus.sent)
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
        .where(which, col(OutboxMessage.status) == OutboxStatus.pending)
        .values(status=OutboxStatus.failed, last_error=reason[:255], claimed_until=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def pending_runs_of(*, session: Session, user_id: str) -> list[int]:
    """Live runs that still hold an unsent DM or reminder for ``user_id``."""
    recipient_runs = select(col(SurveyRecipient.run_id)).where(col(SurveyRecipient.user_id) == user_id)
    return list(session.exec(
        select(col(SurveyRun.id)).where(col(SurveyRun.status) != RunStatus.closed, col(SurveyRun.id).in_(recipient_runs))
    ).all())


def reminder_candidates(*, session: Session, run_id: int) -> list[SurveyRecipient]:
    """Who may still get a reminder: delivered, fewer than two reminders. Whether they answered
    is not known here (it is not stored in the clear): the reminder's outbox hook looks at send
    time and drops it for someone who did."""
    stmt = select(SurveyRecipient).where(
        col(SurveyRecipient.run_id) == run_id,
        col(SurveyRecipient.delivered).is_(True),
        col(SurveyRecipient.reminders) < 2,
    )
    return list(session.exec(stmt.order_by(col(SurveyRecipient.id))).all())


# ------------------------------------------------------------------ opt-out


def opted_out(*, session: Session, user_ids: set[str] | None = None) -> set[str]:
    stmt = select(col(SurveyOptOut.user_id))
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
    reporters = session.exec(select(col(Reporter.user_id)).where(col(Reporter.reported_at) >= since)).all()
    filers = session.exec(select(col(FrictionPoint.filed_by)).where(col(FrictionPoint.created_at) >= since)).all()
    return {u for u in (*reporters, *filers) if u and u[:1] in ("U", "W")}


# ------------------------------------------------------------------ CSAT follow-up


def add_followup(*, session: Session, point_id: int, change_id: int, user_id: str) -> CsatFollowup | None:
    row = CsatFollowup(friction_point_id=point_id, friction_change_id=change_id, user_id=user_id)
    return row if insert_unique(session, row) else None


def get_followup(*, session: Session, followup_id: int) -> CsatFollowup | None:
    return session.get(CsatFollowup, followup_id)


def answer_followup(*, session: Session, followup_id: int, user_id: str, score: int) -> CsatFollowup | None:
    row = session.exec(select(CsatFollowup).where(col(CsatFollowup.id) == followup_id).with_for_update()).first()
    if row is None or row.user_id != user_id:
        return None
    row.score, row.answered_at = score, utcnow()
    session.add(row)
    session.flush()
    return row


def followup_scores(*, session: Session, since: datetime) -> tuple[int, list[int]]:
    """(how many were asked since ``since``, the scores given)."""
    rows = session.exec(select(col(CsatFollowup.score)).where(col(CsatFollowup.asked_at) >= since)).all()
    return len(rows), [s for s in rows if s is not None]


# ------------------------------------------------------------------ privacy


def forget_user(*, session: Session, user_id: str, slot_of: Callable[[int, str], str] | None = None) -> dict[str, int]:
    """A person's survey data, for ``storage.privacy.forget_user``: their answers in runs still
    open (``slot_of(run id, run nonce)`` gives their pseudonym there, ``Keys.slot`` with the bot's
    secret; without it those stay until the close, unlinkable without that secret), their name on
    answers to surveys that were not anonymous, their recipient entries and their CSAT
    follow-ups. Their opt-out is kept: someone who asked to be forgotten is not surveyed again."""
    removed = 0
    if slot_of is not None:
        asked = select(col(SurveyRecipient.run_id)).where(col(SurveyRecipient.user_id) == user_id)
        for run_id, nonce in session.exec(
            select(col(SurveyRun.id), col(SurveyRun.secret))
            .where(col(SurveyRun.status) != RunStatus.closed, col(SurveyRun.secret).is_not(None), col(SurveyRun.id).in_(asked))
        ).all():
            assert nonce is not None  # selected where the secret is set
            removed += session.exec(delete(SurveySealed).where(
                col(SurveySealed.run_id) == run_id, col(SurveySealed.slot) == slot_of(run_id, nonce))).rowcount
    return {
        "survey_responses_removed": removed,
        "survey_names_removed": session.exec(
            update(SurveyResponse).where(col(SurveyResponse.user_id) == user_id).values(user_id=None)
            .execution_options(synchronize_session=False)).rowcount,
        "survey_recipient_entries_removed": session.exec(delete(SurveyRecipient).where(col(SurveyRecipient.user_id) == user_id)).rowcount,
        "csat_followups_removed": session.exec(delete(CsatFollowup).where(col(CsatFollowup.user_id) == user_id)).rowcount,
    }
