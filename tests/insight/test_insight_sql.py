"""The insight numbers aggregated in SQL (``storage.insight``) against a straightforward reference
computation in Python over every stored row, on seeded random data, on SQLite and PostgreSQL:
scores, trends, per-area distinct reporters, the top open points, the weekly series, medians and
the closed-loop rate. Minutes lost are whole hours so every score is exact in binary floating point
and the orders (ties included) must match exactly."""

import random
import statistics
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from sqlmodel import select

from bot.insight import service as insight
from bot.triage.service import OPEN_STATUSES, SEVERITY_WEIGHT
from storage.models import ClosureNotice, FrictionPoint, FrictionTag, Reporter, as_utc

NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
CATEGORIES = ["ci", "deploys", "docs", "access"]
STATUSES = ["new", "acknowledged", "linked", "resolved", "wont_fix"]
USERS = [f"U{i:04d}" for i in range(12)]


def _when(rng: random.Random, days_back: float) -> datetime:
    return NOW - timedelta(seconds=rng.uniform(0, days_back * 86400), microseconds=rng.randrange(10**6))


def populate(db, seed: int, size: int = 80) -> None:
    rng = random.Random(seed)
    with db.session() as s, s.begin():
        canonical: list[FrictionPoint] = []
        for i in range(size):
            created = _when(rng, 100)
            status = rng.choice(STATUSES)
            answered = created + timedelta(seconds=rng.uniform(60, 5 * 86400)) if rng.random() < 0.6 else None
            resolved = created + timedelta(seconds=rng.uniform(3600, 20 * 86400)) if status in ("resolved", "wont_fix") else None
            point = FrictionPoint(
                team_id="T0TEAM001", filed_by=rng.choice(USERS), text=f"report {i}", severity=rng.choice(list(SEVERITY_WEIGHT)),
                minutes_lost=rng.choice([None, None, 0, 60, 120, 240, 480, 960]), source="command", intake_key=f"sql:{seed}:{i}",
                status=status, created_at=created, updated_at=created, first_response_at=answered, resolved_at=resolved,
            )
            if canonical and rng.random() < 0.15:
                point.duplicate_of_id, point.status = rng.choice(canonical).id, "duplicate"
            people = rng.sample(USERS, rng.choice([1, 1, 2, 3]))
            point.reporters = [
                Reporter(user_id=u, team_id="T0TEAM001",
                         reported_at=created if n == 0 else min(NOW - timedelta(seconds=1), created + timedelta(days=rng.uniform(0, 40))))
                for n, u in enumerate(people)
            ]
            point.tags = [FrictionTag(category=c, automatic=False) for c in rng.sample(CATEGORIES, rng.choice([0, 1, 1, 2]))]
            s.add(point)
            s.flush()
            if point.duplicate_of_id is None:
                canonical.append(point)
            for r in point.reporters:
                if rng.random() < 0.5:
                    s.add(ClosureNotice(friction_point_id=point.id, user_id=r.user_id, tracker="github", key=f"a/b#{point.id}",
                                        closure=1, outcome="fixed"))


def load(db):
    with db.session() as s:
        points = {p.id: p for p in s.exec(select(FrictionPoint)).all()}
        rows = [(p.id, p.duplicate_of_id, str(p.severity), str(p.status), p.minutes_lost, as_utc(p.created_at),
                 p.first_response_at and as_utc(p.first_response_at), p.resolved_at and as_utc(p.resolved_at),
                 [(r.user_id, as_utc(r.reported_at)) for r in p.reporters], p.categories, p.text) for p in points.values()]
        notices = [(n.friction_point_id, n.user_id) for n in s.exec(select(ClosureNotice)).all()]
    return {r[0]: r for r in rows}, notices


def reference_activity(points, edges):
    """{key point: (reporters per bucket, minutes per bucket)} as the README's formula reads."""
    n = len(edges) - 1

    def bucket(t):
        return next((i for i in range(n) if edges[i] <= t < edges[i + 1]), None)

    found = {}
    for pid, dup, _sev, _st, minutes, created, *_rest, reporters, _cats, _text in points.values():
        if dup is None:
            for _user, at in reporters:
                if (b := bucket(at)) is not None:
                    found.setdefault(pid, ([0] * n, [0] * n))[0][b] += 1
        if minutes is not None and (b := bucket(created)) is not None:
            found.setdefault(dup or pid, ([0] * n, [0] * n))[1][b] += minutes
    return found


