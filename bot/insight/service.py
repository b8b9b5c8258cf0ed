"""Friction insight: which friction hurts most and how it trends, how well the loop closes, possible
duplicates, and every data point as rows for export. Plain functions on a session that return
dataclasses; no Slack in here.

Friction score (documented in the README). Over a window, for each data point that is not itself a
merged duplicate::

    score = reporters x severity weight + hours lost / 8

- reporters: people whose report of it falls in the window (``Reporter.reported_at``; people
  merged in from duplicates count, each once),
- severity weight: low 1, medium 2, high 4, blocker 8 (``bot.triage.service.SEVERITY_WEIGHT``),
- hours lost: ``minutes_lost`` of it and of the duplicates merged into it, for those filed in the
  window, / 60; so a working day lost weighs as much as one more low-severity reporter.

A category's score is the sum over its data points (a point with two areas counts in both; points
with none go to ``untagged``). The trend compares with the window of the same length just before.
"""

import functools
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from rapidfuzz import fuzz, process
from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.references import format_ref
from bot.surveys.results import nps_by_run
from bot.triage.service import OPEN_STATUSES, SEVERITY_WEIGHT
from storage import insight as stored
from storage.insight import UNTAGGED, bucket  # noqa: F401  (UNTAGGED: the insight operations' name for "no category")
from storage.models import FrictionPoint, FrictionTag, Reporter, TrackerLink, as_utc, utcnow

WINDOW_DAYS = 30
HOURS_PER_REPORTER = 8  # hours lost that weigh as much as one reporter at weight 1


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @classmethod
    def last(cls, days: int, now: datetime | None = None) -> "Window":
        end = _utc(now)
        return cls(end - timedelta(days=days), end)

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400

    def before(self) -> "Window":
        """The window of the same length just before this one."""
        return Window(self.start - (self.end - self.start), self.start)


def _utc(now: datetime | None) -> datetime:
    return as_utc(now or utcnow()).astimezone(timezone.utc)


def _weeks_until(now: datetime | None, weeks: int) -> list[datetime]:
    """Edges of ``weeks`` seven-day buckets, the last ending at ``now``."""
    end = _utc(now)
    return [end - timedelta(weeks=weeks - i) for i in range(weeks + 1)]


_WEIGHT = {str(s): w for s, w in SEVERITY_WEIGHT.items()}  # by plain string: called once per point and bucket


def point_score(reporters: int, severity: str, minutes_lost: int) -> float:
    """One data point's score: ``reporters`` x its severity's weight + ``minutes_lost`` / 60 / 8
    (the README's formula; unknown severities weigh as medium)."""
    return reporters * _WEIGHT.get(severity, 2) + minutes_lost / 60 / HOURS_PER_REPORTER


# ------------------------------------------------------------------ friction scores


@dataclass(frozen=True)
class CategoryScore:
    category: str  # a taxonomy id, or UNTAGGED
    score: float
    previous: float  # the score in the window before
    points: int  # data points with friction in the window
    reporters: int  # distinct people who reported one of its points in the window
    hours_lost: float

    @property
    def change(self) -> float:
        return self.score - self.previous


@dataclass(frozen=True)
class PointScore:
    point_id: int
    score: float
    previous: float
    reporters: int
    severity: str
    status: str
    categories: tuple[str, ...]
    text: str = ""
    new: bool = False  # first reported in this window (its trend says "new"; otherwise the change)

    @property
    def change(self) -> float:
        return self.score - self.previous


@dataclass(frozen=True)
class FrictionScores:
    window: Window
    categories: list[CategoryScore]  # highest score first; every category with friction in either window
    open_points: list[PointScore]  # open data points with friction in the window, highest first


