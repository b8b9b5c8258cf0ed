"""Survey results: which segments may be shown, NPS/CSAT/choices, response rate, change vs. the
previous run, the score history for the chart, and plain data for ``platform-feedback report``."""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from bot.policy import Survey, SurveyQuestion
from bot.surveys.timing import zone
from storage import surveys as store
from storage.models import as_utc, utcnow
from storage.surveys import ResponseRow, RunStatus, SurveyRun

# ------------------------------------------------------------------ who may be shown


def shown_segments(counts: dict[str | None, int], k: int) -> set[str]:
    """Segments whose results may be shown: at least ``k`` answers each, and what is hidden adds
    up to none or at least ``k`` (otherwise the total minus the shown segments would give away the
    hidden one; the smallest shown ones are hidden too until it does). ``None`` (no segment)
    is never shown and counts as hidden."""
    shown = {s for s, n in counts.items() if s is not None and n >= k}
    hidden = sum(n for s, n in counts.items() if s not in shown)
    while shown and 0 < hidden < k:
        smallest = min(shown, key=lambda s: (counts[s], s))
        shown.discard(smallest)
        hidden += counts[smallest]
    return shown


def segment_map(counts: dict[str | None, int], k: int) -> dict[str | None, str | None]:
    """At close: each segment label -> itself if it may be shown, else None (generalised)."""
    keep = shown_segments(counts, k)
    return {s: (s if s in keep else None) for s in counts}


# ------------------------------------------------------------------ results


@dataclass
class QuestionResult:
    question: SurveyQuestion
    count: int
    score: float | None = None  # NPS (-100..100) or CSAT average (1-5)
    distribution: dict[str, int] = field(default_factory=dict)  # value -> answers, in display order
    promoters: float | None = None  # NPS: % of answers
    passives: float | None = None
    detractors: float | None = None
    satisfied: float | None = None  # CSAT: % answering 4 or 5


@dataclass
class SegmentResult:
    segment: str
    responses: int
    delivered: int
    score: float | None


@dataclass
class Comment:
    response_id: str
    question: str | None  # a text question's id; None for the general comment
    text: str
    user_id: str | None  # only when the survey is not anonymous


@dataclass
class RunResults:
    run: SurveyRun
    survey: Survey
    recipients: int
    delivered: int
    responses: int
    withheld: bool  # anonymous and fewer than min_group answers: only counts are shown
    questions: list[QuestionResult]
    segments: list[SegmentResult]
    hidden_segments: int  # answers in segments too small to show (or in none)
    comments: list[Comment]
    score_name: str | None = None  # "NPS" or "CSAT"
    score: float | None = None
    previous: "RunResults | None" = None

    @property
    def rate(self) -> float | None:
        base = self.delivered or self.recipients
        return 100.0 * self.responses / base if base else None

    @property
    def change(self) -> float | None:
        if self.previous is None or self.previous.score is None or self.score is None or self.previous.withheld:
            return None
        return round(self.score - self.previous.score, 1)


def nps(scores: list[int]) -> float | None:
    if not scores:
        return None
    promoters = sum(1 for s in scores if s >= 9)
    detractors = sum(1 for s in scores if s <= 6)
    return round(100.0 * (promoters - detractors) / len(scores), 1)


def question_result(question: SurveyQuestion, answers: list) -> QuestionResult:
    if question.kind == "nps":
        scores = [a.score for a in answers if a.score is not None]
        n = len(scores)
        counts = Counter(scores)
        pct = (lambda x: round(100.0 * x / n, 1)) if n else (lambda x: None)
        return QuestionResult(
            question, n, nps(scores), {str(v): counts.get(v, 0) for v in range(11)},
            promoters=pct(sum(1 for s in scores if s >= 9)), passives=pct(sum(1 for s in scores if 7 <= s <= 8)),
            detractors=pct(sum(1 for s in scores if s <= 6)),
        )
    if question.kind == "csat":
        scores = [a.score for a in answers if a.score is not None]
        n = len(scores)
        counts = Counter(scores)
        return QuestionResult(
            question, n, round(sum(scores) / n, 2) if n else None, {str(v): counts.get(v, 0) for v in range(1, 6)},
            satisfied=round(100.0 * sum(1 for s in scores if s >= 4) / n, 1) if n else None,
        )
    if question.kind == "choice":
        chosen = [a.choice for a in answers if a.choice]
        counts = Counter(chosen)
        return QuestionResult(question, len(chosen), None, {o: counts.get(o, 0) for o in question.options})
    texts = [a.text for a in answers if a.text]
    return QuestionResult(question, len(texts))


