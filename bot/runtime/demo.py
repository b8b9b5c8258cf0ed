"""``platform-feedback demo``: a realistic sample in a local SQLite file, and the dashboard over it.

Six months of friction (about 2,000 data points over the default taxonomy's areas, with plausible
words, several reporters on the painful ones, merged duplicates), the hosts' triage (first
responses, assignments, tracker links, resolutions, declines) and issue closures with their
``ClosureNotice``s and the reporters' answers. Where pulse surveys exist (``storage.surveys``),
a monthly survey's runs with NPS answers too. All of it as the real models, with times spread over
the six months, in one transaction. Seeded: the same seed gives the same sample.

The dashboard is then served on 127.0.0.1 with a token made for this run; no Slack settings.
"""

import logging
import math
import random
import secrets
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlmodel import Session, func, select

from bot.policy import Policy
from bot.references import format_ref
from bot.trackers import parse_issue_url
from storage.database import Database
from storage.models import (
    ChangeAction,
    ClosureNotice,
    FrictionChange,
    FrictionKind,
    FrictionPoint,
    FrictionTag,
    Reporter,
    Severity,
    Source,
    Status,
    TrackerLink,
    utcnow,
)

TEAM = "T0DEMO0001"
HOSTS = ["U0HOSTAMRA", "U0HOSTBENJ", "U0HOSTCHLO", "U0HOSTDARI"]
SERVICES = ["payments-api", "checkout", "search", "ledger", "notifications", "auth-gateway", "catalog", "web-frontend",
            "mobile-bff", "data-pipeline", "billing", "inventory"]
ENVS = ["staging", "staging-eu", "preview", "sandbox", "qa"]
TOOLS = ["terraform", "helm", "argo", "the deploy CLI", "kubectl", "the service template", "vault", "backstage"]

# Per area: how often it comes up, and what people write. {s}: a service, {e}: an environment, {t}: a tool.
AREAS: dict[str, tuple[float, list[str]]] = {
    "ci": (0.24, [
        "CI for {s} is flaky again: the integration tests time out on the shared runner",
        "Build queue for {s} took 40 minutes this morning, runners seem saturated",
        "Pipeline cache keeps missing for {s}, every build downloads the world",
        "Flaky e2e test in {s} blocks merges, retried 4 times",
        "The arm64 runner pool is gone? {s} builds wait forever",
        "Docker layer pushes from CI fail with 'unexpected EOF' for {s}",
        "Can't tell why the {s} pipeline failed, the log is truncated",
        "Lint step in CI uses a different ruleset than local for {s}",
    ]),
    "deploys": (0.17, [
        "Deploy of {s} to production hung at 'waiting for rollout' for an hour",
        "Rollback for {s} needed three people and a manual {t} run",
        "Canary analysis marked {s} healthy while error rate doubled",
        "Release train missed because {t} asked for approval nobody could give",
        "{t} diff for {s} shows changes nobody made",
        "Deploys are frozen but nobody announced why",
        "Blue/green switch for {s} left the old pods serving traffic",
    ]),
    "environments": (0.14, [
        "{e} is down again, can't test {s}",
        "{e} database for {s} has data from last year, tests meaningless",
        "Spinning up a {e} environment takes over an hour",
        "Preview environments for {s} don't get the feature flags",
        "{e} certificates expired, all calls to {s} fail",
        "Someone's load test on {e} made {s} unusable for everyone",
    ]),
    "docs": (0.12, [
        "Runbook for {s} on-call still points at the old dashboards",
        "How do I get a new service into the service catalog? The docs page is a 404",
        "The {t} docs describe flags that no longer exist",
        "No docs on how to rotate secrets for {s}",
        "README of the service template contradicts the golden path page",
        "Couldn't find how to request a new Kafka topic",
    ]),
    "access": (0.12, [
        "Lost access to {e} after the SSO migration",
        "Requesting prod read access for {s} takes 3 days of approvals",
        "VPN drops every 20 minutes, kills long {t} runs",
        "Can't log in to the {t} UI, 'user not provisioned'",
        "New laptop, permissions to the {s} repo not restored",
        "Break-glass access for {s} expired in the middle of an incident",
    ]),
    "observability": (0.11, [
        "Logs for {s} are missing between 02:00 and 04:00",
        "Alert for {s} fired 80 times overnight, all noise",
        "Can't find traces across {s} and checkout, sampling too low?",
        "Metrics dashboard for {s} is empty since the agent upgrade",
        "Alert routing sends {s} pages to a team that no longer exists",
        "Log search times out for anything over an hour of {s}",
    ]),
    "onboarding": (0.06, [
        "New joiner setup took two days: laptop script fails on the {t} step",
        "Onboarding checklist asks for access that needs a manager who is on leave",
        "First deploy for a new joiner on {s} failed, nobody knew why",
        "Setup guide assumes Intel Macs",
    ]),
    "other": (0.04, [
        "Is there a way to get a cost report per service?",
        "Who owns the shared Redis cluster?",
        "Platform office hours clash with our standup",
    ]),
}
TAGS_EXTRA = {"ci": "deploys", "deploys": "environments", "environments": "access", "observability": "docs"}

