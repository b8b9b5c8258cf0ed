"""Report benchmark: the top-friction report (``bot.insight.service.friction_scores``: top areas and top open
points with their trend) over a large database, against the plain SQL aggregate the same report
needs, written by hand below; and the bot's memory while serving the dashboard over that database.

    python -m bench.report [--size 1000000] [--database sqlite|postgresql|both] [--span-days 365]
                           [--runs 5] [--index] [--keep] [--url DATABASE_URL]

1. Bulk-loads ``--size`` data points (with reporters, about 1.4 per point, tags, 1.06 per point,
   5% merged duplicates, 60% with time lost) spread over ``--span-days`` up to now: executemany on
   SQLite, COPY on PostgreSQL, into a fresh, migrated database (or uses ``--url`` as it is).
2. Times ``friction_scores(days=30, limit=10)`` and the hand-written SQL (areas, then the top open
   points with their words), taken in turns, median of ``--runs`` after one warm-up each; checks
   that both give the same numbers, and prints both times, the ratio (goal: at most 1.2) and the load average.
3. Starts ``platform-feedback serve`` on that database with a dashboard token, requests /dashboard
   (three windows, and repeats that the page cache answers) and reads the process's VmRSS / VmHWM
   from /proc.

``--index`` first adds the index the report's range scan on reporters would use
(``reporter.reported_at``; not in the schema) to see what it changes. PostgreSQL: a fresh database is
created and dropped on the server at BENCH_POSTGRES_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/test). Not run in CI.
"""

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
from sqlalchemy import DateTime, bindparam, create_engine, text

from bot.insight import service as insight
from storage.database import Database
from tests.runtime.test_serve_http import free_port, stop_process

PG_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REPO = Path(__file__).resolve().parent.parent
CATEGORIES = ["ci", "deploys", "environments", "docs", "access", "observability", "onboarding", "other"]
CATEGORY_WEIGHTS = [24, 17, 14, 12, 12, 11, 6, 4]
SEVERITIES = ["low", "medium", "high", "blocker"]
SEVERITY_WEIGHTS = [25, 45, 22, 8]
SOURCES = ["command", "modal", "reaction", "shortcut", "help_channel"]
USERS = 20_000
CHUNK = 50_000
WINDOW_DAYS = 30
GOAL = 1.2  # friction_scores / plain SQL (issue #15)
TOKEN = "bench-dashboard-token-0123456789"
# Computed: /dashboard, ?days=7, ?days=90; the repeats within a minute are served from the page cache.
PAGES = ["/dashboard", "/dashboard", "/dashboard?days=7", "/dashboard?days=90", "/dashboard"]

POINT_COLUMNS = ("id", "team_id", "filed_by", "text", "kind", "severity", "minutes_lost", "source", "status", "intake_key",
                 "duplicate_of_id", "created_at", "updated_at", "first_response_at", "resolved_at")
REPORTER_COLUMNS = ("id", "friction_point_id", "user_id", "team_id", "reported_at")
TAG_COLUMNS = ("id", "friction_point_id", "category", "automatic")

def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``uptime`` shows them: figures from a busy machine say so."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ------------------------------------------------------------------ the data


