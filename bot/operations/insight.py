"""Friction insight: which friction hurts most and how it trends, how well the loop closes, possible
duplicates, and every data point as rows for export. Plain functions on a session that return
dataclasses; no Slack in here.

Friction score (documented in the README). Over a window, for each data point that is not itself a
merged duplicate::

    score = reporters x severity weight + hours lost / 8

- reporters: people whose report of it falls in the window (``Reporter.reported_at``; people
  merged in from duplicates count, each once),
- severity weight: low 1, medium 2, high 4, blocker 8 (``bot.operations.triage.SEVERITY_WEIGHT``),
- hours lost: ``minutes_lost`` of it and of the duplicates merged into it, for those filed in the
  window, / 60; so a working day lost weighs as much as one more low-severity reporter.

A category's score is the sum over its data points (a point with two areas counts in both; points
with none go to ``untagged``). The trend compares with the window of the same length just before.
"""

import functools
import heapq
import re
import statistics
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

from rapidfuzz import fuzz, process
from sqlalchemy import Integer, any_, bindparam, case, func, literal
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session, col, select

from bot.operations.surveys import nps_by_run
from bot.operations.triage import OPEN_STATUSES, SEVERITY_WEIGHT
from storage.models import ClosureNotice, FrictionPoint, FrictionTag, Reporter, Severity, Status, TrackerLink, as_utc, utcnow

WINDOW_DAYS = 30
UNTAGGED = "untagged"
HOURS_PER_REPORTER = 8  # hours lost that weigh as much as one reporter at weight 1
CHUNK = 5000  # ids per IN (...) query


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
    return reporters * _WEIGHT.get(severity, 2) + minutes_lost / 60 / HOURS_PER_REPORTER


# ------------------------------------------------------------------ activity per point and bucket


@dataclass
class _Activity:
    """One canonical data point's reporters and minutes lost per time bucket."""

    severity: str = Severity.medium
    status: str = Status.new
    categories: list[str] = field(default_factory=list)
    reporters: list[int] = field(default_factory=list)
    minutes: list[int] = field(default_factory=list)

    def score(self, bucket: int) -> float:
        return point_score(self.reporters[bucket], self.severity, self.minutes[bucket])


def _bucket(column, edges: Sequence[datetime]):
    """The index of the bucket ``[edges[i], edges[i + 1])`` that ``column`` falls in (rows already
    limited to ``[edges[0], edges[-1])``)."""
    whens = [(column >= edges[i], i) for i in range(len(edges) - 2, 0, -1)]
    return case(*whens, else_=0) if whens else literal(0)


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for i in range(0, len(ids), CHUNK):
        yield list(ids[i : i + CHUNK])


def _among(column, ids: list[int], dialect: str):
    """``column IN ids``; on PostgreSQL as ``= ANY(array)``, one parameter instead of one per id
    (psycopg's conversion of thousands of parameters cost more than the query)."""
    if dialect == "postgresql":
        return column == any_(bindparam("ids", ids, type_=ARRAY(Integer)))
    return column.in_(ids)


def _activity(session: Session, edges: Sequence[datetime]) -> dict[int, _Activity]:
    """Reporters and minutes lost per canonical point per bucket, in a few grouped queries. Rows
    are read through Core (``session.connection()``), 10,000 at a time: with a busy window there
    are hundreds of thousands of them, and the ORM's per-row work dominated the time."""
    n = len(edges) - 1
    found: dict[int, _Activity] = defaultdict(lambda: _Activity(reporters=[0] * n, minutes=[0] * n))
    conn = session.connection()
    dialect = conn.dialect.name
    # Grouped in an outer query: PostgreSQL cannot match a CASE with bound parameters in GROUP BY.
    inner = (
        select(col(Reporter.friction_point_id).label("pid"), _bucket(Reporter.reported_at, edges).label("b"))
        .join(FrictionPoint, col(FrictionPoint.id) == Reporter.friction_point_id)
        .where(col(FrictionPoint.duplicate_of_id).is_(None), Reporter.reported_at >= edges[0], Reporter.reported_at < edges[-1])
        .subquery()
    )
    for pid, b, count in conn.execute(select(inner.c.pid, inner.c.b, func.count()).group_by(inner.c.pid, inner.c.b)).yield_per(10_000):
        found[pid].reporters[b] = count
    canonical = func.coalesce(FrictionPoint.duplicate_of_id, FrictionPoint.id)
    inner = (
        select(canonical.label("pid"), _bucket(FrictionPoint.created_at, edges).label("b"), col(FrictionPoint.minutes_lost).label("m"))
        .where(col(FrictionPoint.minutes_lost).is_not(None), FrictionPoint.created_at >= edges[0], FrictionPoint.created_at < edges[-1])
        .subquery()
    )
    for pid, b, minutes in conn.execute(select(inner.c.pid, inner.c.b, func.sum(inner.c.m)).group_by(inner.c.pid, inner.c.b)).yield_per(10_000):
        found[pid].minutes[b] = int(minutes or 0)
    for ids in _chunks(sorted(found)):
        for pid, severity, status in conn.execute(
            select(FrictionPoint.id, FrictionPoint.severity, FrictionPoint.status).where(_among(col(FrictionPoint.id), ids, dialect))
        ).yield_per(10_000):
            found[pid].severity, found[pid].status = severity, status
        for pid, category in conn.execute(
            select(FrictionTag.friction_point_id, FrictionTag.category)
            .where(_among(col(FrictionTag.friction_point_id), ids, dialect)).order_by(col(FrictionTag.id))
        ).yield_per(10_000):
            found[pid].categories.append(category)
    return dict(found)