# Trends: a per-area multiplier over the six months (0 = oldest, 1 = now).
TRENDS = {
    "ci": lambda x: 0.6 + 1.4 * x ** 3,  # getting worse lately: the runner migration
    "deploys": lambda x: 1.4 - 0.8 * x,  # better since the new deploy pipeline
    "access": lambda x: 1.0 + 1.6 * math.exp(-((x - 0.45) / 0.08) ** 2),  # the SSO migration spike
    "environments": lambda x: 1.0,
    "docs": lambda x: 0.9 + 0.2 * x,
    "observability": lambda x: 1.1 - 0.3 * x,
    "onboarding": lambda x: 1.0 + 0.6 * (x > 0.75),  # a hiring wave
    "other": lambda x: 1.0,
}
SEVERITIES = [(Severity.low, 0.25), (Severity.medium, 0.45), (Severity.high, 0.22), (Severity.blocker, 0.08)]
SOURCES = [(Source.command, 0.35), (Source.modal, 0.25), (Source.reaction, 0.15), (Source.shortcut, 0.1), (Source.help_channel, 0.15)]
KINDS = [(FrictionKind.feedback, 0.65), (FrictionKind.support, 0.25), (FrictionKind.question, 0.10)]
MINUTES = [15, 30, 45, 60, 90, 120, 180, 240, 480]


@dataclass
class DemoSummary:
    points: int = 0
    reporters: int = 0
    merged: int = 0
    links: int = 0
    resolved: int = 0
    declined: int = 0
    notices: int = 0
    survey_runs: int = 0
    survey_note: str = ""
    focus_note: str = ""
    first: datetime | None = None
    last: datetime | None = None
    by_area: dict[str, int] = field(default_factory=dict)


def _pick(rng: random.Random, weighted):
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


def _when(rng: random.Random, start: datetime, days: float) -> tuple[datetime, float]:
    """A working-hours moment in the span, a little busier towards now; and where it falls (0-1)."""
    while True:
        x = rng.random() ** 0.85  # slightly more recent than uniform: the bot caught on
        at = start + timedelta(days=days * x)
        if at.weekday() >= 5 and rng.random() < 0.85:
            continue
        at = at.replace(hour=rng.choice([8, 9, 9, 10, 10, 11, 11, 13, 14, 14, 15, 16, 17, 19]), minute=rng.randrange(60))
        return at, x


def _hours(rng: random.Random, median: float, spread: float = 1.0) -> timedelta:
    return timedelta(hours=median * math.exp(rng.gauss(0, spread)))


def _text(rng: random.Random, template: str) -> str:
    return template.format(s=rng.choice(SERVICES), e=rng.choice(ENVS), t=rng.choice(TOOLS))