def generate(size: int, span_days: int, now: datetime, seed: int = 1):
    """Chunks of (points, reporters, tags) rows, ids ascending with time."""
    rng = random.Random(seed)
    start = now - timedelta(days=span_days)
    step = span_days * 86400 / size
    reporter_id = tag_id = 0
    words = ["pipeline", "runner", "staging", "deploy", "rollback", "docs", "vpn", "sso", "alerts", "logs", "setup", "cache"]
    for first in range(1, size + 1, CHUNK):
        points, reporters, tags = [], [], []
        for pid in range(first, min(size, first + CHUNK - 1) + 1):
            created = start + timedelta(seconds=(pid - 0.5) * step + rng.uniform(-step / 2, step / 2))
            age = (now - created).total_seconds() / 86400
            severity = rng.choices(SEVERITIES, SEVERITY_WEIGHTS)[0]
            duplicate_of = rng.randint(max(1, pid - 2000), pid - 1) if pid > 1 and rng.random() < 0.05 else None
            first_response = created + timedelta(hours=rng.expovariate(1 / 6)) if rng.random() < min(0.95, 0.3 + age / 5) else None
            resolved = None
            status = "new"
            if duplicate_of:
                status = "duplicate"
            elif first_response:
                status = rng.choice(["acknowledged", "linked"])
                if rng.random() < min(0.9, age / 20):
                    resolved = first_response + timedelta(hours=rng.expovariate(1 / 40))
                    status = "resolved" if rng.random() < 0.93 else "wont_fix"
            clip = lambda t: t if t is None or t < now else None  # noqa: E731
            first_response, resolved = clip(first_response), clip(resolved)
            if resolved is None and status in ("resolved", "wont_fix"):
                status = "acknowledged"
            user = rng.randrange(USERS)
            points.append((
                pid, "T0BENCH001", f"U{user:09d}", f"the {rng.choice(words)} {rng.choice(words)} broke again ({pid})",
                "feedback", severity, rng.choice([15, 30, 60, 120, 240, 480]) if rng.random() < 0.6 else None,
                rng.choice(SOURCES), status, f"bench:{pid}", duplicate_of, created, created, first_response, resolved,
            ))
            people = {user}
            extra = {"low": 0.2, "medium": 0.3, "high": 0.6, "blocker": 1.0}[severity]
            while rng.random() < extra / (1 + extra) and len(people) < 30:
                people.add(rng.randrange(USERS))
            for i, u in enumerate(sorted(people, key=lambda u: u != user)):
                reporter_id += 1
                at = created if i == 0 else min(now - timedelta(seconds=1), created + timedelta(hours=rng.expovariate(1 / 30)))
                reporters.append((reporter_id, pid, f"U{u:09d}", "T0BENCH001", at))
            category = rng.choices(CATEGORIES, CATEGORY_WEIGHTS)[0]
            chosen = [category] if rng.random() > 0.08 else []  # a few untagged
            if chosen and rng.random() < 0.15:
                chosen.append(rng.choice([c for c in CATEGORIES if c != category]))
            for c in chosen:
                tag_id += 1
                tags.append((tag_id, pid, c, rng.random() < 0.3))
        yield points, reporters, tags


def _sqlite_time(value: datetime | None) -> str | None:
    """How SQLAlchemy stores a DateTime on SQLite (naive UTC, microseconds)."""
    return None if value is None else value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def load_sqlite(path: str, chunks) -> tuple[int, int, int]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    counts = [0, 0, 0]
    conn.execute("BEGIN")
    for points, reporters, tags in chunks:
        times = {11, 12, 13, 14}
        conn.executemany(f"INSERT INTO friction_point ({', '.join(POINT_COLUMNS)}) VALUES ({', '.join('?' * len(POINT_COLUMNS))})",
                         [tuple(_sqlite_time(v) if i in times else v for i, v in enumerate(row)) for row in points])
        conn.executemany(f"INSERT INTO reporter ({', '.join(REPORTER_COLUMNS)}) VALUES (?, ?, ?, ?, ?)",
                         [(*row[:4], _sqlite_time(row[4])) for row in reporters])
        conn.executemany(f"INSERT INTO friction_tag ({', '.join(TAG_COLUMNS)}) VALUES (?, ?, ?, ?)", tags)
        counts = [counts[0] + len(points), counts[1] + len(reporters), counts[2] + len(tags)]
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    return tuple(counts)


def load_postgresql(db: Database, chunks) -> tuple[int, int, int]:
    raw = db.engine.raw_connection()
    try:
        conn = raw.driver_connection
        counts = [0, 0, 0]
        with conn.cursor() as cur:
            for points, reporters, tags in chunks:
                for table, columns, rows in (("friction_point", POINT_COLUMNS, points), ("reporter", REPORTER_COLUMNS, reporters),
                                             ("friction_tag", TAG_COLUMNS, tags)):
                    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                counts = [counts[0] + len(points), counts[1] + len(reporters), counts[2] + len(tags)]
            for table in ("friction_point", "reporter", "friction_tag"):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        conn.commit()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE friction_point, reporter, friction_tag")
        conn.autocommit = False
        return tuple(counts)
    finally:
        raw.close()


