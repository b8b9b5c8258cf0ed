"""The read-only dashboard at ``/dashboard``: top friction areas and open reports with their trend,
the loop numbers, and charts. Rendered on the server (Jinja2, autoescaped; charts as inline SVG from
matplotlib), so the page runs no JavaScript and loads nothing from anywhere (its CSP forbids both).

Access (``DASHBOARD_TOKEN`` and/or ``DASHBOARD_TRUSTED_HEADER``; neither set: 404, the page is off):

- ``Authorization: Bearer <token>``;
- ``?token=<token>``: answered with a redirect to the same page without the token, setting an
  HttpOnly cookie so the page's own links work: a fresh session per sign-in (issue time and a
  random nonce, signed with an HMAC keyed by the token, never the token), refused by the server
  after ``COOKIE_MAX_AGE`` (7 days) whatever the browser keeps, ``Secure`` when the page is served
  over HTTPS (directly or behind a proxy saying ``X-Forwarded-Proto: https``). The token never
  reaches the access log (``bot.runtime.guard.RedactQuery``);
- the trusted header, non-empty, as set by an SSO proxy in front of the bot (which must strip it
  from what clients send).

Anything else: 401 with a short page. The numbers come from ``bot.insight.service``, computed in a worker
thread (``Database.run``), and the page is rendered in one too: the event loop never waits on them.
One computation runs at a time, and a page is reused for ``CACHE_SECONDS``.
"""

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import anyio
import anyio.to_thread
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from bot import charts
from bot.focus import dashboard as focus_section
from bot.insight import service as insight
from bot.insight.blocks import FORMULA, category_label, point_trend, rate, trend
from bot.policy import Policy
from bot.progress.stage import stage_of, started_points
from bot.references import format_ref
from bot.runtime.guard import redact_access_log
from bot.targets import compliance
from bot.targets.dashboard import targets_section
from bot.text import shorten
from bot.triage.blocks import _duration as duration
from bot.usage import adoption
from bot.usage import blocks as usage_blocks
from storage.database import Database, DatabaseUnavailable
from storage.models import utcnow

PATH = "/dashboard"
COOKIE = "pf_dashboard"
COOKIE_MAX_AGE = 7 * 24 * 3600
TOP_AREAS = 8
TOP_POINTS = 10
WINDOWS = (7, 30, 90, 180)  # the window links on the page (plus the policy's own)
NPS_DAYS = 365  # the NPS chart's span: survey runs are months apart
CACHE_SECONDS = 60  # a page is recomputed at most this often (per window): big databases take seconds

HEADERS = {
    # Nothing but inline styles (the SVG charts carry style attributes) and same-origin links.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

_templates = Environment(
    loader=PackageLoader("bot.web", "templates"), autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True
)


@dataclass(frozen=True)
class Access:
    token: str | None = None
    trusted_header: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.token or self.trusted_header)

    def _sign(self, session: str) -> str:
        assert self.token
        return hmac.new(self.token.encode(), b"platform-feedback dashboard session v2:" + session.encode(), hashlib.sha256).hexdigest()

    def cookie_value(self, now: float | None = None) -> str:
        """A new session: ``<issued unix seconds>.<random nonce>.<HMAC>``."""
        session = f"{int(time.time() if now is None else now)}.{secrets.token_urlsafe(16)}"
        return f"{session}.{self._sign(session)}"

    def session_valid(self, cookie: str, now: float | None = None) -> bool:
        issued, _, rest = cookie.partition(".")
        nonce, _, mac = rest.partition(".")
        if not (issued.isascii() and issued.isdigit() and len(issued) <= 12 and nonce and mac.isascii()):
            return False
        age = (time.time() if now is None else now) - int(issued)
        return 0 <= age < COOKIE_MAX_AGE and hmac.compare_digest(mac.encode(), self._sign(f"{issued}.{nonce}").encode())

    def token_matches(self, given: str | None) -> bool:
        if not self.token or not given:
            return False
        return hmac.compare_digest(given.encode(), self.token.encode())

    def allows(self, request: Request) -> bool:
        if self.trusted_header and request.headers.get(self.trusted_header, "").strip():
            return True
        if not self.token:
            return False
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.token_matches(credentials.strip()):
            return True
        cookie = request.cookies.get(COOKIE)
        if not cookie:
            return False
        return self.session_valid(cookie)


def routes(deps) -> list[Route]:
    """The dashboard's routes on the serve app (``deps``: ``bot.runtime.context.Deps``)."""
    return dashboard_routes(
        db=deps.db, policy=deps.policy,
        access=Access(deps.settings.dashboard_token, deps.settings.dashboard_trusted_header),
    )


