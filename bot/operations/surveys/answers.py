"""Answering a run: a button, the comment modal, reading one's own answers back, opting out, and
a host filing a comment as a data point."""

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from bot.operations.intake import file_report, suggest_categories
from bot.operations.surveys.results import run_survey
from bot.operations.surveys.runs import SurveyError
from bot.runtime.config import Policy, Survey, SurveyQuestion
from storage import surveys as store
from storage.friction import FrictionDraft
from storage.models import Source, as_utc, utcnow
from storage.surveys import RunStatus, SurveyRun

SCORES = {"nps": range(0, 11), "csat": range(1, 6)}

# ------------------------------------------------------------------ answers


respondent_key = store.respondent_key  # HMAC-SHA256(run secret, user id); see storage.surveys


def read_button(question: SurveyQuestion, raw: str) -> dict | None:
    """A button's value for ``question`` as stored: {"score": n} or {"choice": label}; None if invalid."""
    if question.kind in SCORES:
        if raw.isdigit() and int(raw) in SCORES[question.kind]:
            return {"score": int(raw)}
        return None
    if question.kind == "choice" and raw.isdigit() and int(raw) < len(question.options):
        return {"choice": question.options[int(raw)]}
    return None


def selected(question: SurveyQuestion, answer) -> str | None:
    """The button value that stands for a stored answer (to highlight it)."""
    if answer is None:
        return None
    if question.kind in SCORES and answer.score is not None:
        return str(answer.score)
    if question.kind == "choice" and answer.choice in question.options:
        return str(question.options.index(answer.choice))
    return None


@dataclass
class Answering:
    status: str  # saved | closed | not_yours | invalid
    run: SurveyRun | None = None
    survey: Survey | None = None
    chosen: dict[str, str] | None = None
    texts: dict[str, str] | None = None
    comment: str | None = None
    recipient: store.SurveyRecipient | None = None


def _is_open(run: SurveyRun, now: datetime) -> bool:
    return run.status != RunStatus.closed and run.secret is not None and as_utc(run.closes_at) > now


def _current(session: Session, run: SurveyRun, survey: Survey, user_id: str) -> tuple[dict[str, str], dict[str, str], str | None]:
    response = store.find_response(session=session, run_id=run.id, respondent_key=respondent_key(run.secret, user_id))
    if response is None:
        return {}, {}, None
    answers = store.answers_of(session=session, response_id=response.id)
    chosen = {q.id: v for q in survey.questions if (v := selected(q, answers.get(q.id))) is not None}
    texts = {q.id: answers[q.id].text for q in survey.questions if q.kind == "text" and q.id in answers and answers[q.id].text}
    return chosen, texts, response.comment


def _answering(session: Session, run_id: int, user_id: str, now: datetime, lock: bool) -> Answering:
    run = store.get_run(session=session, run_id=run_id)
    if run is None:
        return Answering("invalid")
    if not _is_open(run, now):
        return Answering("closed", run)
    recipient = store.get_recipient(session=session, run_id=run_id, user_id=user_id, lock=lock)
    if recipient is None:
        return Answering("not_yours", run)
    return Answering("saved", run, run_survey(run), recipient=recipient)


def record_answer(*, session: Session, run_id: int, user_id: str, question_id: str, raw: str, now: datetime | None = None) -> Answering:
    """One button: the person's answer to one question, replacing any earlier one."""
    state = _answering(session, run_id, user_id, now or utcnow(), lock=True)
    if state.status != "saved":
        return state
    question = next((q for q in state.survey.questions if q.id == question_id), None)
    value = read_button(question, raw) if question else None
    if value is None:
        return Answering("invalid", state.run)
    store.save_answers(
        session=session, run_id=run_id, respondent_key=respondent_key(state.run.secret, user_id),
        user_id=None if state.run.anonymous else user_id, segment=state.recipient.segment, answers={question_id: value},
    )
    state.recipient.answered = True
    session.add(state.recipient)
    store.cancel_pending(session=session, run_id=run_id, user_id=user_id, reminders_only=True, reason="answered")
    state.chosen, state.texts, state.comment = _current(session, state.run, state.survey, user_id)
    return state


def set_opt_out(*, session: Session, user_id: str, out: bool) -> bool:
    """``surveys off``: also takes back the DMs and reminders of runs under way that were not sent yet."""
    changed = store.set_opt_out(session=session, user_id=user_id, out=out)
    if out:
        for run_id in store.pending_runs_of(session=session, user_id=user_id):
            store.cancel_pending(session=session, run_id=run_id, user_id=user_id, reason="opted out")
    return changed


def record_texts(*, session: Session, run_id: int, user_id: str, texts: dict[str, str], comment: str | None, now: datetime | None = None) -> Answering:
    """The modal: free-text answers and the comment (empty clears them)."""
    state = _answering(session, run_id, user_id, now or utcnow(), lock=True)
    if state.status != "saved":
        return state
    known = {q.id for q in state.survey.questions if q.kind == "text"}
    answers = {qid: {"text": text or None} for qid, text in texts.items() if qid in known}
    store.save_answers(
        session=session, run_id=run_id, respondent_key=respondent_key(state.run.secret, user_id),
        user_id=None if state.run.anonymous else user_id, segment=state.recipient.segment, answers=answers,
        comment=comment or None, set_comment=True,
    )
    if any(v["text"] for v in answers.values()) or comment:
        state.recipient.answered = True
        session.add(state.recipient)
        store.cancel_pending(session=session, run_id=run_id, user_id=user_id, reminders_only=True, reason="answered")
    state.chosen, state.texts, state.comment = _current(session, state.run, state.survey, user_id)
    return state


def current_answers(*, session: Session, run_id: int, user_id: str, now: datetime | None = None) -> Answering:
    state = _answering(session, run_id, user_id, now or utcnow(), lock=False)
    if state.status == "saved":
        state.chosen, state.texts, state.comment = _current(session, state.run, state.survey, user_id)
    return state


def file_comment(*, session: Session, response_id: str, question_id: str | None, host: str, team_id: str, policy: Policy) -> str:
    """A host files a survey comment as a friction data point (once: the same click again finds it).
    The respondent is its reporter only when the survey was not anonymous."""
    response = store.get_response(session=session, response_id=response_id)
    if response is None:
        raise SurveyError("That comment no longer exists.")
    run = store.get_run(session=session, run_id=response.run_id)
    if question_id:
        answer = store.answers_of(session=session, response_id=response_id).get(question_id)
        text = answer.text if answer else None
    else:
        text = response.comment
    if not text:
        raise SurveyError("That comment is empty now (it was changed).")
    reporter = response.user_id if (not run.anonymous and response.user_id) else host
    draft = FrictionDraft(
        team_id=team_id, filed_by=host, reporter_id=reporter, text=text[:3000], source=Source.survey,
        intake_key=f"survey:{response_id}:{question_id or 'comment'}",
        auto_categories=suggest_categories(text, policy.taxonomy),
    )
    filed = file_report(session=session, draft=draft, prefix=policy.reference_prefix, triage_channel=policy.triage.channel)
    ref = f"{policy.reference_prefix}-{filed.point.id}"
    return f"Filed {ref} from that comment." if filed.created else f"That comment is already {ref}."