@contextmanager
def fresh_database(kind: str, keep: bool = False):
    """A migrated, empty database of ``kind``; removed afterwards unless ``keep``."""
    if kind == "sqlite":
        tmp = tempfile.mkdtemp(prefix="pf-bench-report-")
        db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        db.migrate()
        try:
            yield db
        finally:
            db.dispose()
            if keep:
                print(f"[sqlite] kept: --url {db.url}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)
        return
    name = f"pf_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db = Database(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
    try:
        db.migrate()
        yield db
    finally:
        db.dispose()
        if keep:
            print(f"[postgresql] kept: --url {db.url}")
        else:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# ------------------------------------------------------------------ the plain SQL baseline

WEIGHT = "(CASE p.severity WHEN 'low' THEN 1 WHEN 'high' THEN 4 WHEN 'blocker' THEN 8 ELSE 2 END)"
SCORED = f"""
WITH rep AS (
    SELECT r.friction_point_id AS pid,
           SUM(CASE WHEN r.reported_at >= :mid THEN 1 ELSE 0 END) AS now_n,
           SUM(CASE WHEN r.reported_at < :mid THEN 1 ELSE 0 END) AS before_n
    FROM reporter r JOIN friction_point p ON p.id = r.friction_point_id
    WHERE p.duplicate_of_id IS NULL AND r.reported_at >= :start AND r.reported_at < :end
    GROUP BY r.friction_point_id
), lost AS (
    SELECT COALESCE(p.duplicate_of_id, p.id) AS pid,
           SUM(CASE WHEN p.created_at >= :mid THEN p.minutes_lost ELSE 0 END) AS now_m,
           SUM(CASE WHEN p.created_at < :mid THEN p.minutes_lost ELSE 0 END) AS before_m
    FROM friction_point p
    WHERE p.minutes_lost IS NOT NULL AND p.created_at >= :start AND p.created_at < :end
    GROUP BY COALESCE(p.duplicate_of_id, p.id)
), act AS (
    SELECT pid, SUM(now_n) AS now_n, SUM(before_n) AS before_n, SUM(now_m) AS now_m, SUM(before_m) AS before_m
    FROM (SELECT pid, now_n, before_n, 0 AS now_m, 0 AS before_m FROM rep
          UNION ALL SELECT pid, 0, 0, now_m, before_m FROM lost) AS u
    GROUP BY pid
), scored AS (
    SELECT a.pid, p.status, a.now_n, a.now_m,
           a.now_n * {WEIGHT} + a.now_m / 480.0 AS score,
           a.before_n * {WEIGHT} + a.before_m / 480.0 AS previous,
           CASE WHEN a.now_n > 0 OR a.now_m > 0 THEN 1 ELSE 0 END AS active
    FROM act AS a JOIN friction_point p ON p.id = a.pid
)
"""
CATEGORIES_SQL = SCORED + """
SELECT COALESCE(t.category, 'untagged') AS category, SUM(s.score), SUM(s.previous), SUM(s.active), SUM(s.now_m) / 60.0
FROM scored AS s LEFT JOIN friction_tag t ON t.friction_point_id = s.pid
GROUP BY COALESCE(t.category, 'untagged')
ORDER BY 2 DESC, 3 DESC, 1
"""
# Distinct people per area in the window (an area's "Reporters").
REPORTERS_SQL = """
SELECT COALESCE(t.category, 'untagged'), COUNT(DISTINCT r.user_id)
FROM reporter r JOIN friction_point p ON p.id = r.friction_point_id
LEFT JOIN friction_tag t ON t.friction_point_id = r.friction_point_id
WHERE p.duplicate_of_id IS NULL AND r.reported_at >= :mid AND r.reported_at < :end
GROUP BY COALESCE(t.category, 'untagged')
"""
POINTS_SQL = SCORED + """
SELECT s.pid, s.score, s.previous, s.now_n, p.text
FROM scored AS s JOIN friction_point p ON p.id = s.pid
WHERE s.status IN ('new', 'acknowledged', 'linked') AND s.active = 1
ORDER BY s.score DESC, s.pid
LIMIT :limit
"""


def _times(stmt):
    names = [n for n in ("start", "mid", "end") if f":{n}" in stmt.text]
    return stmt.bindparams(*(bindparam(n, type_=DateTime(timezone=True)) for n in names))


def baseline(*, session, now: datetime, days: int = WINDOW_DAYS, limit: int = 10):
    window = insight.Window.last(days, now)
    params = {"start": window.before().start, "mid": window.start, "end": window.end}
    categories = session.execute(_times(text(CATEGORIES_SQL)), params).all()
    people = dict(session.execute(_times(text(REPORTERS_SQL)), {"mid": params["mid"], "end": params["end"]}).all())
    categories = [(*row, people.get(row[0], 0)) for row in categories]
    points = session.execute(_times(text(POINTS_SQL)), {**params, "limit": limit}).all()
    return categories, points


def bot_report(*, session, now: datetime, days: int = WINDOW_DAYS, limit: int = 10):
    return insight.friction_scores(session=session, days=days, now=now, limit=limit)


def same_numbers(scores: insight.FrictionScores, categories, points) -> bool:
    ours = [(c.category, round(c.score, 3), round(c.previous, 3), c.points, c.reporters) for c in scores.categories]
    theirs = [(c, round(float(s), 3), round(float(p), 3), int(a), int(n)) for c, s, p, a, _h, n in categories]
    top = [(p.point_id, round(p.score, 3)) for p in scores.open_points]
    plain = [(pid, round(float(score), 3)) for pid, score, *_ in points]
    return sorted(ours) == sorted(theirs) and top == plain


def timed(db: Database, runs: int, now: datetime):
    """Median seconds of the bot's report and of the plain SQL, taken in turns (bot first, then SQL
    first) after one warm-up of each, so that load from elsewhere on the machine hits both alike."""
    scores, (categories, points) = db.transact(bot_report, now=now), db.transact(baseline, now=now)
    bot_times, sql_times = [], []
    for i in range(runs):
        for which in (("bot", "sql") if i % 2 == 0 else ("sql", "bot")):
            t0 = time.perf_counter()
            if which == "bot":
                scores = db.transact(bot_report, now=now)
                bot_times.append(time.perf_counter() - t0)
            else:
                categories, points = db.transact(baseline, now=now)
                sql_times.append(time.perf_counter() - t0)
    return statistics.median(bot_times), statistics.median(sql_times), scores, categories, points


# ------------------------------------------------------------------ serving the dashboard


def _status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) // 1024  # MiB
    return out