# ------------------------------------------------------------------ friction scores


@dataclass(frozen=True)
class CategoryScore:
    category: str  # a taxonomy id, or UNTAGGED
    score: float
    previous: float  # the score in the window before
    points: int  # data points with friction in the window
    reporters: int  # their reporters in the window, summed over the points
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

    @property
    def change(self) -> float:
        return self.score - self.previous


@dataclass(frozen=True)
class FrictionScores:
    window: Window
    categories: list[CategoryScore]  # highest score first; every category with friction in either window
    open_points: list[PointScore]  # open data points with friction in the window, highest first


def friction_scores(*, session: Session, days: int = WINDOW_DAYS, now: datetime | None = None, limit: int = 10) -> FrictionScores:
    window = Window.last(days, now)
    before = window.before()
    activity = _activity(session, [before.start, window.start, window.end])
    totals: dict[str, list] = {}  # category -> [score, previous, points, reporters, hours lost], summed as plain numbers
    for a in activity.values():
        active = bool(a.reporters[1] or a.minutes[1])
        score, previous, hours = a.score(1), a.score(0), a.minutes[1] / 60
        for category in a.categories or [UNTAGGED]:
            t = totals.get(category)
            if t is None:
                t = totals[category] = [0.0, 0.0, 0, 0, 0.0]
            t[0] += score
            t[1] += previous
            t[2] += active
            t[3] += a.reporters[1]
            t[4] += hours
    categories = [CategoryScore(category, *t) for category, t in totals.items()]
    categories.sort(key=lambda c: (-c.score, -c.previous, c.category))
    # The top ``limit`` by (score desc, id), without building a PointScore for every open point.
    ranked = heapq.nsmallest(limit, (
        (-a.score(1), pid) for pid, a in activity.items() if a.status in OPEN_STATUSES and (a.reporters[1] or a.minutes[1])
    ))
    open_points = [
        PointScore(pid, -negative, a.score(0), a.reporters[1], a.severity, a.status, tuple(a.categories))
        for negative, pid in ranked
        for a in [activity[pid]]
    ]
    shown = [p.point_id for p in open_points]
    texts = dict(session.exec(select(FrictionPoint.id, FrictionPoint.text).where(col(FrictionPoint.id).in_(shown))).all()) if shown else {}
    open_points = [replace(p, text=texts.get(p.point_id, "")) for p in open_points]
    return FrictionScores(window, categories, open_points)


@dataclass(frozen=True)
class WeeklyScores:
    weeks: list[datetime]  # each week's start (UTC), oldest first; the last week ends now
    categories: dict[str, list[float]]  # the top categories, highest total first: a score per week


def weekly_category_scores(*, session: Session, weeks: int = 8, now: datetime | None = None, top: int = 5) -> WeeklyScores:
    edges = _weeks_until(now, weeks)
    series: dict[str, list[float]] = defaultdict(lambda: [0.0] * weeks)
    for a in _activity(session, edges).values():
        for category in a.categories or [UNTAGGED]:
            for week in range(weeks):
                series[category][week] += a.score(week)
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


def _median(values: list[timedelta]) -> timedelta | None:
    return timedelta(seconds=statistics.median(v.total_seconds() for v in values)) if values else None


def _in(column, window: Window):
    return (column >= window.start, column < window.end)


def loop_numbers(*, session: Session, window: Window) -> LoopNumbers:
    reports = session.exec(select(func.count()).select_from(FrictionPoint).where(*_in(FrictionPoint.created_at, window))).one()
    active = session.exec(select(func.count(func.distinct(Reporter.user_id))).where(*_in(Reporter.reported_at, window))).one()
    answered = session.exec(select(FrictionPoint.created_at, FrictionPoint.first_response_at).where(*_in(FrictionPoint.first_response_at, window))).all()
    closed = session.exec(select(FrictionPoint.created_at, FrictionPoint.resolved_at).where(*_in(FrictionPoint.resolved_at, window))).all()
    resolved = (
        select(FrictionPoint.id)
        .where(FrictionPoint.status == Status.resolved, col(FrictionPoint.duplicate_of_id).is_(None), *_in(FrictionPoint.resolved_at, window))
        .subquery()
    )
    points = set(session.exec(select(resolved.c.id)).all())
    owed = set(session.exec(select(Reporter.friction_point_id, Reporter.user_id).where(col(Reporter.friction_point_id).in_(select(resolved.c.id)))).all())
    canonical = func.coalesce(FrictionPoint.duplicate_of_id, FrictionPoint.id)
    heard = set(
        session.exec(
            select(canonical, ClosureNotice.user_id)
            .join(FrictionPoint, col(FrictionPoint.id) == ClosureNotice.friction_point_id)
            .where(canonical.in_(select(resolved.c.id)))
        ).all()
    )
    not_heard = {pid for pid, user in owed if (pid, user) not in heard}
    closed_loop = len(points - not_heard)
    return LoopNumbers(
        window=window,
        reports=reports,
        reports_per_week=reports * 7 / window.days if window.days else 0.0,
        active_reporters=active,
        median_first_response=_median([as_utc(r) - as_utc(c) for c, r in answered]),
        median_resolution=_median([as_utc(r) - as_utc(c) for c, r in closed]),
        resolved=len(points),
        closed_loop=closed_loop,
        closed_loop_rate=closed_loop / len(points) if points else None,
    )