def generate(db: Database, *, points: int = 2000, days: int = 183, seed: int = 7, now: datetime | None = None,
             policy: Policy | None = None) -> DemoSummary:
    """Fill ``db`` (migrated, empty) with the sample; returns what went in."""
    from bot.runtime.demo_focus import seed_focus

    now, policy = now or utcnow(), policy or Policy()
    summary = db.transact(_fill, points=points, days=days, seed=seed, now=now, policy=policy)
    _surveys(db, summary, seed=seed, now=now, days=days)
    summary.focus_note = db.transact(seed_focus, now=now, policy=policy)  # after the surveys: its baselines hold the pulse
    summary.notices = db.transact(lambda session: session.exec(select(func.count()).select_from(ClosureNotice)).one())
    return summary


def _fill(*, session: Session, points: int, days: int, seed: int, now: datetime, policy: Policy) -> DemoSummary:
    rng = random.Random(seed)
    known = {c.id for c in policy.taxonomy.categories}
    areas = {a: v for a, v in AREAS.items() if a in known} or {"other": AREAS["other"]}
    people = [f"U0DEV{n:05d}" for n in range(1, 141)]
    # Some people report much more than others.
    person_weights = [1 / (1 + i) ** 0.6 for i in range(len(people))]
    start = now - timedelta(days=days)
    summary = DemoSummary()

    # 1. The data points, oldest first (ids follow time, as in a real database).
    plans = []
    for _ in range(points):
        while True:
            created, x = _when(rng, start, days)
            area = rng.choices(list(areas), weights=[w * TRENDS.get(a, lambda _x: 1.0)(x) for a, (w, _t) in areas.items()])[0]
            if created < now:
                break
        plans.append((created, area))
    plans.sort()
    rows: list[FrictionPoint] = []
    for i, (created, area) in enumerate(plans):
        reporter = rng.choices(people, weights=person_weights)[0]
        source = _pick(rng, SOURCES)
        severity = _pick(rng, SEVERITIES)
        if area == "access" and rng.random() < 0.1:
            severity = Severity.blocker
        text = _text(rng, rng.choice(areas[area][1]))
        kind = FrictionKind.support if source == Source.help_channel else _pick(rng, KINDS)
        point = FrictionPoint(
            team_id=TEAM, filed_by=reporter if source != Source.reaction else rng.choice(people), text=text, kind=kind,
            severity=severity, minutes_lost=rng.choice(MINUTES) if rng.random() < 0.6 else None, source=source,
            channel_id="C0DEMOHELP" if source in (Source.help_channel, Source.reaction, Source.shortcut) else None,
            message_ts=f"{created.timestamp():.6f}" if source in (Source.help_channel, Source.reaction, Source.shortcut) else None,
            intake_key=f"demo:{seed}:{i}", created_at=created, updated_at=created,
        )
        # friction_point_id: the point's id, None until the flush below fills it in (through point.reporters, point.tags)
        point.reporters = [Reporter(friction_point_id=point.id, user_id=reporter, team_id=TEAM, reported_at=created)]
        tags = [area]
        if area in TAGS_EXTRA and rng.random() < 0.15:
            tags.append(TAGS_EXTRA[area])
        automatic = rng.random() < 0.3
        point.tags = [FrictionTag(friction_point_id=point.id, category=t, automatic=automatic) for t in tags]
        rows.append(point)
    session.add_all(rows)
    session.flush()
    for p in rows:
        session.add(FrictionChange(friction_point_id=p.id, actor=p.filed_by, action=ChangeAction.filed, new=Status.new, at=p.created_at))
        summary.by_area[p.tags[0].category] = summary.by_area.get(p.tags[0].category, 0) + 1

    # 2. "Me too": others hit the same thing (more on the severe ones).
    for p in rows:
        extra = {Severity.low: 0.2, Severity.medium: 0.5, Severity.high: 1.0, Severity.blocker: 2.2}[Severity(p.severity)]
        for _ in range(min(12, int(rng.expovariate(1 / extra)))):
            who = rng.choice(people)
            at = p.created_at + _hours(rng, 20, 1.2)
            if at < now and all(r.user_id != who for r in p.reporters):
                p.reporters.append(Reporter(friction_point_id=p.id, user_id=who, team_id=TEAM, reported_at=at))

    # 3. Triage by the hosts, as time allowed: older reports are further along.
    issue_numbers = iter(range(1200, 100000))
    by_area_open: dict[str, list[FrictionPoint]] = defaultdict(list)
    for p in rows:
        age_days = (now - p.created_at).total_seconds() / 86400
        host = rng.choice(HOSTS)
        # Merged duplicates: a newer report of what an open older one says.
        earlier = [q for q in by_area_open[p.tags[0].category][-40:] if q.status in (Status.new, Status.acknowledged, Status.linked)]
        if earlier and rng.random() < 0.08:
            older = rng.choice(earlier)
            at = p.created_at + _hours(rng, 6)
            if at < now:
                for r in p.reporters:
                    if all(o.user_id != r.user_id for o in older.reporters):
                        older.reporters.append(Reporter(friction_point_id=older.id, user_id=r.user_id, team_id=TEAM,
                                                        reported_at=r.reported_at))
                p.duplicate_of_id, p.status, p.first_response_at, p.updated_at = older.id, Status.duplicate, at, at
                session.add(FrictionChange(friction_point_id=p.id, actor=host, action=ChangeAction.merged, old=Status.new,
                                           new=format_ref(policy.reference_prefix, older.id), at=at))
                summary.merged += 1
                continue
        by_area_open[p.tags[0].category].append(p)
        if rng.random() > min(0.97, 0.35 + age_days / 6):  # the newest are often still waiting
            continue
        first = p.created_at + _hours(rng, 5, 1.1)
        if first >= now:
            continue
        p.first_response_at, p.assignee, p.status, p.updated_at = first, host, Status.acknowledged, first
        session.add(FrictionChange(friction_point_id=p.id, actor=host, action=ChangeAction.assigned, new=host, at=first))
        if any(t.automatic for t in p.tags):
            for t in p.tags:
                t.automatic = False
            session.add(FrictionChange(friction_point_id=p.id, actor=host, action=ChangeAction.tagged, new=",".join(t.category for t in p.tags), at=first))
        roll = rng.random()
        if roll < 0.05:  # declined
            at = first + _hours(rng, 24)
            if at < now:
                note = rng.choice(["Works as intended; see the golden path docs.", "Out of scope for the platform team.",
                                   "Not planned this quarter."])
                p.status, p.resolved_at, p.resolution_note, p.updated_at = Status.wont_fix, at, note, at
                session.add(FrictionChange(friction_point_id=p.id, actor=host, action=ChangeAction.declined, old=Status.acknowledged,
                                           new=Status.wont_fix, note=note, at=at))
                summary.declined += 1
        elif roll < 0.45:  # linked to a tracker issue, often closed since
            number = next(issue_numbers)
            url = (f"https://github.com/acme/platform/issues/{number}" if rng.random() < 0.65
                   else f"https://acme.atlassian.net/browse/PLAT-{number}")
            issue = parse_issue_url(url)
            linked_at = first + _hours(rng, 8)
            if linked_at >= now or issue is None:
                continue
            link = TrackerLink(friction_point_id=p.id, tracker=issue.tracker, key=issue.key, url=issue.url, created_at=linked_at)
            p.status, p.updated_at = Status.linked, linked_at
            session.add(FrictionChange(friction_point_id=p.id, actor=host, action=ChangeAction.linked,
                                       new=f"{issue.tracker}:{issue.key}", note=issue.url, at=linked_at))
            summary.links += 1
            closed_at = linked_at + _hours(rng, 24 * 9, 0.9)
            if closed_at < now and rng.random() < 0.8:
                link.closed, link.closures, link.closed_at = True, 1, closed_at
                p.status, p.resolved_at, p.updated_at = Status.resolved, closed_at, closed_at
                session.add(FrictionChange(friction_point_id=p.id, actor=f"tracker:{issue.tracker}", action=ChangeAction.closed,
                                           old=Status.linked, new=Status.resolved, note=issue.url, at=closed_at))
                summary.resolved += 1
                for r in p.reporters:  # every reporter hears it is fixed (merged ones are on p already)
                    feedback = rng.random()
                    notice = ClosureNotice(
                        friction_point_id=p.id, user_id=r.user_id, tracker=issue.tracker, key=issue.key, closure=1,
                        outcome="fixed", created_at=closed_at,
                    )
                    if feedback < 0.55:
                        notice.feedback, notice.feedback_at = "works", closed_at + _hours(rng, 6)
                    elif feedback < 0.62:
                        notice.feedback, notice.feedback_at = "broken", closed_at + _hours(rng, 6)
                        notice.comment = "Still see it on the nightly runs."
                    session.add(notice)
                    summary.notices += 1
            session.add(link)
        elif roll < 0.85:  # answered and resolved by hand
            at = first + _hours(rng, 30, 1.2)
            if at < now:
                note = rng.choice(["Fixed the config, please try again.", "Answered in the thread.", "Documented now.",
                                   "Runner pool scaled up.", "Access granted."])
                p.status, p.resolved_at, p.resolution_note, p.updated_at = Status.resolved, at, note, at
                session.add(FrictionChange(friction_point_id=p.id, actor=host, action=ChangeAction.resolved, old=Status.acknowledged,
                                           new=Status.resolved, note=note, at=at))
                summary.resolved += 1
    session.add_all(rows)
    session.flush()
    summary.points = len(rows)
    summary.reporters = session.exec(select(func.count()).select_from(Reporter)).one()
    summary.first, summary.last = rows[0].created_at, rows[-1].created_at
    return summary