def dashboard_routes(*, db: Database, policy: Policy, access: Access) -> list[Route]:
    """The same routes from just what they need (``platform-feedback demo`` has no Slack settings)."""
    redact_access_log()
    busy = _OneAtATime()
    cache: dict[int, tuple[float | None, str]] = {}  # days -> (monotonic time made, page), oldest first

    async def dashboard(request: Request) -> Response:
        if not access.enabled:
            return PlainTextResponse("Not Found", status_code=404)
        given = request.query_params.get("token")
        if given is not None:
            if not access.token_matches(given):
                return _unauthorized()
            # Take the token out of the address bar and history; the cookie carries the session.
            rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
            response = RedirectResponse(PATH + (f"?{rest}" if rest else ""), status_code=303, headers=HEADERS)
            response.set_cookie(
                COOKIE, access.cookie_value(), max_age=COOKIE_MAX_AGE, path=PATH, httponly=True,
                samesite="lax", secure=_https(request),
            )
            return response
        if not access.allows(request):
            return _unauthorized()
        days = _days(request.query_params.get("days"), policy.insight.window_days)
        if days is None:
            return HTMLResponse(_page("message.html", title="Bad request", message="days must be a whole number from 1 to 365."),
                                status_code=400, headers=HEADERS)
        async with busy:  # one computation at a time: a burst of reloads waits for it and shares it
            made, page = cache.get(days, (None, ""))
            if made is None or time.monotonic() - made >= CACHE_SECONDS:
                try:
                    # can take seconds on a big database (bench/README.md): no 2.5 s deadline
                    data = await db.work(gather, days=days, weeks=policy.insight.chart_weeks, policy=policy)
                except DatabaseUnavailable:
                    return HTMLResponse(_page("message.html", title="Database unavailable",
                                              message="The bot cannot reach its database right now; try again in a minute."),
                                        status_code=503, headers=HEADERS)
                page = await anyio.to_thread.run_sync(lambda: render(policy, data))
                cache.pop(days, None)
                cache[days] = (time.monotonic(), page)
                while len(cache) > 8:  # a few windows' pages, not one per possible ?days=
                    cache.pop(next(iter(cache)))
        return HTMLResponse(page, headers=HEADERS)

    return [Route(PATH, dashboard, methods=["GET"])]


