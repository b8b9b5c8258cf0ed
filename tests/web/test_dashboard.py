"""The read-only dashboard (/dashboard): access (off, token, cookie, trusted header), escaping, the
numbers computed off the event loop, the demo sample and command, and the real page in headless
Chromium over real HTTP (console clean, charts drawn, a screenshot)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from markupsafe import escape
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import func, select

from bot.policy import Policy
from bot.runtime.app import create_app, create_web_app
from bot.runtime.settings import ConfigError, Settings, load_settings
from bot.trackers import parse_issue_url
from bot.triage import service as triage
from bot.web import dashboard
from storage.database import Database, DatabaseUnavailable
from storage.friction import FrictionDraft, add_reporter, file_friction
from storage.models import ClosureNotice, FrictionPoint, Severity, Source, TrackerLink, Workspace
from tests.conftest import make_settings
from tests.fake_slack import TOKEN, FakeSlackServer
from tests.runtime.test_serve_http import START_SECONDS, free_port, stop_process, wait_until
from tests.slack_requests import SIGNING_SECRET, slash_command
from tests.waiting import WAIT_SECONDS, until

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_TOKEN = "dashboard-token-" + "x" * 16
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOP_TEXT = "The staging deploy hangs at 'waiting for rollout' & nobody knows why"


@asynccontextmanager
async def dashboard_client(fake_slack, db: Database, **overrides):
    settings = make_settings(fake_slack, db, **overrides)
    app, deps = create_app(settings, Policy(), db, client=AsyncWebClient(token=TOKEN, base_url=settings.slack_api_url))
    web = create_web_app(app, deps, run_background=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://testserver") as http:
        yield http


def file_sample(db: Database) -> dict[str, int]:
    """A few reports filed and triaged with the real functions: a blocker three people hit (the top
    friction point), one linked and closed with a notice, one resolved, one untagged."""

    def fill(*, session) -> dict[str, int]:
        def filed(text: str, n: int, **kw) -> FrictionPoint:
            draft = FrictionDraft(team_id="T0TEAM001", filed_by=f"U0DEV0000{n}", reporter_id=f"U0DEV0000{n}", text=text,
                                  source=Source.command, intake_key=f"dash:{uuid.uuid4().hex}", **kw)
            return file_friction(session=session, draft=draft).point

        top = filed(TOP_TEXT, 1, categories=("deploys",), severity=Severity.blocker, minutes_lost=240)
        for n in (2, 3):
            add_reporter(session=session, point=top, user_id=f"U0DEV0000{n}", workspace=Workspace(team_id="T0TEAM001"))
        triage.assign(session=session, point_id=top.id, actor="U0HOST0001", assignee="U0HOST0001", prefix="FB")
        ci = filed("CI runners are flaky on the integration suite", 4, categories=("ci",), severity=Severity.high, minutes_lost=60)
        issue = parse_issue_url("https://github.com/acme/platform/issues/7")
        triage.link(session=session, point_id=ci.id, actor="U0HOST0001", issue=issue, prefix="FB")
        docs = filed("The runbook for on-call is out of date", 5, categories=("docs",), severity=Severity.low)
        triage.resolve(session=session, point_id=docs.id, actor="U0HOST0002", note="Updated.", prefix="FB")
        filed("Where do I ask about cost reports?", 6)
        return {"top": top.id, "ci": ci.id, "docs": docs.id}

    return db.transact(fill)


# ------------------------------------------------------------------ access


async def test_dashboard_is_off_unless_configured(fake_slack, db):
    async with dashboard_client(fake_slack, db) as http:
        assert (await http.get("/dashboard")).status_code == 404
        assert (await http.get("/dashboard", headers={"authorization": f"Bearer {DASHBOARD_TOKEN}"})).status_code == 404
        assert (await http.get("/dashboard", headers={"x-forwarded-email": "dev@example.com"})).status_code == 404


async def test_token_by_header_query_and_cookie(fake_slack, db):
    file_sample(db)
    async with dashboard_client(fake_slack, db, dashboard_token=DASHBOARD_TOKEN) as http:
        missing = await http.get("/dashboard")
        assert missing.status_code == 401 and missing.headers["content-type"].startswith("text/html")
        assert "Sign-in needed" in missing.text and missing.headers["www-authenticate"].startswith("Bearer")
        assert DASHBOARD_TOKEN not in missing.text
        for bad in ({"authorization": "Bearer wrong-token-wrong-token"}, {"authorization": DASHBOARD_TOKEN},
                    {"authorization": f"Basic {DASHBOARD_TOKEN}"}, {"cookie": f"{dashboard.COOKIE}={DASHBOARD_TOKEN}"}):
            assert (await http.get("/dashboard", headers=bad)).status_code == 401, bad
        assert (await http.get("/dashboard", params={"token": "wrong"})).status_code == 401

        ok = await http.get("/dashboard", headers={"authorization": f"Bearer {DASHBOARD_TOKEN}"})
        assert ok.status_code == 200 and str(escape(TOP_TEXT)) in ok.text
        assert "script-src" not in ok.headers["content-security-policy"]  # default-src 'none': no script runs
        assert ok.headers["content-security-policy"].startswith("default-src 'none'")

        # ?token= trades the token for a cookie and takes it out of the address.
        redirect = await http.get("/dashboard", params={"token": DASHBOARD_TOKEN, "days": "7"})
        assert redirect.status_code == 303 and redirect.headers["location"] == "/dashboard?days=7"
        cookie = redirect.headers["set-cookie"]
        assert cookie.startswith(f"{dashboard.COOKIE}=") and "HttpOnly" in cookie and "Path=/dashboard" in cookie
        assert DASHBOARD_TOKEN not in cookie
        value = cookie.split(";")[0].split("=", 1)[1]
        http.cookies.clear()  # send it by hand below
        follow = await http.get("/dashboard?days=7", headers={"cookie": f"{dashboard.COOKIE}={value}"})
        assert follow.status_code == 200 and "Last 7 days" in follow.text
        assert (await http.get("/dashboard", headers={"cookie": f"{dashboard.COOKIE}={value[:-1]}{'1' if value[-1] == '0' else '0'}"})).status_code == 401
        assert (await http.get("/dashboard")).status_code == 401
        assert (await http.get("/dashboard", params={"days": "0"}, headers={"authorization": f"Bearer {DASHBOARD_TOKEN}"})).status_code == 400


async def test_trusted_header_from_an_sso_proxy(fake_slack, db):
    async with dashboard_client(fake_slack, db, dashboard_trusted_header="X-Forwarded-Email") as http:
        assert (await http.get("/dashboard", headers={"x-forwarded-email": "dev@example.com"})).status_code == 200
        assert (await http.get("/dashboard")).status_code == 401
        assert (await http.get("/dashboard", headers={"x-forwarded-email": "  "})).status_code == 401
        # No token configured: a token is worth nothing.
        assert (await http.get("/dashboard", params={"token": DASHBOARD_TOKEN})).status_code == 401
    async with dashboard_client(fake_slack, db, dashboard_token=DASHBOARD_TOKEN, dashboard_trusted_header="X-Forwarded-Email") as http:
        assert (await http.get("/dashboard", headers={"x-forwarded-email": "dev@example.com"})).status_code == 200
        assert (await http.get("/dashboard", headers={"authorization": f"Bearer {DASHBOARD_TOKEN}"})).status_code == 200
        assert (await http.get("/dashboard", headers={"x-forwarded-user": "dev"})).status_code == 401


def test_dashboard_settings_are_checked():
    base = {"slack_bot_token": "xoxb-0000-test", "slack_signing_secret": SIGNING_SECRET}
    with pytest.raises(ConfigError, match="DASHBOARD_TOKEN is invalid"):
        load_settings(Settings, **base, dashboard_token="short")
    with pytest.raises(ConfigError, match="DASHBOARD_TRUSTED_HEADER is invalid"):
        load_settings(Settings, **base, dashboard_trusted_header="X-Email: yes")
    settings = load_settings(Settings, **base, dashboard_token=DASHBOARD_TOKEN)
    assert DASHBOARD_TOKEN in settings.secrets()  # kept out of the logs like every secret


# ------------------------------------------------------------------ content


async def test_user_text_is_escaped(fake_slack, db):
    async with dashboard_client(fake_slack, db, dashboard_trusted_header="X-Forwarded-Email") as http:
        # Filed for real, through the slash command; Slack escapes <, > and & in what it sends.
        settings = make_settings(fake_slack, db)
        app, deps = create_app(settings, Policy(), db, client=AsyncWebClient(token=TOKEN, base_url=settings.slack_api_url))
        web = create_web_app(app, deps, run_background=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://testserver") as slack:
            body, headers = slash_command("&lt;script&gt;alert('pwned')&lt;/script&gt; &lt;img src=x onerror=alert(1)&gt; deploys are slow",
                                          fake_url=fake_slack.url)
            assert (await slack.post("/slack/events", content=body, headers=headers)).status_code == 200
            # The bot files it right after the ack.
            stored = await until(lambda: db.transact(lambda session: session.exec(select(FrictionPoint.text)).first()),
                                 what="the report filed", interval=0.05)
        assert stored.startswith("<script>")  # kept as written
        page = (await http.get("/dashboard", headers={"x-forwarded-email": "dev@example.com"})).text
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt; &lt;img src=x onerror=alert(1)&gt; deploys are slow" in page
    assert "<script" not in page and "<img" not in page


async def test_page_shows_areas_points_loop_numbers_and_inline_svg_charts(fake_slack, db):
    ids = file_sample(db)
    async with dashboard_client(fake_slack, db, dashboard_token=DASHBOARD_TOKEN) as http:
        page = (await http.get("/dashboard", headers={"authorization": f"Bearer {DASHBOARD_TOKEN}"})).text
    points = page[page.index('id="points"'):page.index('id="areas"')]
    assert points.index(f"FB-{ids['top']}") < points.index(f"FB-{ids['ci']}")  # highest score first
    assert f"FB-{ids['docs']}" not in points  # resolved: not an open point
    areas = page[page.index('id="areas"'):]
    assert areas.index(">Deploys<") < areas.index(">CI<") < areas.index(">Docs<")
    for words in ("Closing the loop", "Reports per week", "Median first response", "Closed-loop rate", "Untagged"):
        assert words in page
    svgs = re.findall(r"<svg\b[^>]*>", page)
    assert len(svgs) == 3 and all('class="chart"' in s and "viewBox" in s for s in svgs)
    ids_in_page = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids_in_page) == len(set(ids_in_page))  # charts' ids are prefixed: no clashes
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
        'xmlns:xlink="http://www.w3.org/1999/xlink"', "")  # nothing fetched from anywhere


async def test_numbers_are_computed_in_a_worker_thread_and_reused(fake_slack, db, monkeypatch):
    seen = []
    real = dashboard.gather

    def spy(**kw):
        seen.append(threading.current_thread() is threading.main_thread())
        return real(**kw)

    monkeypatch.setattr(dashboard, "gather", spy)
    auth = {"authorization": f"Bearer {DASHBOARD_TOKEN}"}
    async with dashboard_client(fake_slack, db, dashboard_token=DASHBOARD_TOKEN) as http:
        pages = [await http.get("/dashboard", headers=auth) for _ in range(3)]
        assert [p.status_code for p in pages] == [200] * 3 and pages[0].text == pages[2].text
        assert seen == [False]  # once, off the event loop; reloads within a minute reuse it
        assert (await http.get("/dashboard?days=7", headers=auth)).status_code == 200
        assert seen == [False, False]  # another window is its own page
        monkeypatch.setattr(dashboard, "CACHE_SECONDS", 0)
        assert (await http.get("/dashboard", headers=auth)).status_code == 200
    assert seen == [False, False, False]


async def test_bad_window_and_unreachable_database_get_clear_answers(fake_slack, db, monkeypatch):
    auth = {"authorization": f"Bearer {DASHBOARD_TOKEN}"}

    def down(**_kw):
        raise DatabaseUnavailable("connection refused")

    async with dashboard_client(fake_slack, db, dashboard_token=DASHBOARD_TOKEN) as http:
        for days in ("0", "366", "x", "²", "-1", "7.5"):
            assert (await http.get("/dashboard", params={"days": days}, headers=auth)).status_code == 400, days
        monkeypatch.setattr(dashboard, "gather", down)
        page = await http.get("/dashboard", headers=auth)
    assert page.status_code == 503 and "Database unavailable" in page.text


# ------------------------------------------------------------------ the demo


def test_demo_sample_is_six_months_of_everything(db):
    from bot.runtime import demo

    summary = demo.generate(db, points=400, seed=3)
    assert summary.points == 400 and summary.merged and summary.links and summary.resolved and summary.notices
    assert summary.last - summary.first > timedelta(days=150)
    assert set(summary.by_area) == {c.id for c in Policy().taxonomy.categories}

    def counts(*, session):
        return (session.exec(select(func.count()).select_from(ClosureNotice)).one(),
                session.exec(select(func.count()).select_from(TrackerLink).where(TrackerLink.closed)).one())

    notices, closed_links = db.transact(counts)
    assert notices == summary.notices and closed_links > 0
    data = db.transact(dashboard.gather, days=30)
    page = dashboard.render(Policy(), data)
    assert data.scores.open_points and str(escape(data.scores.open_points[0].text)) in page
    if Path(REPO / "storage" / "surveys.py").exists():
        assert summary.survey_runs >= 3, summary.survey_note
        assert len(data.nps) >= 3 and "NPS, latest pulse survey" in page and 'aria-label="NPS per pulse-survey run' in page


def test_demo_command_fills_and_serves_the_dashboard_without_slack(tmp_path):
    port, log = free_port(), tmp_path / "demo.log"
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bot.runtime.cli", "demo", "--port", str(port), "--db", str(tmp_path / "demo.db")],
                                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        def url():
            assert proc.poll() is None, log.read_text(errors="replace")
            m = re.search(rf"http://127\.0\.0\.1:{port}/dashboard\?token=\S+", log.read_text(errors="replace"))
            if not m:
                return None
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
            except httpx.TransportError:
                return None
            return m.group(0)

        address = wait_until(url, timeout=START_SECONDS, what="the demo's dashboard URL", log=log)
        assert re.search(r"2000 data points", log.read_text())
        with httpx.Client(timeout=WAIT_SECONDS * 2, follow_redirects=True) as http:  # the first page computes 2,000 points' charts
            page = http.get(address)
            assert page.status_code == 200 and "Top open friction points" in page.text and page.url.query == b""
            assert http.get(f"http://127.0.0.1:{port}/dashboard?days=90").status_code == 200  # the cookie's session
        assert httpx.get(f"http://127.0.0.1:{port}/dashboard", timeout=WAIT_SECONDS).status_code == 401
    finally:
        stop_process(proc, signal.SIGINT)


# ------------------------------------------------------------------ the real page in headless Chromium


@contextmanager
def serving_dashboard(tmp_path: Path, database_url: str, policy_file: Path | None = None):
    """`python -m bot.runtime.cli serve` with the dashboard token set, against a fake Slack; yields its base URL."""
    port, log = free_port(), tmp_path / "serve.log"
    with FakeSlackServer() as fake:
        env = {
            "PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO),
            "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.url + "/api/",
            "DATABASE_URL": database_url, "PORT": str(port), "HOST": "127.0.0.1", "DASHBOARD_TOKEN": DASHBOARD_TOKEN,
        } | ({"CONFIG_FILE": str(policy_file)} if policy_file else {})
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "bot.runtime.cli", "serve"], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"

        def healthy():
            assert proc.poll() is None, f"serve exited with {proc.returncode}:\n{log.read_text(errors='replace')}"
            try:
                return httpx.get(base + "/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        try:
            wait_until(healthy, timeout=START_SECONDS, what="GET /healthz to answer 200", log=log)
            yield base
        finally:
            stop_process(proc)
        assert "Traceback" not in log.read_text(errors="replace"), log.read_text(errors="replace")


@pytest.fixture
def chromium():
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found: install Debian's chromium package (apt-get install chromium) to run the browser test"
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the browser test: {reason}")
        pytest.skip(reason)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("CI needs the browser test: playwright is not installed (pip install -e '.[test]')")
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    profile = Path(os.environ.get("TMPDIR", "/tmp")) / f"pf-chromium-{uuid.uuid4().hex}"
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, viewport={"width": 1280, "height": 900},
        )
        # Playwright's 30 s default: two busy loops beside the suite on 2 CPUs made the first page (its
        # charts drawn in the chart process) take longer. The deadline is for a loaded machine.
        context.set_default_timeout(WAIT_SECONDS * 1000)
        context.set_default_navigation_timeout(WAIT_SECONDS * 1000)
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


def test_dashboard_in_headless_chromium(tmp_path, db, chromium):
    from tests.targets.test_targets_compliance import TARGETS, fill_history, settle_all

    file_sample(db)
    fill_history(db)  # response targets met and missed over the last weeks
    policy_file = tmp_path / "policy.yml"
    policy_file.write_text(json.dumps({"targets": TARGETS}))
    settle_all(db, Policy(targets=TARGETS))
    with serving_dashboard(tmp_path, db.url, policy_file) as base:
        page = chromium.new_page()
        problems, requests = [], []
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
        page.on("response", lambda r: problems.append(f"{r.status} for {r.url}") if r.status >= 400 else None)
        page.on("request", lambda r: requests.append(r.url))

        response = page.goto(f"{base}/dashboard?token={DASHBOARD_TOKEN}", wait_until="load")
        assert response is not None and response.status == 200
        assert page.url == f"{base}/dashboard"  # the token left the address bar
        assert page.title().startswith("Platform friction")
        top = page.get_by_text(TOP_TEXT, exact=True)
        assert top.is_visible()
        assert page.locator("#targets").get_by_text("First response on target").is_visible()
        charts = page.locator("svg.chart")
        assert charts.count() == 4  # the response targets' weekly rates too
        for i in range(charts.count()):
            chart = charts.nth(i)
            chart.scroll_into_view_if_needed()
            box = chart.bounding_box()
            assert chart.is_visible() and box and box["width"] > 200 and box["height"] > 100, (i, box)
            assert chart.locator("path").count() > 10  # drawn, not an empty frame
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        assert (tmp_path / "dashboard.png").stat().st_size > 20_000

        # The page's own links work with the cookie the token was traded for.
        page.get_by_role("link", name="7 days").click()
        page.wait_for_load_state("load")
        assert page.url == f"{base}/dashboard?days=7" and page.locator("header .sub").inner_text().startswith("Last 7 days")
        assert page.get_by_text(TOP_TEXT, exact=True).is_visible()

        assert problems == []
        assert all(url.startswith(base + "/") for url in requests), requests  # nothing from the network
        assert page.evaluate("document.scripts.length") == 0


# ------------------------------------------------------------------ the numbers' meaning (#11, item 10)


def test_area_reporters_are_distinct_people_and_point_trends_say_new_only_for_new_points(db):
    from tests.insight.test_insight import NOW, add_point

    day = lambda n: NOW - timedelta(days=n)  # noqa: E731
    with db.session() as s, s.begin():
        # U2 hit two CI problems in the window: one CI reporter. CI has 2 people, not 3 (the old sum).
        fresh = add_point(s, created=day(3), reporters=[("U1", day(3)), ("U2", day(3))], tags=("ci",))
        shared = add_point(s, created=day(40), reporters=[("U1", day(40)), ("U2", day(5))], tags=("ci",))
        # First reported long before both windows, quiet in the previous one, hit again now: not "new".
        revived = add_point(s, created=day(200), reporters=[("U3", day(200)), ("U4", day(2))], tags=("docs",))
    data = db.transact(dashboard.gather, days=30, now=NOW)
    area = {c.category: c for c in data.scores.categories}
    assert (area["ci"].points, area["ci"].reporters) == (2, 2)
    page = dashboard.render(Policy(), data)
    rows = page[page.index('id="points"'):page.index('id="areas"')]

    def trend_of(point_id: int) -> str:
        return re.search(rf'>FB-{point_id}</td>.*?<td class="num">[^<]*</td>\s*<td class="num (\w+)">([^<]*)</td>', rows, re.S).group(2)

    assert trend_of(fresh.id) == "new"
    assert trend_of(shared.id) == "="  # 1 reporter x medium 2 in each window
    assert trend_of(revived.id) == "+2.0"  # was "new" before the fix: nothing in the previous window
    areas = page[page.index('id="areas"'):]
    ci_row = re.search(r">CI<.*?</tr>", areas, re.S).group(0)
    assert re.findall(r'<td class="num">([^<]*)</td>', ci_row)[-3:] == ["2", "2", "0.0"]  # reports, reporters, hours