# ------------------------------------------------------------------ pulse surveys, where they exist


def _surveys(db: Database, summary: DemoSummary, *, seed: int, now: datetime, days: int) -> None:
    try:
        from bot.policy import Survey, SurveyAudience, SurveyQuestion
        from bot.surveys import results as logic
        from storage import surveys as store
    except ImportError as exc:
        summary.survey_note = f"pulse surveys skipped (not available: {exc.name})"
        return
    needed = ("create_run", "add_recipients", "open_run", "close_run", "NewResponse")
    if not all(hasattr(store, name) for name in needed):
        summary.survey_note = "pulse surveys skipped (storage.surveys has no way to add runs and answers)"
        return
    survey = Survey(
        name="pulse", title="Platform pulse",
        questions=[
            SurveyQuestion(id="nps", kind="nps", text="How likely are you to recommend our internal platform to a colleague?"),
            SurveyQuestion(id="csat", kind="csat", text="How satisfied are you with the platform this month?"),
            SurveyQuestion(id="better", kind="text", text="What one thing would make the platform better for you?"),
        ],
        audience=SurveyAudience(active_days=90), min_group=5,
    )
    rng = random.Random(seed + 1)
    people = [f"U0DEV{n:05d}" for n in range(1, 141)]
    segments = ["channel:C0DEMOPAY", "channel:C0DEMOWEB", "channel:C0DEMODATA"]
    comments = ["Faster CI, please.", "Fewer flaky tests.", "Self-service preview environments.", "Better runbooks.",
                "One place to see why a deploy failed.", "Quicker access requests."]
    runs = 0
    for month in range(6, 0, -1):
        started = now - timedelta(days=min(days, 30 * month)) + timedelta(days=2)
        if started >= now - timedelta(days=8):
            continue

        def one_run(*, session: Session, started=started, month=month) -> bool:
            run = store.create_run(session=session, survey=survey.name, definition=survey.model_dump_json(), anonymous=True,
                                   occurrence=started, closes_at=started + timedelta(days=7))
            if run is None:
                return False
            asked = rng.sample(people, 90)
            added = store.add_recipients(session=session, run_id=run.id, people=[
                store.NewRecipient(user_id=u, tz="Europe/Berlin", segment=rng.choice(segments), deliver_at=started) for u in asked])
            store.open_run(session=session, run_id=run.id)
            mood = 0.2 + 0.1 * (6 - month)  # the platform gets better liked over the months
            drafts = []
            for row in added:
                row.delivered = True
                session.add(row)
                if rng.random() < 0.55:
                    score = max(0, min(10, round(rng.gauss(6.5 + 3 * mood, 2.0))))
                    answers: dict[str, dict] = {"nps": {"score": score}, "csat": {"score": max(1, min(5, round(rng.gauss(3.0 + 1.5 * mood, 0.9))))}}
                    if rng.random() < 0.3:
                        answers["better"] = {"text": rng.choice(comments)}
                    drafts.append(store.NewResponse(segment=row.segment, user_id=None, comment=None, answers=answers))
            mapping = logic.segment_map(dict(Counter(d.segment for d in drafts)), survey.min_group)
            for draft in drafts:
                draft.segment = mapping.get(draft.segment)
            rng.shuffle(drafts)  # as a real close writes them: row order is not answer order
            locked = store.lock_run(session=session, run_id=run.id)
            assert locked is not None  # created above, in this transaction
            closed = store.close_run(session=session, run=locked, responses=drafts, answered=len(drafts), now=started + timedelta(days=7))
            if closed is not None:
                closed.started_at = started
                session.add(closed)
            return True

        try:
            runs += bool(db.transact(one_run))
        except (TypeError, AttributeError) as exc:  # pulse surveys are young; their storage API may move
            summary.survey_runs = runs
            summary.survey_note = f"pulse surveys skipped after {runs} runs (storage.surveys differs: {exc})"
            return
    summary.survey_runs = runs
    summary.survey_note = f"{runs} pulse survey runs (NPS, CSAT)"


