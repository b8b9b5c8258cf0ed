"""Analytics queries for ``bot.insight.service``: every scan and aggregate runs in the database,
and each function returns only the rows a report shows (a row per area, per week, the top points,
one or two middle values for a median). Python never sees one row per stored report, so a big
database costs the serving process no CPU or memory beyond the query's wait (issue #15).

Times are compared as bound ``DateTime(timezone=True)`` parameters, so SQLite's stored text and
PostgreSQL's ``timestamptz`` both compare correctly. Integer sums (reporters x weight, minutes) are
returned as integers; the caller divides once, so the scores do not depend on summation order.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Float, and_, case, cast, distinct, exists, func, literal, literal_column, or_, select, union_all
from sqlmodel import Session, col

from storage.models import ClosureNotice, FrictionPoint, FrictionTag, Reporter, Status, as_utc

UNTAGGED = "untagged"


def bucket(column, edges: Sequence[datetime]):
    """The index of the bucket ``[edges[i], edges[i + 1])`` that ``column`` falls in (rows already
    limited to ``[edges[0], edges[-1])``)."""
    whens = [(column >= edges[i], i) for i in range(len(edges) - 2, 0, -1)]
    return case(*whens, else_=0) if whens else literal(0)


def _weight(severity, weights: Mapping[str, int], default: int):
    return case({str(k): v for k, v in weights.items()}, value=severity, else_=default)


def _activity(edges: Sequence[datetime]):
    """A subquery ``(pid, b, n, m)``: per canonical data point and bucket, ``n`` reporters whose report
    falls in the bucket and ``m`` minutes lost by it and its merged duplicates filed in it."""
    reports = (
        select(col(Reporter.friction_point_id).label("pid"), bucket(col(Reporter.reported_at), edges).label("b"),
               literal_column("1").label("n"), literal_column("0").label("m"))
        .join(FrictionPoint, col(FrictionPoint.id) == col(Reporter.friction_point_id))
        .where(col(FrictionPoint.duplicate_of_id).is_(None), col(Reporter.reported_at) >= edges[0], col(Reporter.reported_at) < edges[-1])
    )
    canonical = func.coalesce(col(FrictionPoint.duplicate_of_id), col(FrictionPoint.id))
    minutes = (
        select(canonical.label("pid"), bucket(col(FrictionPoint.created_at), edges).label("b"),
               literal_column("0").label("n"), col(FrictionPoint.minutes_lost).label("m"))
        .where(col(FrictionPoint.minutes_lost).is_not(None), col(FrictionPoint.created_at) >= edges[0], col(FrictionPoint.created_at) < edges[-1])
    )
    # Grouped in an outer query: PostgreSQL cannot match a CASE with bound parameters in GROUP BY.
    u = union_all(reports, minutes).subquery("u")
    return select(u.c.pid, u.c.b, func.sum(u.c.n).label("n"), func.sum(u.c.m).label("m")).group_by(u.c.pid, u.c.b).subquery("act")


def _two_windows(start: datetime, mid: datetime, end: datetime, weights: Mapping[str, int], default: int):
    """Per canonical point active in ``[start, end)``: reporters and minutes before ``mid`` (0) and
    from it (1), its weight, status and creation time."""
    act = _activity([start, mid, end])
    one, zero = act.c.b == 1, act.c.b == 0
    per = (
        select(act.c.pid,
               func.sum(case((one, act.c.n), else_=0)).label("n1"), func.sum(case((zero, act.c.n), else_=0)).label("n0"),
               func.sum(case((one, act.c.m), else_=0)).label("m1"), func.sum(case((zero, act.c.m), else_=0)).label("m0"))
        .group_by(act.c.pid).subquery("per")
    )
    w = _weight(col(FrictionPoint.severity), weights, default)
    return (
        select(per.c.pid, per.c.n1, per.c.n0, per.c.m1, per.c.m0, w.label("w"), col(FrictionPoint.severity).label("severity"),
               col(FrictionPoint.status).label("status"), col(FrictionPoint.created_at).label("created_at"))
        .join(FrictionPoint, col(FrictionPoint.id) == per.c.pid)
        .subquery("scored")
    )


def category_totals(*, session: Session, start: datetime, mid: datetime, end: datetime, weights: Mapping[str, int],
                    default: int = 2) -> list[tuple[str, int, int, int, int, int]]:
    """Per area (``UNTAGGED`` for points without one): ``(category, reporters x weight from mid,
    the same before mid, points active from mid, minutes lost from mid, minutes lost before mid)``,
    over canonical points with activity in ``[start, end)``. A point with two areas counts in both."""
    s = _two_windows(start, mid, end, weights, default)
    category = func.coalesce(col(FrictionTag.category), UNTAGGED)
    rows = session.execute(
        select(category, func.sum(s.c.n1 * s.c.w), func.sum(s.c.n0 * s.c.w),
               func.sum(case((or_(s.c.n1 > 0, s.c.m1 > 0), 1), else_=0)), func.sum(s.c.m1), func.sum(s.c.m0))
        .select_from(s).outerjoin(FrictionTag, col(FrictionTag.friction_point_id) == s.c.pid)
        .group_by(category)
    ).all()
    return [(c, int(a or 0), int(b or 0), int(p or 0), int(m1 or 0), int(m0 or 0)) for c, a, b, p, m1, m0 in rows]


def category_reporters(*, session: Session, start: datetime, end: datetime) -> dict[str, int]:
    """Distinct people per area who reported a canonical point of it in ``[start, end)``: someone
    who reported three CI problems is one CI reporter."""
    category = func.coalesce(col(FrictionTag.category), UNTAGGED)
    rows = session.execute(
        select(category, func.count(distinct(col(Reporter.user_id))))
        .select_from(Reporter)
        .join(FrictionPoint, col(FrictionPoint.id) == col(Reporter.friction_point_id))
        .outerjoin(FrictionTag, col(FrictionTag.friction_point_id) == col(Reporter.friction_point_id))
        .where(col(FrictionPoint.duplicate_of_id).is_(None), col(Reporter.reported_at) >= start, col(Reporter.reported_at) < end)
        .group_by(category)
    ).all()
    return {c: int(n) for c, n in rows}


def top_points(*, session: Session, start: datetime, mid: datetime, end: datetime, weights: Mapping[str, int],
               statuses: Sequence[str], limit: int, default: int = 2) -> list[tuple]:
    """The ``limit`` points in ``statuses`` with the highest score from ``mid`` (then lowest id):
    ``(id, reporters from mid, reporters before, minutes from mid, minutes before, weight, severity,
    status, created_at (UTC), text)``. Ordered on the exact integer ``reporters x weight x 480 +
    minutes`` (score x 480), so ties do not hinge on float rounding."""
    s = _two_windows(start, mid, end, weights, default)
    rows = session.execute(
        select(s.c.pid, s.c.n1, s.c.n0, s.c.m1, s.c.m0, s.c.w, s.c.severity, s.c.status, s.c.created_at, col(FrictionPoint.text))
        .join(FrictionPoint, col(FrictionPoint.id) == s.c.pid)
        .where(col(s.c.status).in_([str(x) for x in statuses]), or_(s.c.n1 > 0, s.c.m1 > 0))
        .order_by((s.c.n1 * s.c.w * 480 + s.c.m1).desc(), s.c.pid)
        .limit(limit)
    ).all()
    return [(pid, int(n1), int(n0), int(m1), int(m0), int(w), sev, st, as_utc(at), text)
            for pid, n1, n0, m1, m0, w, sev, st, at, text in rows]


def categories_of(*, session: Session, ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
    """Each point's areas, in the order they were tagged (for the handful of shown points)."""
    found: dict[int, list[str]] = {i: [] for i in ids}
    if ids:
        for pid, category in session.execute(
            select(col(FrictionTag.friction_point_id), col(FrictionTag.category))
            .where(col(FrictionTag.friction_point_id).in_(list(ids))).order_by(col(FrictionTag.id))
        ):
            found[pid].append(category)
    return {pid: tuple(c) for pid, c in found.items()}