@contextmanager
def serve_process(url: str, policy: str | None = None, env: dict[str, str] | None = None):
    """``platform-feedback serve`` on ``url`` with the bench's dashboard token (and ``policy`` as its
    policy file, ``env`` over its environment, if given), until /healthz answers;
    ``with ... as (base URL, process)``; stopped after."""
    port, tmp = free_port(), tempfile.mkdtemp(prefix="pf-bench-serve-")
    if policy:
        Path(tmp, "platform-feedback.yml").write_text(policy)
    env = {**os.environ, "PYTHONPATH": str(REPO), "DATABASE_URL": url, "PORT": str(port), "HOST": "127.0.0.1",
           "SLACK_BOT_TOKEN": "xoxb-bench-0000", "SLACK_SIGNING_SECRET": "bench-signing-secret",
           "SLACK_API_URL": "http://127.0.0.1:9/api/",  # nothing listens: no call leaves the machine
           "DASHBOARD_TOKEN": TOKEN, **(env or {})}
    log = open(Path(tmp, "serve.log"), "wb")
    proc = subprocess.Popen([sys.executable, "-m", "bot.runtime.cli", "serve", "--no-migrate"], env=env, cwd=tmp,
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited: {Path(tmp, 'serve.log').read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("serve did not come up in 60 s")
            time.sleep(0.2)
        yield base, proc
    finally:
        stop_process(proc, timeout=20)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def serve_memory(url: str) -> dict:
    with serve_process(url) as (base, proc):
        idle = _status(proc.pid)
        latencies = {}
        with httpx.Client(base_url=base, timeout=600, headers={"authorization": f"Bearer {TOKEN}"}) as http:
            for path in PAGES:
                t0 = time.perf_counter()
                r = http.get(path)
                latencies.setdefault(path, []).append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise RuntimeError(f"{path} answered {r.status_code}")
        after = _status(proc.pid)
        return {"idle_rss": idle["VmRSS"], "rss": after["VmRSS"], "peak": after["VmHWM"], "latencies": latencies}


# ------------------------------------------------------------------ main


def run(kind: str, db: Database, args, *, load: bool) -> None:
    now = datetime.now(timezone.utc)
    if load:
        t0 = time.perf_counter()
        chunks = generate(args.size, args.span_days, now)
        counts = load_sqlite(db.url.removeprefix("sqlite:///"), chunks) if kind == "sqlite" else load_postgresql(db, chunks)
        print(f"[{kind}] loaded {counts[0]:,} data points, {counts[1]:,} reporters, {counts[2]:,} tags "
              f"in {time.perf_counter() - t0:.1f} s", flush=True)
    if args.index:
        with db.engine.begin() as conn:
            conn.execute(text("CREATE INDEX IF NOT EXISTS ix_bench_reporter_reported_at ON reporter (reported_at)"))
            conn.execute(text("ANALYZE reporter" if kind == "postgresql" else "ANALYZE"))
        print(f"[{kind}] added an index on reporter.reported_at", flush=True)
    bot_time, sql_time, scores, categories, points = timed(db, args.runs, now)
    ok = same_numbers(scores, categories, points)
    ratio = bot_time / sql_time
    print(f"[{kind}] top-friction report (friction_scores, {WINDOW_DAYS} days): {bot_time * 1000:.0f} ms; "
          f"plain SQL: {sql_time * 1000:.0f} ms; ratio {ratio:.2f} (goal <= {GOAL}: {'met' if ratio <= GOAL else 'NOT met'}); "
          f"same numbers: {'yes' if ok else 'NO'}; load average {load_average()}", flush=True)
    if args.serve:
        mem = serve_memory(db.url)
        pages = ", ".join(f"{path.removeprefix('/dashboard') or '/dashboard'} " + "/".join(f"{t:.2f}" for t in ts) + " s"
                          for path, ts in mem["latencies"].items())
        print(f"[{kind}] serve + {len(PAGES)} dashboard requests: RSS {mem['idle_rss']} MiB idle, {mem['rss']} MiB after, "
              f"peak {mem['peak']} MiB; {pages}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="data points to load (default 1,000,000)")
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--span-days", type=int, default=365, help="the points are spread over this many days up to now")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each (median)")
    parser.add_argument("--index", action="store_true", help="add an index on reporter.reported_at first")
    parser.add_argument("--no-serve", dest="serve", action="store_false", help="skip the memory measurement")
    parser.add_argument("--keep", action="store_true", help="keep the loaded database (prints its URL for --url)")
    parser.add_argument("--url", help="an already loaded database to use as it is (no loading, nothing dropped)")
    args = parser.parse_args(argv)
    if args.url:
        db = Database(args.url)
        run("sqlite" if args.url.startswith("sqlite") else "postgresql", db, args, load=False)
        db.dispose()
        return 0
    for kind in (["sqlite", "postgresql"] if args.database == "both" else [args.database]):
        with fresh_database(kind, keep=args.keep) as db:
            run(kind, db, args, load=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