def friction_scores(*, session: Session, days: int = WINDOW_DAYS, now: datetime | None = None, limit: int = 10) -> FrictionScores:
    """Area scores and the top ``limit`` open points over the last ``days`` (and the ``days`` before,
    for the trend). Aggregated in the database (``storage.insight``); Python builds one object per
    area and per shown point."""
    window = Window.last(days, now)
    before = window.before()
    start, mid, end = before.start, window.start, window.end  # the two windows, back to back
    people = stored.category_reporters(session=session, start=window.start, end=window.end)
    categories = [
        CategoryScore(category, nw1 + m1 / 60 / HOURS_PER_REPORTER, nw0 + m0 / 60 / HOURS_PER_REPORTER, points,
                      people.get(category, 0), m1 / 60)
        for category, nw1, nw0, points, m1, m0 in stored.category_totals(session=session, start=start, mid=mid, end=end, weights=_WEIGHT)
    ]
    categories.sort(key=lambda c: (-c.score, -c.previous, c.category))
    rows = stored.top_points(session=session, start=start, mid=mid, end=end, weights=_WEIGHT, statuses=sorted(OPEN_STATUSES),
                             limit=limit)
    areas = stored.categories_of(session=session, ids=[r[0] for r in rows])
    open_points = [
        PointScore(pid, n1 * w + m1 / 60 / HOURS_PER_REPORTER, n0 * w + m0 / 60 / HOURS_PER_REPORTER, n1, severity, status,
                   areas[pid], text, new=created >= window.start)
        for pid, n1, n0, m1, m0, w, severity, status, created, text in rows
    ]
    return FrictionScores(window, categories, open_points)


@dataclass(frozen=True)
class WeeklyScores:
    weeks: list[datetime]  # each week's start (UTC), oldest first; the last week ends now
    categories: dict[str, list[float]]  # the top categories, highest total first: a score per week


def weekly_category_scores(*, session: Session, weeks: int = 8, now: datetime | None = None, top: int = 5) -> WeeklyScores:
    """The ``top`` areas by total score over ``weeks`` seven-day weeks ending at ``now``, with a score
    per week (aggregated in the database: one row per area and week reaches Python)."""
    edges = _weeks_until(now, weeks)
    series: dict[str, list[float]] = {}
    for category, week, nw, minutes in stored.weekly_category_totals(session=session, edges=edges, weights=_WEIGHT):
        series.setdefault(category, [0.0] * weeks)[week] = nw + minutes / 60 / HOURS_PER_REPORTER
    ranked = sorted((c for c in series if sum(series[c]) > 0), key=lambda c: (-sum(series[c]), c))[:top]
    return WeeklyScores(edges[:-1], {c: series[c] for c in ranked})


# ------------------------------------------------------------------ loop health


@dataclass(frozen=True)
class WeekActivity:
    start: datetime
    reports: int  # data points filed (merged duplicates included: each was someone's report)
    active_reporters: int  # distinct people who reported something that week


@dataclass(frozen=True)
class LoopNumbers:
    window: Window
    reports: int
    reports_per_week: float
    active_reporters: int
    median_first_response: timedelta | None  # over reports first answered in the window
    median_resolution: timedelta | None  # over reports resolved or declined in the window
    resolved: int  # reports resolved in the window (not declined, not merged)
    closed_loop: int  # of those, the ones whose reporters all received a closure notice
    closed_loop_rate: float | None  # closed_loop / resolved


@dataclass(frozen=True)
class NpsPoint:
    at: datetime
    score: float  # -100..100
    responses: int


@dataclass(frozen=True)
class LoopHealth:
    current: LoopNumbers
    previous: LoopNumbers
    weeks: list[WeekActivity]  # oldest first, the last ending now
    nps: list[NpsPoint]  # pulse-survey runs (see ``nps_series``)


def nps_series(*, session: Session, window: Window) -> list[NpsPoint]:
    """NPS per pulse-survey run that closed in ``window``, oldest first (runs whose results are
    withheld for too few answers are left out)."""
    return [NpsPoint(at, score, n) for at, score, n in nps_by_run(session=session, start=window.start, end=window.end)]


def _in(column, window: Window):
    return (column >= window.start, column < window.end)