def score(points, pid, reporters, minutes) -> Fraction:
    return reporters * SEVERITY_WEIGHT[points[pid][2]] + Fraction(minutes, 480)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sql_scores_match_a_reference_computation(db, seed):
    populate(db, seed)
    points, notices = load(db)
    for days in (7, 30):
        window = insight.Window.last(days, NOW)
        activity = reference_activity(points, [window.before().start, window.start, window.end])
        areas: dict[str, list] = {}
        for pid, (n, m) in activity.items():
            for c in points[pid][9] or [insight.UNTAGGED]:
                t = areas.setdefault(c, [Fraction(0), Fraction(0), 0, Fraction(0)])
                t[0] += score(points, pid, n[1], m[1])
                t[1] += score(points, pid, n[0], m[0])
                t[2] += bool(n[1] or m[1])
                t[3] += Fraction(m[1], 60)
        people: dict[str, set] = {}
        for _pid, dup, *_mid, reporters, cats, _text in points.values():
            for user, at in reporters:
                if dup is None and window.start <= at < window.end:
                    for c in cats or [insight.UNTAGGED]:
                        people.setdefault(c, set()).add(user)
        expected = sorted(((c, t[0], t[1], t[2], len(people.get(c, ())), t[3]) for c, t in areas.items()),
                          key=lambda c: (-c[1], -c[2], c[0]))
        opened = sorted(((-score(points, pid, n[1], m[1]), pid) for pid, (n, m) in activity.items()
                         if points[pid][3] in OPEN_STATUSES and (n[1] or m[1])))
        with db.session() as s:
            got = insight.friction_scores(session=s, days=days, now=NOW, limit=1000)
            top3 = insight.friction_scores(session=s, days=days, now=NOW, limit=3).open_points
        assert [(c.category, c.score, c.previous, c.points, c.reporters, c.hours_lost) for c in got.categories] == [
            (c, float(a), float(b), p, r, float(h)) for c, a, b, p, r, h in expected]
        want = [(pid, float(-neg), float(score(points, pid, activity[pid][0][0], activity[pid][1][0])), activity[pid][0][1],
                 points[pid][2], points[pid][3], tuple(points[pid][9]), points[pid][10], points[pid][5] >= window.start)
                for neg, pid in opened]
        assert [(p.point_id, p.score, p.previous, p.reporters, p.severity, p.status, p.categories, p.text, p.new)
                for p in got.open_points] == want
        assert [p.point_id for p in top3] == [w[0] for w in want[:3]]


@pytest.mark.parametrize("seed", [4, 5])
def test_sql_weekly_series_and_loop_numbers_match_a_reference_computation(db, seed):
    populate(db, seed)
    points, notices = load(db)
    edges = [NOW - timedelta(weeks=6 - i) for i in range(7)]
    series: dict[str, list[Fraction]] = {}
    for pid, (n, m) in reference_activity(points, edges).items():
        for c in points[pid][9] or [insight.UNTAGGED]:
            weeks = series.setdefault(c, [Fraction(0)] * 6)
            for w in range(6):
                weeks[w] += score(points, pid, n[w], m[w])
    ranked = sorted((c for c in series if sum(series[c])), key=lambda c: (-sum(series[c]), c))[:3]
    with db.session() as s:
        weekly = insight.weekly_category_scores(session=s, weeks=6, now=NOW, top=3)
    assert weekly.categories == {c: [float(v) for v in series[c]] for c in ranked}

    canonical = {pid: dup or pid for pid, dup, *_ in points.values()}
    heard = {(canonical[pid], user) for pid, user in notices}
    for window in (insight.Window.last(30, NOW), insight.Window.last(30, NOW).before()):
        inside = lambda t, window=window: t is not None and window.start <= t < window.end  # noqa: E731
        resolved = [p for p in points.values() if p[3] == "resolved" and p[1] is None and inside(p[7])]
        closed = [p for p in resolved if all((p[0], user) in heard for user, _ in p[8])]

        def median(pairs, inside=inside):
            spans = [(end - start).total_seconds() for start, end in pairs if inside(end)]
            return timedelta(seconds=statistics.median(spans)) if spans else None

        with db.session() as s:
            got = insight.loop_numbers(session=s, window=window)
        assert got.reports == sum(inside(p[5]) for p in points.values())
        assert got.active_reporters == len({u for p in points.values() for u, at in p[8] if inside(at)})
        assert (got.resolved, got.closed_loop) == (len(resolved), len(closed))
        canonical = [p for p in points.values() if p[1] is None]  # merged duplicates count not at all (issue #30)
        for ours, theirs in [(got.median_first_response, median((p[5], p[6]) for p in canonical)),
                             (got.median_resolution, median((p[5], p[7]) for p in canonical))]:
            assert (ours is None) == (theirs is None)
            if theirs is not None:
                assert abs(ours - theirs) < timedelta(milliseconds=1)