def _https(request: Request) -> bool:
    """Served over HTTPS: directly, or by a TLS-terminating proxy that says so. Trusting the header
    can only add ``Secure`` to the sender's own cookie, so any client may set it."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


class _OneAtATime:
    """An anyio lock made on first use (inside the server's event loop)."""

    def __init__(self):
        self._lock: anyio.Lock | None = None

    async def __aenter__(self):
        if self._lock is None:
            self._lock = anyio.Lock()
        await self._lock.acquire()

    async def __aexit__(self, *exc):
        assert self._lock is not None  # made on entering
        self._lock.release()


def _days(raw: str | None, default: int) -> int | None:
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 365:
        return None
    return int(raw)


def _unauthorized() -> Response:
    page = _page(
        "message.html", title="Sign-in needed",
        message="This dashboard needs the dashboard token (or a sign-in through your single sign-on proxy).",
    )
    return HTMLResponse(page, status_code=401, headers={**HEADERS, "WWW-Authenticate": 'Bearer realm="platform-feedback dashboard"'})


def _page(template: str, **context) -> str:
    return _templates.get_template(template).render(**context)


# ------------------------------------------------------------------ data and page


@dataclass(frozen=True)
class DashboardData:
    days: int
    now: datetime
    scores: insight.FrictionScores
    health: insight.LoopHealth
    weekly: insight.WeeklyScores
    nps: list[insight.NpsPoint]  # per pulse-survey run closed in the last NPS_DAYS, oldest first
    focus: focus_section.FocusSection | None = None  # with a policy only
    targets: compliance.Compliance | None = None  # response targets; None when they are off
    usage: "adoption.Adoption | None" = None  # usage and adoption (bot.usage); None without capabilities
    started: frozenset[int] = frozenset()  # open points whose linked issue started (bot.progress.stage)


def gather(*, session, days: int, weeks: int = 8, now: datetime | None = None, policy: Policy | None = None) -> DashboardData:
    """Everything on the page, from ``bot.insight.service``, in one transaction (``weeks``: the weekly
    charts' span, the policy's ``insight.chart_weeks`` like the digest's chart)."""
    now = now or utcnow()
    scores = insight.friction_scores(session=session, days=days, now=now, limit=TOP_POINTS)
    return DashboardData(
        days=days,
        now=now,
        scores=scores,
        started=frozenset(started_points(session=session, point_ids=[p.point_id for p in scores.open_points])),
        health=insight.loop_health(session=session, days=days, now=now, weeks=weeks),
        weekly=insight.weekly_category_scores(session=session, weeks=weeks, now=now, top=5),
        nps=insight.nps_series(session=session, window=insight.Window.last(NPS_DAYS, now)),
        focus=focus_section.gather(session=session, policy=policy, now=now) if policy else None,
        targets=compliance.compliance(session=session, policy=policy, days=days, now=now, weeks=weeks) if policy else None,
        usage=adoption.measure(session=session, policy=policy, now=now, weeks=weeks) if policy and policy.usage.capabilities else None,
    )


def _week(at: datetime) -> str:
    return at.strftime("%d %b")


def _change_class(current: float, previous: float, new: bool | None = None) -> str:
    words = trend(current, previous, new=new)
    return "new" if words == "new" else "flat" if words == "=" else "up" if current > previous else "down"


def render(policy: Policy, data: DashboardData) -> str:
    """The page's HTML (CPU work: run it in a worker thread)."""
    taxonomy, prefix = policy.taxonomy, policy.reference_prefix
    scores, health, weekly = data.scores, data.health, data.weekly
    areas = [c for c in scores.categories if c.score > 0 or c.previous > 0][:TOP_AREAS]
    area_rows: list[dict[str, Any]] = [
        {"label": category_label(taxonomy, c.category), "score": f"{c.score:.1f}", "trend": trend(c.score, c.previous),
         "trend_class": _change_class(c.score, c.previous), "points": c.points, "reporters": c.reporters,
         "hours": f"{c.hours_lost:.1f}"}
        for c in areas
    ]
    point_rows = [
        {"ref": format_ref(prefix, p.point_id), "score": f"{p.score:.1f}", "trend": point_trend(p),
         "trend_class": _change_class(p.score, p.previous, p.new), "reporters": p.reporters, "severity": p.severity,
         "status": str(stage_of(p, p.point_id in data.started)), "areas": ", ".join(category_label(taxonomy, c) for c in p.categories) or "Untagged",
         "text": shorten(p.text, 280)}
        for p in scores.open_points
    ]
    now, before = health.current, health.previous
    this_week = health.weeks[-1].active_reporters if health.weeks else 0
    last_week = health.weeks[-2].active_reporters if len(health.weeks) > 1 else 0
    loop = [
        {"name": "Reports per week", "value": f"{now.reports_per_week:.1f}", "was": f"{before.reports_per_week:.1f}"},
        {"name": f"Active reporters ({data.days} days)", "value": str(now.active_reporters), "was": str(before.active_reporters)},
        {"name": "Active reporters this week", "value": str(this_week), "was": str(last_week)},
        {"name": "Median first response", "value": duration(now.median_first_response), "was": duration(before.median_first_response)},
        {"name": "Median time to resolve", "value": duration(now.median_resolution), "was": duration(before.median_resolution)},
        {"name": "Closed-loop rate", "value": rate(now.closed_loop_rate), "detail": f"of {now.resolved} resolved",
         "was": rate(before.closed_loop_rate)},
    ]
    svg: dict[str, str] = {}
    if areas:
        svg["areas"] = charts.svg_bar_chart(
            f"Friction score by area, last {data.days} days", [r["label"] for r in area_rows],
            {f"last {data.days} days": [c.score for c in areas], f"the {data.days} days before": [c.previous for c in areas]},
            x_label="friction score", id_prefix="areas",
        )
    if weekly.categories:
        svg["weekly"] = charts.svg_line_chart(
            f"Weekly friction score, top areas, last {len(weekly.weeks)} weeks", [_week(w) for w in weekly.weeks],
            {category_label(taxonomy, c): v for c, v in weekly.categories.items()}, y_label="friction score", id_prefix="weekly",
        )
    if any(w.reports or w.active_reporters for w in health.weeks):
        svg["activity"] = charts.svg_line_chart(
            "Reports and active reporters per week", [_week(w.start) for w in health.weeks],
            {"reports": [w.reports for w in health.weeks], "active reporters": [w.active_reporters for w in health.weeks]},
            id_prefix="activity",
        )
    if data.nps:
        svg["nps"] = charts.svg_line_chart(
            "NPS per pulse-survey run, last 12 months", [n.at.strftime("%d %b %Y") for n in data.nps],
            {"NPS": [n.score for n in data.nps]}, y_label="NPS (-100 to 100)", id_prefix="nps",
        )
        latest, earlier = data.nps[-1], (data.nps[-2] if len(data.nps) > 1 else None)
        loop.append({"name": "NPS, latest pulse survey", "value": f"{latest.score:+.0f}",
                     "detail": f"{latest.responses} answers, {latest.at.strftime('%d %b')}",
                     "was": f"{earlier.score:+.0f}" if earlier else "–"})
    windows = sorted({*WINDOWS, policy.insight.window_days})
    return _page(
        "dashboard.html",
        days=data.days, end=data.now.strftime("%Y-%m-%d %H:%M UTC"), windows=windows, path=PATH,
        areas=area_rows, points=point_rows, kpis=loop, charts={k: _markup(v) for k, v in svg.items()}, formula=FORMULA,
        reports=now.reports, focus=focus_section.context(data.focus, policy) if data.focus else None,
        targets=targets_section(taxonomy, data.targets),
        usage=usage_blocks.dashboard_context(data.usage, lambda *a, **k: _markup(charts.svg_line_chart(*a, **k))),
    )


def _markup(svg: str) -> Markup:
    """matplotlib wrote the SVG and escaped every text in it; mark it safe for the template."""
    return Markup(svg)