def loop_numbers(*, session: Session, window: Window) -> LoopNumbers:
    """The loop numbers over ``window``: counts, medians and the closed-loop rate, each aggregated in
    the database (medians: ``storage.insight.median_duration``)."""
    reports = session.exec(select(func.count()).select_from(FrictionPoint).where(*_in(FrictionPoint.created_at, window))).one()
    active = session.exec(select(func.count(func.distinct(Reporter.user_id))).where(*_in(Reporter.reported_at, window))).one()
    bounds = {"start": window.start, "end": window.end}
    # Merged duplicates count not at all in the medians (as in the resolved count and in target
    # compliance): merging one is not a response to it, and its reporters wait on the report it joined.
    canonical = (col(FrictionPoint.duplicate_of_id).is_(None),)
    first = stored.median_duration(session=session, since=FrictionPoint.created_at, until=FrictionPoint.first_response_at,
                                   where=canonical, **bounds)
    resolution = stored.median_duration(session=session, since=FrictionPoint.created_at, until=FrictionPoint.resolved_at,
                                        where=canonical, **bounds)
    resolved, closed_loop = stored.resolved_and_closed(session=session, **bounds)
    return LoopNumbers(
        window=window,
        reports=reports,
        reports_per_week=reports * 7 / window.days if window.days else 0.0,
        active_reporters=active,
        median_first_response=first,
        median_resolution=resolution,
        resolved=resolved,
        closed_loop=closed_loop,
        closed_loop_rate=closed_loop / resolved if resolved else None,
    )


def weekly_activity(*, session: Session, weeks: int = 8, now: datetime | None = None) -> list[WeekActivity]:
    edges = _weeks_until(now, weeks)
    reports, people = [0] * weeks, [0] * weeks
    inner = select(bucket(FrictionPoint.created_at, edges).label("b")).where(
        FrictionPoint.created_at >= edges[0], FrictionPoint.created_at < edges[-1]
    ).subquery()
    for b, count in session.exec(select(inner.c.b, func.count()).group_by(inner.c.b)):
        reports[b] = count
    inner = select(bucket(Reporter.reported_at, edges).label("b"), col(Reporter.user_id).label("u")).where(
        Reporter.reported_at >= edges[0], Reporter.reported_at < edges[-1]
    ).subquery()
    for b, count in session.exec(select(inner.c.b, func.count(func.distinct(inner.c.u))).group_by(inner.c.b)):
        people[b] = count
    return [WeekActivity(edges[i], reports[i], people[i]) for i in range(weeks)]


def loop_health(*, session: Session, days: int = WINDOW_DAYS, now: datetime | None = None, weeks: int = 8) -> LoopHealth:
    window = Window.last(days, now)
    return LoopHealth(
        current=loop_numbers(session=session, window=window),
        previous=loop_numbers(session=session, window=window.before()),
        weeks=weekly_activity(session=session, weeks=weeks, now=window.end),
        nps=nps_series(session=session, window=window),
    )


# ------------------------------------------------------------------ possible duplicates

DUPLICATE_CANDIDATES = 500  # the most recent open reports compared with a new one
# Words too common to say two reports are about the same thing.
STOP_WORDS = frozenset(
    "a an the is are was were be been being to of in on at for with and or but it its this that these those "
    "my our we i you me us again so as by from just very still since when then there here".split()
)


@functools.lru_cache(maxsize=4096)  # a card's redraw compares with the same few hundred open reports each time
def similarity_text(text: str) -> str:
    """What similarity is computed on: lower-case words, without the most common ones."""
    return " ".join(w for w in re.findall(r"\w+", text.lower()) if w not in STOP_WORDS)


@dataclass(frozen=True)
class DuplicateSuggestion:
    point_id: int  # the older, open report this one resembles
    similarity: int  # 0-100
    text: str  # its words


def possible_duplicate(*, session: Session, point: FrictionPoint, threshold: int, candidates: int = DUPLICATE_CANDIDATES) -> DuplicateSuggestion | None:
    """The older open report most like ``point``, if it reaches ``threshold``; None otherwise, or
    when ``threshold`` is 0 (off). Similarity is rapidfuzz's ``token_set_ratio`` on ``similarity_text``;
    it scores any subset 100, so ties go to the closest overall wording (``token_sort_ratio``).
    Compares with up to ``candidates`` reports: the card uses ``card_duplicate``, which keeps the answer."""
    if threshold <= 0 or not _may_suggest(point):
        return None
    best = _most_similar(session, point, threshold, candidates)
    return best and _shown(*best, threshold)


