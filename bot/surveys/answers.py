"""Answering a run: a button, the comment modal, reading one's own answers back, opting out, and
a host filing a comment as a data point."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from bot.intake.drafts import new_draft
from bot.intake.filing import file_report
from bot.policy import Policy, Survey, SurveyQuestion
from bot.references import format_ref
from bot.surveys.results import run_survey
from bot.surveys.runs import SurveyError
from bot.surveys.sealing import Keys
from storage import surveys as store
from storage.models import Source, as_utc, utcnow
from storage.surveys import RunStatus, SurveyRun

SCORES = {"nps": range(0, 11), "csat": range(1, 6)}

# ------------------------------------------------------------------ answers


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
    status: str  # saved | closed | not_yours | invalid | kept (sealed under another key: cannot be changed)
    run: SurveyRun | None = None
    survey: Survey | None = None
    chosen: dict[str, str] | None = None
    texts: dict[str, str] | None = None
    comment: str | None = None
    content: dict | None = None  # what is sealed: {"a": {question id: {"score"|"choice"|"text": value}}, "c": comment}

    def opened(self) -> tuple[SurveyRun, Survey, dict]:
        """A saved state's run, survey and content (``_read`` gives a "saved" state all three)."""
        assert self.run is not None and self.survey is not None and self.content is not None, self.status
        return self.run, self.survey, self.content


def _is_open(run: SurveyRun, now: datetime) -> bool:
    return run.status != RunStatus.closed and run.secret is not None and as_utc(run.closes_at) > now


def _show(state: Answering) -> Answering:
    """Fill in what the person sees of their own answers (to highlight and prefill)."""
    _, survey, content = state.opened()
    answers = {q: store.SurveyAnswer(response_id="", question=q, **v) for q, v in content["a"].items()}
    questions = survey.questions
    state.chosen = {q.id: v for q in questions if (v := selected(q, answers.get(q.id))) is not None}
    state.texts = {q.id: text for q in questions if q.kind == "text" and q.id in answers and (text := answers[q.id].text)}
    state.comment = content.get("c")
    return state


def _read(session: Session, keys: Keys, run_id: int, user_id: str, now: datetime, lock: bool) -> tuple[Answering, store.SurveySealed | None]:
    """The person's answers so far, and the row they are sealed in (None before the first).
    Their recipient row is only read, never locked or written: a lock leaves the locker's
    transaction id in the row on PostgreSQL, which would tell who answered."""
    run = store.get_run(session=session, run_id=run_id)
    if run is None:
        return Answering("invalid"), None
    secret = run.secret
    if secret is None or not _is_open(run, now):
        return Answering("closed", run), None
    if store.get_recipient(session=session, run_id=run_id, user_id=user_id) is None:
        return Answering("not_yours", run), None
    row = store.get_sealed(session=session, slot=keys.slot(run.id, secret, user_id), lock=lock)
    content: dict | None = {"a": {}, "c": None}
    if row is not None:
        content = keys.open(run.id, secret, user_id, row.sealed)
        if content is None:  # the bot's secret changed since: what they gave stands
            return Answering("kept", run), None
    return Answering("saved", run, run_survey(run), content=content), row


def _answer(session: Session, keys: Keys, run_id: int, user_id: str, now: datetime | None, change: Callable[[Answering], bool]) -> Answering:
    """Read the person's answers (locked), apply ``change`` (False: invalid, nothing written) and
    seal them again under their pseudonym. Two first answers at once: the second sees the first's
    row and applies its change on top."""
    for _ in range(3):
        state, row = _read(session, keys, run_id, user_id, now or utcnow(), lock=True)
        if state.status != "saved":
            return state
        if not change(state):
            return Answering("invalid", state.run)
        run, _, content = state.opened()
        assert run.secret is not None  # _read saw it open
        slot = keys.slot(run.id, run.secret, user_id)
        blob = keys.seal(run.id, run.secret, user_id, content)
        if store.put_sealed(session=session, run_id=run.id, slot=slot, sealed=blob, row=row):
            return _show(state)
    raise SurveyError("Your answer could not be saved just now. Please press it again.")


def record_answer(
    *, session: Session, keys: Keys, run_id: int, user_id: str, question_id: str, raw: str, now: datetime | None = None
) -> Answering:
    """One button: the person's answer to one question, replacing any earlier one (sealed under
    their pseudonym until the run closes)."""

    def change(state: Answering) -> bool:
        _, survey, content = state.opened()
        question = next((q for q in survey.questions if q.id == question_id), None)
        value = read_button(question, raw) if question else None
        if value is None:
            return False
        content["a"][question_id] = value
        return True

    return _answer(session, keys, run_id, user_id, now, change)


def set_opt_out(*, session: Session, user_id: str, out: bool) -> bool:
    """``surveys off``: also takes back the DMs and reminders of runs under way that were not sent yet."""
    changed = store.set_opt_out(session=session, user_id=user_id, out=out)
    if out:
        for run_id in store.pending_runs_of(session=session, user_id=user_id):
            store.cancel_pending(session=session, run_id=run_id, user_id=user_id, reason="opted out")
    return changed


def record_texts(
    *, session: Session, keys: Keys, run_id: int, user_id: str, texts: dict[str, str], comment: str | None, now: datetime | None = None
) -> Answering:
    """The modal: free-text answers and the comment (empty clears them)."""

    def change(state: Answering) -> bool:
        _, survey, content = state.opened()
        known = {q.id for q in survey.questions if q.kind == "text"}
        for qid, text in texts.items():
            if qid in known:
                if text:
                    content["a"][qid] = {"text": text}
                else:
                    content["a"].pop(qid, None)
        content["c"] = comment or None
        return True

    return _answer(session, keys, run_id, user_id, now, change)


def current_answers(*, session: Session, keys: Keys, run_id: int, user_id: str, now: datetime | None = None) -> Answering:
    state, _ = _read(session, keys, run_id, user_id, now or utcnow(), lock=False)
    return _show(state) if state.status == "saved" else state


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
    assert run is not None  # a response's run (its foreign key)
    reporter = response.user_id if (not run.anonymous and response.user_id) else host
    draft = new_draft(
        taxonomy=policy.taxonomy, source=Source.survey, intake_key=f"survey:{response_id}:{question_id or 'comment'}",
        team_id=team_id, filed_by=host, reporter_id=reporter, text=text,
    )
    filed = file_report(session=session, draft=draft, prefix=policy.reference_prefix, triage_channel=policy.triage.channel)
    assert filed is not None  # None only for a repeated event id, and none is given
    ref = format_ref(policy.reference_prefix, filed.point.id)
    return f"Filed {ref} from that comment." if filed.created else f"That comment is already {ref}."