def main_question(survey: Survey) -> SurveyQuestion | None:
    """The survey's headline score: its first NPS question, else its first CSAT question."""
    return next((q for q in survey.questions if q.kind == "nps"), None) or next((q for q in survey.questions if q.kind == "csat"), None)


def compute_results(
    run: SurveyRun,
    survey: Survey,
    responses: list[ResponseRow],
    recipients: dict[str | None, tuple[int, int]],
    *,
    previous: "RunResults | None" = None,
) -> RunResults:
    k = survey.min_group
    total_recipients = sum(t for t, _ in recipients.values())
    delivered = sum(d for _, d in recipients.values())
    answered = max(len(responses), run.responses or 0)  # a closed too-small anonymous run keeps only its count
    withheld = run.anonymous and answered < k
    questions = [question_result(q, [r.answers[q.id] for r in responses if q.id in r.answers]) for q in survey.questions]
    main = main_question(survey)
    headline = next((qr for qr in questions if main and qr.question.id == main.id), None)

    counts = Counter(r.segment for r in responses)
    shown = shown_segments(dict(counts), k)
    segments = []
    for label in sorted(shown):
        members = [r for r in responses if r.segment == label]
        score = question_result(main, [r.answers[main.id] for r in members if main.id in r.answers]).score if main else None
        segments.append(SegmentResult(label, len(members), recipients.get(label, (0, 0))[1], score))
    hidden = sum(n for s, n in counts.items() if s not in shown)

    comments: list[Comment] = []
    if not withheld:
        text_ids = [q.id for q in survey.questions if q.kind == "text"]
        for r in responses:
            who = None if run.anonymous else r.user_id
            for qid in text_ids:
                answer = r.answers.get(qid)
                if answer is not None and answer.text:
                    comments.append(Comment(r.id, qid, answer.text, who))
            if r.comment:
                comments.append(Comment(r.id, None, r.comment, who))
    return RunResults(
        run=run, survey=survey, recipients=total_recipients, delivered=delivered, responses=answered,
        withheld=withheld, questions=questions, segments=segments if not withheld else [], hidden_segments=hidden,
        comments=comments, score_name=(main.kind.upper() if main else None),
        score=(headline.score if headline and not withheld else None), previous=previous,
    )


def run_survey(run: SurveyRun) -> Survey:
    """The survey as it was defined when the run started."""
    return Survey.model_validate_json(run.definition)


def results_for_run(*, session: Session, run: SurveyRun, with_previous: bool = True) -> RunResults:
    survey = run_survey(run)
    previous = None
    if with_previous:
        earlier = session.exec(
            select(SurveyRun).where(SurveyRun.survey == run.survey, SurveyRun.status == RunStatus.closed, col(SurveyRun.id) < run.id)
            .order_by(col(SurveyRun.id).desc())
        ).first()
        if earlier is not None:
            previous = results_for_run(session=session, run=earlier, with_previous=False)
    return compute_results(
        run, survey, store.responses_of(session=session, run_id=run.id), store.recipient_segments(session=session, run_id=run.id),
        previous=previous,
    )


def score_history(*, session: Session, run: SurveyRun, limit: int = 12) -> list[tuple[str, float | None]]:
    """(date label, headline score) for the survey's closed runs up to ``run``, oldest first."""
    runs = store.closed_runs(session=session, survey=run.survey, up_to_id=run.id, limit=limit)
    if run.status != RunStatus.closed:
        runs = [*runs[-(limit - 1):], run] if limit > 1 else [run]
    tz = zone(run_survey(run).timezone)
    out = []
    for r in runs:
        results = results_for_run(session=session, run=r, with_previous=False)
        out.append((as_utc(r.started_at).astimezone(tz).strftime("%Y-%m-%d"), results.score))
    return out