def card_duplicate(*, session: Session, point: FrictionPoint, threshold: int, candidates: int = DUPLICATE_CANDIDATES,
                   compute: bool = True) -> DuplicateSuggestion | None:
    """``possible_duplicate`` as the triage card shows it, kept on the point
    (``suggested_duplicate_id``, ``suggested_similarity``, written in ``session``): computed the first
    time, and again when its text changed (``storage.models`` forgets it then), when the suggested
    report is no longer open (closed, merged, purged: the next most similar may be shown), or when
    that report's text changed (their similarity is no longer the one kept). Otherwise a redraw costs
    one primary-key lookup and one comparison instead of scoring ``candidates`` reports. Kept with
    no threshold, so a changed ``threshold`` applies at once. Not looked at again: an older report
    reopened after this one's suggestion was kept.

    ``compute=False`` (the card's renderings, inside write transactions): never scores; a point
    whose suggestion is not kept or no longer holds shows none. The scoring is ``keep_duplicate``'s,
    outside any write transaction, before the card is drawn (issue #26 item 6)."""
    if threshold <= 0 or not _may_suggest(point):
        return None
    held, kept = _kept(session, point, threshold)
    if held or not compute:
        return kept
    best = _most_similar(session, point, 1, candidates)  # 1: the lowest threshold there is
    point.suggested_duplicate_id, point.suggested_similarity = best[:2] if best else (None, 0.0)
    session.add(point)
    return best and _shown(*best, threshold)


def _kept(session: Session, point: FrictionPoint, threshold: int) -> tuple[bool, DuplicateSuggestion | None]:
    """(whether ``point``'s kept suggestion still holds, what it shows at ``threshold``)."""
    if point.suggested_similarity is None:
        return False, None
    if point.suggested_duplicate_id is None:
        return True, None  # nothing resembled it
    other = session.exec(
        select(FrictionPoint.text, FrictionPoint.status, FrictionPoint.duplicate_of_id)
        .where(col(FrictionPoint.id) == point.suggested_duplicate_id)
    ).first()
    if other is None:
        return False, None
    text, status, duplicate_of = other
    if (status in OPEN_STATUSES and duplicate_of is None
            and fuzz.token_set_ratio(similarity_text(point.text), similarity_text(text)) == point.suggested_similarity):
        return True, _shown(point.suggested_duplicate_id, point.suggested_similarity, text, threshold)
    return False, None


def keep_duplicate(db, *, point_id: int, threshold: int, candidates: int = DUPLICATE_CANDIDATES) -> bool:
    """Compute and keep report ``point_id``'s duplicate suggestion if it is not kept or no longer
    holds, without holding a write lock while scoring: the point and up to ``candidates`` open
    reports are read in a read-only transaction (``Database.read``: on SQLite no write lock), scored
    outside any transaction (``_best``: rapidfuzz's ``cdist``, which releases the GIL, so the event
    loop keeps answering), and kept in a short write transaction, only if the point's words are
    still the ones scored. Blocking: call it in a worker thread. True if it wrote a suggestion.
    ``db``: ``storage.database.Database``; raises DatabaseUnavailable as it does."""
    if threshold <= 0:
        return False
    read = db.read(to_score, point_id=point_id, threshold=threshold, candidates=candidates)
    if read is None:
        return False
    text, originals = read
    return db.transact(keep_scored, point_id=point_id, text=text, best=best_duplicate(text, originals))


def to_score(*, session: Session, point_id: int, threshold: int, candidates: int = DUPLICATE_CANDIDATES) -> tuple[str, dict[int, str]] | None:
    """``keep_duplicate``'s read: (the point's words, id -> words of the reports to compare with),
    or None when there is nothing to score (gone, closed, or its suggestion still holds)."""
    point = session.get(FrictionPoint, point_id)
    if point is None or not _may_suggest(point) or _kept(session, point, threshold)[0]:
        return None
    return point.text, _candidates(session, point, candidates)