# ------------------------------------------------------------------ the command


def run_demo(*, port: int, db_file: str, points: int = 2000) -> int:
    """Fill ``db_file`` if it has no data points yet, then serve the dashboard on 127.0.0.1:port."""
    import socket

    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import RedirectResponse
    from starlette.routing import Route

    from bot.web.dashboard import PATH, Access, dashboard_routes

    path = Path(db_file).resolve()
    # The port first: a busy one fails here, before filling anything or printing a URL that would not answer.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        print(f"platform-feedback demo: cannot listen on 127.0.0.1:{port} ({exc.strerror}): choose another with --port.",
              file=sys.stderr)
        return 2
    db = Database(f"sqlite:///{path}")
    # A first command should print what it did, not one log line per schema migration.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    db.migrate()
    existing = db.transact(lambda session: session.exec(select(func.count()).select_from(FrictionPoint)).one())
    if existing:
        print(f"platform-feedback demo: using the {existing} data points already in {path}")
    else:
        print(f"platform-feedback demo: filling {path} with a six-month sample…", flush=True)
        s = generate(db, points=points)
        print(f"  {s.points} data points ({s.merged} merged duplicates), {s.reporters} reporters, {s.links} tracker links, "
              f"{s.resolved} resolved, {s.declined} declined, {s.notices} closure notices; {s.survey_note}; {s.focus_note}")
    policy = Policy()
    token = secrets.token_urlsafe(24)  # this run only: a restart makes a new one
    web = Starlette(routes=[
        Route("/", lambda _request: RedirectResponse(PATH), methods=["GET"]),
        *dashboard_routes(db=db, policy=policy, access=Access(token=token)),
    ])
    print(f"\n  Dashboard: http://127.0.0.1:{port}{PATH}?token={token}\n"
          f"  The CLI over this sample: DATABASE_URL=sqlite:///{path} platform-feedback report\n\n  (Ctrl-C stops it.)", flush=True)
    server = uvicorn.Server(uvicorn.Config(web, log_level="warning", log_config=None))
    server.run(sockets=[sock])
    return 0