def weekly_category_totals(*, session: Session, edges: Sequence[datetime], weights: Mapping[str, int],
                           default: int = 2) -> list[tuple[str, int, int, int]]:
    """Per area and bucket of ``edges``: ``(category, bucket index, reporters x weight, minutes lost)``."""
    act = _activity(edges)
    category = func.coalesce(col(FrictionTag.category), UNTAGGED)
    w = _weight(col(FrictionPoint.severity), weights, default)
    inner = (
        select(category.label("c"), act.c.b.label("b"), (act.c.n * w).label("nw"), act.c.m.label("m"))
        .select_from(act).join(FrictionPoint, col(FrictionPoint.id) == act.c.pid)
        .outerjoin(FrictionTag, col(FrictionTag.friction_point_id) == act.c.pid)
        .subquery("cat")
    )
    rows = session.execute(select(inner.c.c, inner.c.b, func.sum(inner.c.nw), func.sum(inner.c.m)).group_by(inner.c.c, inner.c.b)).all()
    return [(c, int(b), int(nw or 0), int(m or 0)) for c, b, nw, m in rows]


# ------------------------------------------------------------------ loop numbers


def median_duration(*, session: Session, since, until, start: datetime, end: datetime, where=()) -> timedelta | None:
    """The median of ``until - since`` over rows whose ``until`` falls in ``[start, end)`` (and
    that meet the conditions ``where``); None if there are none. PostgreSQL: ``percentile_cont(0.5)``. SQLite has no percentile: the one or two
    middle rows by ``julianday`` difference (``ORDER BY ... LIMIT/OFFSET``), whose exact
    difference Python then takes from their timestamps."""
    where = (until >= start, until < end, *where)
    if session.get_bind().dialect.name == "postgresql":
        seconds = session.scalar(
            select(func.percentile_cont(0.5).within_group(cast(func.extract("epoch", until - since), Float))).where(*where)
        )
        return None if seconds is None else timedelta(seconds=float(seconds))
    n = session.scalar(select(func.count()).select_from(until.table).where(*where))
    if not n:
        return None
    middle = session.execute(
        select(since, until).where(*where).order_by(func.julianday(until) - func.julianday(since))
        .limit(2 - n % 2).offset((n - 1) // 2)
    ).all()
    spans = [as_utc(u) - as_utc(s) for s, u in middle]
    return sum(spans, timedelta()) / len(spans)


def resolved_and_closed(*, session: Session, start: datetime, end: datetime) -> tuple[int, int]:
    """``(resolved, closed loop)``: canonical points resolved (not declined) in ``[start, end)``, and
    of those the ones where every reporter has a closure notice for it or for a duplicate merged into
    it."""
    # SQLModel gives a table model its __table__ when the class is made; its stubs do not declare it
    p = FrictionPoint.__table__.alias("p")  # type: ignore[attr-defined]
    r = Reporter.__table__.alias("r")  # type: ignore[attr-defined]
    n = ClosureNotice.__table__.alias("n")  # type: ignore[attr-defined]
    d = FrictionPoint.__table__.alias("d")  # type: ignore[attr-defined]
    heard = exists().where(
        n.c.user_id == r.c.user_id, d.c.id == n.c.friction_point_id,
        or_(d.c.duplicate_of_id == r.c.friction_point_id, and_(d.c.duplicate_of_id.is_(None), d.c.id == r.c.friction_point_id)),
    )
    unheard = exists().where(r.c.friction_point_id == p.c.id, ~heard)
    resolved, closed = session.execute(
        select(func.count(), func.coalesce(func.sum(case((~unheard, 1), else_=0)), 0))
        .select_from(p)
        .where(p.c.status == str(Status.resolved), p.c.duplicate_of_id.is_(None), p.c.resolved_at >= start, p.c.resolved_at < end)
    ).one()
    return int(resolved), int(closed)