def best_duplicate(text: str, originals: dict[int, str]) -> tuple[int, float, str] | None:
    """``keep_duplicate``'s scoring: pure CPU, no database."""
    return _best(text, originals, 1)  # 1: the lowest threshold there is (kept with no threshold)


def keep_scored(*, session: Session, point_id: int, text: str, best: tuple[int, float, str] | None) -> bool:
    """``keep_duplicate``'s write: ``best`` kept on the point if its words are still ``text``."""
    point = session.get(FrictionPoint, point_id)
    if point is None or point.text != text:
        return False  # its words changed meanwhile: the next drawing scores them
    point.suggested_duplicate_id, point.suggested_similarity = best[:2] if best else (None, 0.0)
    session.add(point)
    return True


def _may_suggest(point: FrictionPoint) -> bool:
    return point.status in OPEN_STATUSES and point.duplicate_of_id is None


def _shown(point_id: int, score: float, text: str, threshold: int) -> DuplicateSuggestion | None:
    return DuplicateSuggestion(point_id, int(round(score)), text) if score >= threshold else None


def _most_similar(session: Session, point: FrictionPoint, cutoff: float, candidates: int) -> tuple[int, float, str] | None:
    """(id, score 0-100, text) of the older open report most like ``point`` scoring at least ``cutoff``."""
    return _best(point.text, _candidates(session, point, candidates), cutoff)


def _candidates(session: Session, point: FrictionPoint, candidates: int) -> dict[int, str]:
    """id -> text of up to ``candidates`` open reports older than ``point``, newest first."""
    created = as_utc(point.created_at)
    rows = session.exec(
        select(FrictionPoint.id, FrictionPoint.text, FrictionPoint.created_at)
        .where(col(FrictionPoint.status).in_(list(OPEN_STATUSES)), col(FrictionPoint.duplicate_of_id).is_(None))
        .where(FrictionPoint.id != point.id, FrictionPoint.created_at <= created)
        .order_by(col(FrictionPoint.created_at).desc(), col(FrictionPoint.id).desc())
        .limit(candidates)
    ).all()
    # Older as triage.merge decides it: earlier creation, then lower id.
    return {pid: text for pid, text, at in rows if (as_utc(at), pid) < (created, point.id)}


MIN_SHARED_WORDS = 2  # one word in common is not similarity (token_set_ratio scores any subset 100)


@functools.lru_cache(maxsize=4096)
def _words(text: str) -> frozenset[str]:
    return frozenset(similarity_text(text).split())


def _alike(query: str, other: str) -> bool:
    """Whether two reports share enough words to be compared at all: at least MIN_SHARED_WORDS
    distinct words (not stop words), or the very same words. "flaky" and "flaky tests on main"
    share one word: token_set_ratio says 100, and they are not the same report."""
    mine, theirs = _words(query), _words(other)
    return len(mine & theirs) >= MIN_SHARED_WORDS or (bool(mine) and mine == theirs)


@dataclass(frozen=True)
class Scoring:
    """One duplicate check's input, in three steps so the caller can run each where it belongs:
    ``prepare`` (Python: holds the GIL), ``scores`` (C++: releases it, the bulk of the CPU), ``pick``
    (Python). ``_best`` runs all three."""

    text: str
    originals: dict[int, str]  # id -> words of the reports compared with
    query: str
    choices: list[str]  # similarity_text of each of ``originals``, in its order

    @classmethod
    def prepare(cls, text: str, originals: dict[int, str]) -> "Scoring":
        return cls(text, originals, similarity_text(text), [similarity_text(t) for t in originals.values()])

    def scores(self, cutoff: float = 1) -> list[float]:
        """rapidfuzz's ``process.cdist`` scores in C++ without the GIL (``process.extract`` held it
        for ~0.5 s for 500 reports of 3,000 characters, and the event loop with it)."""
        if not self.choices:
            return []
        return [float(s) for s in process.cdist([self.query], self.choices, scorer=fuzz.token_set_ratio, score_cutoff=cutoff, workers=1)[0]]

    def pick(self, scores: list[float], cutoff: float = 1) -> tuple[int, float, str] | None:
        """(id, score, text) of the report scoring highest, at least ``cutoff``, among those
        ``_alike`` it; ties go to the closest overall wording (``token_sort_ratio``)."""
        found = [(score, pid, words) for score, pid, words in zip(scores, self.originals, self.choices, strict=False)
                 if score >= cutoff and _alike(self.text, self.originals[pid])]
        if not found:
            return None
        top = max(f[0] for f in found)
        _score, pid, _w = max((f for f in found if f[0] == top), key=lambda f: fuzz.token_sort_ratio(self.query, f[2]))
        return pid, top, self.originals[pid]