# ------------------------------------------------------------------ for `platform-feedback report`


def _question_summary(qr: QuestionResult) -> dict:
    out = {"id": qr.question.id, "kind": qr.question.kind, "text": qr.question.text, "answers": qr.count}
    if qr.question.kind == "nps":
        out |= {"nps": qr.score, "promoters_pct": qr.promoters, "passives_pct": qr.passives, "detractors_pct": qr.detractors}
    elif qr.question.kind == "csat":
        out |= {"average": qr.score, "satisfied_pct": qr.satisfied}
    if qr.distribution:
        out["distribution"] = dict(qr.distribution)
    return out


def results_summary(results: RunResults) -> dict:
    run = results.run
    return {
        "survey": run.survey,
        "title": results.survey.display_title,
        "run_id": run.id,
        "status": run.status,
        "anonymous": run.anonymous,
        "started_at": as_utc(run.started_at).isoformat(),
        "closes_at": as_utc(run.closes_at).isoformat(),
        "closed_at": as_utc(run.closed_at).isoformat() if run.closed_at else None,
        "recipients": results.recipients,
        "delivered": results.delivered,
        "responses": results.responses,
        "response_rate_pct": round(results.rate, 1) if results.rate is not None else None,
        "withheld": results.withheld,
        "score_name": results.score_name,
        "score": results.score,
        "previous_score": results.previous.score if results.previous else None,
        "change": results.change,
        "questions": [] if results.withheld else [_question_summary(q) for q in results.questions],
        "segments": [{"segment": s.segment, "responses": s.responses, "delivered": s.delivered, "score": s.score} for s in results.segments],
        "comments": len(results.comments),
    }


def survey_results_for_report(session: Session, *, csat_days: int = 90) -> dict:
    """Plain data for ``platform-feedback report``: the latest closed run of every survey (results
    only as the survey's privacy rules allow: small segments hidden, anonymous runs with fewer than
    ``min_group`` answers withheld; no comment text), and the CSAT follow-ups of the last ``csat_days``.

    ``{"surveys": [results_summary(...) per survey, by name], "csat_followup": {"days", "asked",
    "answered", "average", "distribution"}}``
    """
    names = sorted(set(session.exec(select(SurveyRun.survey).where(SurveyRun.status == RunStatus.closed)).all()))
    surveys = []
    for name in names:
        run = session.exec(
            select(SurveyRun).where(SurveyRun.survey == name, SurveyRun.status == RunStatus.closed).order_by(col(SurveyRun.id).desc())
        ).first()
        assert run is not None  # its name was read from a closed run
        surveys.append(results_summary(results_for_run(session=session, run=run)))
    asked, scores = store.followup_scores(session=session, since=utcnow() - timedelta(days=csat_days))
    counts = Counter(scores)
    return {
        "surveys": surveys,
        "csat_followup": {
            "days": csat_days,
            "asked": asked,
            "answered": len(scores),
            "average": round(sum(scores) / len(scores), 2) if scores else None,
            "distribution": {str(v): counts.get(v, 0) for v in range(1, 6)},
        },
    }


def nps_by_run(*, session: Session, start: datetime, end: datetime) -> list[tuple[datetime, float, int]]:
    """(closed at, NPS, answers) for each closed run with an NPS question that closed in
    [start, end), oldest first; runs whose results are withheld (too few answers) are left out.
    For ``bot.insight.service.nps_series``."""
    runs = session.exec(
        select(SurveyRun).where(SurveyRun.status == RunStatus.closed, col(SurveyRun.closed_at) >= start, col(SurveyRun.closed_at) < end)
        .order_by(col(SurveyRun.closed_at), col(SurveyRun.id))
    ).all()
    points = []
    for run in runs:
        results = results_for_run(session=session, run=run, with_previous=False)
        if results.score_name == "NPS" and results.score is not None and run.closed_at is not None:  # (closed: it is set)
            points.append((as_utc(run.closed_at), results.score, results.responses))
    return points