def weekly_activity(*, session: Session, weeks: int = 8, now: datetime | None = None) -> list[WeekActivity]:
    edges = _weeks_until(now, weeks)
    reports, people = [0] * weeks, [0] * weeks
    inner = select(_bucket(FrictionPoint.created_at, edges).label("b")).where(
        FrictionPoint.created_at >= edges[0], FrictionPoint.created_at < edges[-1]
    ).subquery()
    for b, count in session.exec(select(inner.c.b, func.count()).group_by(inner.c.b)):
        reports[b] = count
    inner = select(_bucket(Reporter.reported_at, edges).label("b"), col(Reporter.user_id).label("u")).where(
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
    it scores any subset 100, so ties go to the closest overall wording (``token_sort_ratio``)."""
    if threshold <= 0 or point.status not in OPEN_STATUSES or point.duplicate_of_id is not None:
        return None
    created = as_utc(point.created_at)
    rows = session.exec(
        select(FrictionPoint.id, FrictionPoint.text, FrictionPoint.created_at)
        .where(col(FrictionPoint.status).in_(list(OPEN_STATUSES)), col(FrictionPoint.duplicate_of_id).is_(None))
        .where(FrictionPoint.id != point.id, FrictionPoint.created_at <= created)
        .order_by(col(FrictionPoint.created_at).desc(), col(FrictionPoint.id).desc())
        .limit(candidates)
    ).all()
    # Older as triage.merge decides it: earlier creation, then lower id.
    originals = {pid: text for pid, text, at in rows if (as_utc(at), pid) < (created, point.id)}
    choices = {pid: similarity_text(text) for pid, text in originals.items()}
    query = similarity_text(point.text)
    matches = process.extract(query, choices, scorer=fuzz.token_set_ratio, score_cutoff=threshold, limit=None)
    if not matches:
        return None
    _words, score, pid = max(matches, key=lambda m: (m[1], fuzz.token_sort_ratio(query, m[0])))
    return DuplicateSuggestion(point_id=pid, similarity=int(round(score)), text=originals[pid])


# ------------------------------------------------------------------ export

EXPORT_COLUMNS = (
    "ref", "created", "status", "severity", "minutes_lost", "kind", "source", "categories",
    "reporters", "links", "first_response", "resolved",
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


def export_rows(*, session: Session, prefix: str, batch: int = 2000) -> Iterator[ExportRow]:
    """Every data point, oldest id first, in batches (keyset on id), so memory stays flat."""
    after = 0
    columns = (FrictionPoint.id, FrictionPoint.created_at, FrictionPoint.status, FrictionPoint.severity,
               FrictionPoint.minutes_lost, FrictionPoint.kind, FrictionPoint.source,
               FrictionPoint.first_response_at, FrictionPoint.resolved_at)
    while True:
        rows = session.exec(select(*columns).where(FrictionPoint.id > after).order_by(col(FrictionPoint.id)).limit(batch)).all()
        if not rows:
            return
        lo, hi = rows[0][0], rows[-1][0]
        tags, links = defaultdict(list), defaultdict(list)
        for pid, category in session.exec(
            select(FrictionTag.friction_point_id, FrictionTag.category).where(FrictionTag.friction_point_id >= lo, FrictionTag.friction_point_id <= hi).order_by(col(FrictionTag.id))
        ):
            tags[pid].append(category)
        for pid, url in session.exec(
            select(TrackerLink.friction_point_id, TrackerLink.url).where(TrackerLink.friction_point_id >= lo, TrackerLink.friction_point_id <= hi).order_by(col(TrackerLink.id))
        ):
            links[pid].append(url)
        reporters = dict(
            session.exec(
                select(Reporter.friction_point_id, func.count()).where(Reporter.friction_point_id >= lo, Reporter.friction_point_id <= hi).group_by(Reporter.friction_point_id)
            ).all()
        )
        for pid, created, status, severity, minutes, kind, source, first, resolved in rows:
            yield ExportRow(
                ref=f"{prefix}-{pid}", created=as_utc(created), status=status, severity=severity, minutes_lost=minutes,
                kind=kind, source=source, categories=tuple(tags[pid]), reporters=reporters.get(pid, 0),
                links=tuple(links[pid]), first_response=first and as_utc(first), resolved=resolved and as_utc(resolved),
            )
        after = hi