def _best(text: str, originals: dict[int, str], cutoff: float) -> tuple[int, float, str] | None:
    """(id, score, text) of the entry of ``originals`` (id -> text) most like ``text``: ``Scoring``'s steps."""
    scoring = Scoring.prepare(text, originals)
    return scoring.pick(scoring.scores(cutoff), cutoff)


# ------------------------------------------------------------------ export

EXPORT_COLUMNS = (
    "ref", "created", "status", "severity", "minutes_lost", "kind", "source", "categories",
    "reporters", "links", "first_response", "resolved", "text",
)


@dataclass(frozen=True)
class ExportRow:
    ref: str
    created: datetime
    status: str
    severity: str
    minutes_lost: int | None
    kind: str
    source: str
    categories: tuple[str, ...]
    reporters: int
    links: tuple[str, ...]  # tracker issue URLs
    first_response: datetime | None
    resolved: datetime | None
    text: str  # what the reporter wrote, as stored (the CSV writer makes a formula-like cell inert)


def export_rows(*, session: Session, prefix: str, batch: int = 2000) -> Iterator[ExportRow]:
    """Every data point, oldest id first, in batches (keyset on id), so memory stays flat."""
    after = 0
    columns = (FrictionPoint.id, FrictionPoint.created_at, FrictionPoint.status, FrictionPoint.severity,
               FrictionPoint.minutes_lost, FrictionPoint.kind, FrictionPoint.source,
               FrictionPoint.first_response_at, FrictionPoint.resolved_at, FrictionPoint.text)
    while True:
        # sqlmodel's select is typed for at most 4 columns; these are 10
        rows = session.exec(select(*columns).where(col(FrictionPoint.id) > after)  # type: ignore[call-overload]
                            .order_by(col(FrictionPoint.id)).limit(batch)).all()
        if not rows:
            return
        lo, hi = rows[0][0], rows[-1][0]
        tags, links = defaultdict(list), defaultdict(list)
        for pid, category in session.exec(
            select(FrictionTag.friction_point_id, FrictionTag.category)
            .where(FrictionTag.friction_point_id >= lo, FrictionTag.friction_point_id <= hi).order_by(col(FrictionTag.id))
        ):
            tags[pid].append(category)
        for pid, url in session.exec(
            select(TrackerLink.friction_point_id, TrackerLink.url)
            .where(TrackerLink.friction_point_id >= lo, TrackerLink.friction_point_id <= hi).order_by(col(TrackerLink.id))
        ):
            links[pid].append(url)
        reporters = dict(
            session.exec(
                select(Reporter.friction_point_id, func.count())
                .where(Reporter.friction_point_id >= lo, Reporter.friction_point_id <= hi).group_by(col(Reporter.friction_point_id))
            ).all()
        )
        for pid, created, status, severity, minutes, kind, source, first, resolved, text in rows:
            yield ExportRow(
                ref=format_ref(prefix, pid), created=as_utc(created), status=status, severity=severity, minutes_lost=minutes,
                kind=kind, source=source, categories=tuple(tags[pid]), reporters=reporters.get(pid, 0),
                links=tuple(links[pid]), first_response=first and as_utc(first), resolved=resolved and as_utc(resolved),
                text=text,
            )
        after = hi
