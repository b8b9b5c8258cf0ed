"""Dashboard benchmark: a first load of ``/dashboard`` (nothing cached: every request asks for a
window not asked before) from ``platform-feedback serve`` over HTTP, against the plain SQL
aggregates the page needs, hand-written below and run from this process, taken in turns. PostgreSQL
(the baseline's medians use ``percentile_cont``).

    python -m bench.dashboard --url postgresql+psycopg://postgres@127.0.0.1:5432/pf_bench_XXXX [--runs 5]

``--url``: a database loaded by ``python -m bench.report --database postgresql --size N --keep``
(which prints it). Prints each round's times, the medians, their ratio (goal: at most 1.5) and the
load average. Not run in CI.
"""

import argparse
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone

import httpx
from sqlalchemy import DateTime, bindparam, text

from bench.report import PG_ADMIN_URL, TOKEN, baseline, load_average, serve_process
from bot.insight import service as insight
from storage.database import Database

GOAL = 1.5
WEEKS = 8  # insight.chart_weeks' default: the page's weekly charts
WEIGHT = "(CASE p.severity WHEN 'low' THEN 1 WHEN 'high' THEN 4 WHEN 'blocker' THEN 8 ELSE 2 END)"

LOOP_SQL = """
SELECT
  (SELECT count(*) FROM friction_point WHERE created_at >= :ws AND created_at < :we),
  (SELECT count(DISTINCT user_id) FROM reporter WHERE reported_at >= :ws AND reported_at < :we),
  (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_response_at - created_at))
     FROM friction_point WHERE first_response_at >= :ws AND first_response_at < :we),
  (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM resolved_at - created_at))
     FROM friction_point WHERE resolved_at >= :ws AND resolved_at < :we),
  (SELECT count(*) FROM friction_point p WHERE p.status = 'resolved' AND p.duplicate_of_id IS NULL
     AND p.resolved_at >= :ws AND p.resolved_at < :we),
  (SELECT count(*) FROM friction_point p WHERE p.status = 'resolved' AND p.duplicate_of_id IS NULL
     AND p.resolved_at >= :ws AND p.resolved_at < :we
     AND NOT EXISTS (SELECT 1 FROM reporter r WHERE r.friction_point_id = p.id AND NOT EXISTS (
       SELECT 1 FROM closure_notice n JOIN friction_point d ON d.id = n.friction_point_id
       WHERE n.user_id = r.user_id
         AND (d.duplicate_of_id = p.id OR (d.duplicate_of_id IS NULL AND d.id = p.id)))))
"""
WEEK = "floor(extract(epoch FROM {} - :w0) / 604800)::int"
ACTIVITY_SQL = f"""
SELECT 'reports', {WEEK.format('created_at')}, count(*) FROM friction_point WHERE created_at >= :w0 AND created_at < :end GROUP BY 2
UNION ALL
SELECT 'people', {WEEK.format('reported_at')}, count(DISTINCT user_id) FROM reporter WHERE reported_at >= :w0 AND reported_at < :end GROUP BY 2
"""
WEEKLY_SQL = f"""
WITH act AS (
    SELECT r.friction_point_id AS pid, {WEEK.format('r.reported_at')} AS b, 1 AS n, 0 AS m
    FROM reporter r JOIN friction_point p ON p.id = r.friction_point_id
    WHERE p.duplicate_of_id IS NULL AND r.reported_at >= :w0 AND r.reported_at < :end
    UNION ALL
    SELECT COALESCE(p.duplicate_of_id, p.id), {WEEK.format('p.created_at')}, 0, p.minutes_lost
    FROM friction_point p WHERE p.minutes_lost IS NOT NULL AND p.created_at >= :w0 AND p.created_at < :end
)
SELECT COALESCE(t.category, 'untagged'), a.b, SUM(a.n * {WEIGHT} + a.m / 480.0)
FROM act a JOIN friction_point p ON p.id = a.pid LEFT JOIN friction_tag t ON t.friction_point_id = a.pid
GROUP BY 1, 2
"""


def _times(sql: str, *names: str):
    return text(sql).bindparams(*(bindparam(n, type_=DateTime(timezone=True)) for n in names))


def plain_sql(*, session, days: int, now: datetime):
    """What the page shows, in hand-written SQL: areas and top open points (``bench.report``), the
    loop numbers for the window and the one before, reports and people per week, areas per week."""
    window = insight.Window.last(days, now)
    scores = baseline(session=session, now=now, days=days)
    loops = [session.execute(_times(LOOP_SQL, "ws", "we"), {"ws": w.start, "we": w.end}).one() for w in (window, window.before())]
    w0 = now - timedelta(weeks=WEEKS)
    activity = session.execute(_times(ACTIVITY_SQL, "w0", "end"), {"w0": w0, "end": now}).all()
    weekly = session.execute(_times(WEEKLY_SQL, "w0", "end"), {"w0": w0, "end": now}).all()
    return scores, loops, activity, weekly


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="a loaded PostgreSQL database (bench.report --keep prints it)")
    parser.add_argument("--runs", type=int, default=5, help="first loads and baseline runs, taken in turns (median)")
    args = parser.parse_args(argv)
    if not args.url.startswith("postgresql"):
        parser.error(f"PostgreSQL only (e.g. {PG_ADMIN_URL.rsplit('/', 1)[0]}/pf_bench_XXXX)")
    db = Database(args.url)
    points = db.transact(lambda session: session.execute(text("SELECT count(*) FROM friction_point")).scalar())
    page_times, sql_times = [], []
    with serve_process(args.url) as (base, _proc), httpx.Client(base_url=base, timeout=600,
                                                                  headers={"authorization": f"Bearer {TOKEN}"}) as http:
        db.transact(plain_sql, days=29, now=datetime.now(timezone.utc))  # warm-up of both, on a window not timed
        assert http.get("/dashboard?days=29").status_code == 200
        for i in range(args.runs):
            days = 30 + i  # a window not asked before: the page is computed, not taken from its cache
            for which in (("page", "sql") if i % 2 == 0 else ("sql", "page")):
                t0 = time.perf_counter()
                if which == "page":
                    r = http.get(f"/dashboard?days={days}")
                    if r.status_code != 200:
                        raise RuntimeError(f"/dashboard answered {r.status_code}")
                    page_times.append(time.perf_counter() - t0)
                else:
                    db.transact(plain_sql, days=days, now=datetime.now(timezone.utc))
                    sql_times.append(time.perf_counter() - t0)
            print(f"  round {i + 1}: first load {page_times[-1] * 1000:.0f} ms, plain SQL {sql_times[-1] * 1000:.0f} ms", flush=True)
    db.dispose()
    page, sql = statistics.median(page_times), statistics.median(sql_times)
    ratio = page / sql
    print(f"[postgresql, {points:,} points] /dashboard first load {page * 1000:.0f} ms; plain SQL {sql * 1000:.0f} ms; "
          f"ratio {ratio:.2f} (goal <= {GOAL}: {'met' if ratio <= GOAL else 'NOT met'}); load average {load_average()}", flush=True)
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
