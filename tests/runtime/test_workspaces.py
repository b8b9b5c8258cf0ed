"""Several workspaces and Enterprise Grid: installing through Slack's OAuth flow into slack-sdk's
SQLAlchemy installation store (on SQLite and PostgreSQL), and each message sent with the token of
the workspace it is meant for."""

import contextlib
import os
import re
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select, text

from bot.policy import Hosts, Policy, Triage
from bot.runtime.app import create_app, create_web_app
from bot.runtime.settings import ConfigError, Settings, load_settings
from bot.runtime.workspaces import BOT_SCOPES, NotInstalled
from storage.database import Database
from storage.models import FrictionPoint, OutboxMessage, OutboxStatus, Workspace
from tests.conftest import Bot
from tests.slack_requests import (
    SIGNING_SECRET,
    block_actions,
    element_action,
    event_callback,
    interactive,
    slash_command,
)

HOME, OTHER, UNKNOWN = "T0HOME0001", "T0OTHER001", "T0NOTINST1"
GRID, GRID_WS1, GRID_WS2 = "E0GRID0001", "T0GRIDWS01", "T0GRIDWS02"
HOST, DEV = "U0HOST0001", "W0DEVELOP1"
TRIAGE_CHANNEL = "C0TRIAGE01"
REDIRECT = "https://feedback.example.com/slack/oauth_redirect"


@pytest.fixture
def policy() -> Policy:
    return Policy(workspace=HOME, hosts=Hosts(users=[HOST]), triage=Triage(channel=TRIAGE_CHANNEL))


ALLOWED = f"{HOME},{OTHER},{GRID}"  # the multi-workspace tests name every workspace they install


def oauth_settings(fake_slack, db, *, allowed: str | None = ALLOWED) -> Settings:
    return Settings(
        allowed_workspaces=allowed,
        slack_client_id=fake_slack.client_id,
        slack_client_secret=fake_slack.client_secret,
        slack_redirect_uri=REDIRECT,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=fake_slack.url + "/api/",
        database_url=db.url,
        # Each instance its own spool, in a temporary directory (the default is the working directory's).
        event_spool_path=os.path.join(tempfile.mkdtemp(prefix="pf-spool-"), "events.spool"),
    )


@contextlib.asynccontextmanager
async def oauth_instance(fake_slack, db, policy, *, allowed: str | None = ALLOWED):
    """One instance of the bot, installing through OAuth, on ``db``."""
    app, deps = create_app(oauth_settings(fake_slack, db, allowed=allowed), policy, db)
    web = create_web_app(app, deps, run_background=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://testserver") as http:
        bot = Bot(deps=deps, http=http, fake=fake_slack, db=db)
        yield bot
        await bot.settle()
    await db.dispose_async()


@pytest.fixture
async def oauth_bot(fake_slack, db, policy):
    async with oauth_instance(fake_slack, db, policy) as bot:
        yield bot


async def install(bot: Bot, *, team: str | None, enterprise: str | None = None, org_install: bool = False, status: int = 200) -> str:
    """Install the app as a Slack admin would: open /slack/install, approve in Slack (which sends the
    browser back to the redirect URL with a code), and return the bot token the install granted."""
    page = await bot.http.get("/slack/install")
    assert page.status_code == 200
    cookie = page.headers["set-cookie"].split(";")[0]  # slack-app-oauth-state=...
    link = re.search(r'href="(https://slack\.com/oauth/v2/authorize\?[^"]+)"', page.text).group(1)
    query = parse_qs(urlparse(link.replace("&amp;", "&")).query)
    assert query["scope"] == [",".join(BOT_SCOPES)] and query["redirect_uri"] == [REDIRECT]
    assert cookie == f"slack-app-oauth-state={query['state'][0]}"
    code = f"code-{team or enterprise}"
    token = bot.fake.grant(code, team=team, enterprise=enterprise, org_install=org_install)
    done = await bot.http.get("/slack/oauth_redirect", params={"code": code, "state": query["state"][0]},
                              headers={"cookie": cookie})
    assert done.status_code == status, done.text
    return token if status == 200 else done.text


def bearer(call) -> str:
    return call.headers.get("authorization", "").removeprefix("Bearer ")


def card_posts(bot: Bot) -> list:
    return [c for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"] == TRIAGE_CHANNEL]


def dms_to(bot: Bot, user: str) -> list:
    return [c for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"] == user]


async def click_assign_me(bot: Bot, *, team: str, enterprise: str | None = None, org_install: bool = False):
    card = card_posts(bot)[-1].body
    block, el = next((b, el) for b in card["blocks"] for el in b.get("elements", []) if el.get("action_id") == "triage_assign_me")
    payload = block_actions([element_action(el)], block_id=block["block_id"], user=HOST, channel=TRIAGE_CHANNEL,
                            response_url=f"{bot.fake.url}/response_url/assign", team=team, enterprise=enterprise,
                            org_install=org_install)
    resp = await bot.post(*interactive(payload))
    assert resp.status_code == 200
    await bot.drain()


async def test_each_workspace_installs_and_each_message_goes_with_its_workspaces_token(oauth_bot):
    home_token = await install(oauth_bot, team=HOME)
    other_token = await install(oauth_bot, team=OTHER)
    assert home_token != other_token

    # A developer in the other workspace files a report; it lands in the platform team's triage channel.
    resp = await oauth_bot.post(*slash_command("the staging database is down again", fake_url=oauth_bot.fake.url,
                                               user=DEV, team=OTHER))
    assert resp.status_code == 200
    await oauth_bot.drain()
    [card] = card_posts(oauth_bot)
    assert bearer(card) == home_token
    with oauth_bot.db.session() as s:
        point = s.exec(select(FrictionPoint)).one()
        assert point.reporter_workspace(DEV) == Workspace(team_id=OTHER)

    # A host picks it up in the home workspace; the reporter hears it through their own workspace.
    await click_assign_me(oauth_bot, team=HOME)
    [dm] = dms_to(oauth_bot, DEV)
    assert "picked up" in dm.body["text"] and bearer(dm) == other_token
    assert all(bearer(c) == home_token for c in oauth_bot.fake.calls_to("chat.update"))
    with oauth_bot.db.session() as s:
        assert s.exec(select(OutboxMessage.team_id).where(OutboxMessage.status == OutboxStatus.sent)).all().count(OTHER) == 1


async def test_an_installation_made_through_one_instance_serves_the_others(oauth_bot, fake_slack, db, policy):
    other_token = await install(oauth_bot, team=OTHER)
    await install(oauth_bot, team=HOME)
    second_db = Database(db.url)  # another process's own engine on the same database
    try:
        async with oauth_instance(fake_slack, second_db, policy) as second:
            resp = await second.post(*slash_command("the VPN drops every hour", fake_url=fake_slack.url, user=DEV, team=OTHER))
            assert resp.status_code == 200
            await second.drain()
            await click_assign_me(second, team=HOME)
            [dm] = dms_to(second, DEV)
            assert bearer(dm) == other_token
    finally:
        second_db.dispose()


async def test_an_enterprise_grid_org_wide_install_speaks_for_every_workspace_of_the_org(oauth_bot, db, fake_slack):
    oauth_bot.deps.workspaces.home = GRID  # the policy names the org
    org_token = await install(oauth_bot, team=None, enterprise=GRID, org_install=True)

    resp = await oauth_bot.post(*slash_command("vault login loops forever", fake_url=fake_slack.url, user=DEV,
                                               team=GRID_WS1, enterprise=GRID, org_install=True))
    assert resp.status_code == 200
    await oauth_bot.drain()
    [card] = card_posts(oauth_bot)
    assert bearer(card) == org_token
    with db.session() as s:
        assert s.exec(select(FrictionPoint)).one().reporter_workspace(DEV) == Workspace(team_id=GRID_WS1, enterprise_id=GRID)

    # The host works in another workspace of the same org.
    await click_assign_me(oauth_bot, team=GRID_WS2, enterprise=GRID, org_install=True)
    [dm] = dms_to(oauth_bot, DEV)
    assert bearer(dm) == org_token


async def test_a_workspace_without_an_installation_is_turned_away_and_nothing_is_filed(oauth_bot, fake_slack, db):
    await install(oauth_bot, team=HOME)
    resp = await oauth_bot.post(*slash_command("who are you", fake_url=fake_slack.url, user=DEV, team=UNKNOWN))
    assert resp.status_code == 200
    await oauth_bot.drain()
    with db.session() as s:
        assert s.exec(select(FrictionPoint)).all() == []
    [answer] = fake_slack.calls_to("response_url")  # shown to the person who asked
    assert "not installed in this workspace" in answer.body["text"]
    assert [c.method for c in fake_slack.calls] == ["oauth.v2.access", "auth.test", "response_url"]


async def test_uninstalling_removes_the_installation_and_its_messages_fail_without_a_call(oauth_bot, fake_slack, db):
    await install(oauth_bot, team=HOME)
    other_token = await install(oauth_bot, team=OTHER)
    await oauth_bot.post(*slash_command("the build cache is cold", fake_url=fake_slack.url, user=DEV, team=OTHER))
    await oauth_bot.drain()
    await oauth_bot.deps.workspaces.token(Workspace(team_id=OTHER))  # cached, as a busy bot would have it

    resp = await oauth_bot.post(*event_callback({"type": "app_uninstalled", "event_ts": "1700000000.000200"}, team=OTHER))
    assert resp.status_code == 200
    await oauth_bot.settle()
    store = oauth_bot.deps.workspaces.store
    assert await store.async_find_bot(enterprise_id=None, team_id=OTHER) is None
    assert await store.async_find_bot(enterprise_id=None, team_id=HOME) is not None

    await click_assign_me(oauth_bot, team=HOME)  # would DM the reporter in the workspace that left
    assert dms_to(oauth_bot, DEV) == []
    assert not any(bearer(c) == other_token for c in fake_slack.calls_to("chat.postMessage"))
    with db.session() as s:
        [failed] = s.exec(select(OutboxMessage).where(OutboxMessage.team_id == OTHER)).all()
        assert (failed.status, failed.last_error) == (OutboxStatus.failed, "not_installed")


async def test_an_uninstall_spooled_during_an_outage_is_applied_by_the_replay(oauth_bot, fake_slack):
    """The replay runs a twin of the app: Bolt's uninstall listeners must be on it too, or an
    app_uninstalled kept during a database outage would leave the installation and its token."""
    await install(oauth_bot, team=HOME)
    await install(oauth_bot, team=OTHER)
    await oauth_bot.deps.workspaces.token(Workspace(team_id=OTHER))  # cached
    body, headers = event_callback({"type": "app_uninstalled", "event_ts": "1700000000.000300"}, team=OTHER)
    gate = oauth_bot.deps.events
    await gate._keep("Ev0UNINSTALL1", body.encode(), headers, signed=True, live=False)  # as the gate keeps it in an outage
    assert await gate.replay_once() == 1
    store = oauth_bot.deps.workspaces.store
    assert await store.async_find_bot(enterprise_id=None, team_id=OTHER) is None
    assert await store.async_find_bot(enterprise_id=None, team_id=HOME) is not None
    with pytest.raises(NotInstalled):
        await oauth_bot.deps.workspaces.token(Workspace(team_id=OTHER))


async def test_the_oauth_callback_refuses_a_forged_or_replayed_state(oauth_bot, fake_slack):
    page = await oauth_bot.http.get("/slack/install")
    cookie = page.headers["set-cookie"].split(";")[0]
    state = cookie.split("=", 1)[1]
    fake_slack.grant("code-1", team=OTHER)
    forged = await oauth_bot.http.get("/slack/oauth_redirect", params={"code": "code-1", "state": "forged"},
                                      headers={"cookie": "slack-app-oauth-state=forged"})
    no_cookie = await oauth_bot.http.get("/slack/oauth_redirect", params={"code": "code-1", "state": state})
    assert (forged.status_code, no_cookie.status_code) == (401, 400)  # Bolt's invalid_state, invalid_browser
    assert fake_slack.calls_to("oauth.v2.access") == []  # refused before the code was spent
    ok = await oauth_bot.http.get("/slack/oauth_redirect", params={"code": "code-1", "state": state}, headers={"cookie": cookie})
    assert ok.status_code == 200
    fake_slack.grant("code-2", team=OTHER)
    replayed = await oauth_bot.http.get("/slack/oauth_redirect", params={"code": "code-2", "state": state}, headers={"cookie": cookie})
    assert replayed.status_code == 401  # a state is good once
    assert len(fake_slack.calls_to("oauth.v2.access")) == 1


async def test_the_policys_workspace_is_the_only_installation_unless_named(oauth_bot):
    workspaces = oauth_bot.deps.workspaces
    workspaces.home = None
    with pytest.raises(NotInstalled, match="install the app"):
        await workspaces.token(None)
    home_token = await install(oauth_bot, team=HOME)
    assert await workspaces.token(None) == home_token  # the only one
    await install(oauth_bot, team=OTHER)
    workspaces.forget()
    with pytest.raises(NotInstalled, match="set workspace in the team policy"):
        await workspaces.token(None)
    workspaces.home = HOME
    assert await workspaces.token(None) == home_token


async def test_one_workspace_has_no_install_routes(bot):
    assert (await bot.http.get("/slack/install")).status_code == 404
    assert (await bot.http.get("/slack/oauth_redirect", params={"code": "x", "state": "y"})).status_code == 404


@pytest.mark.parametrize("env,named", [
    ({"SLACK_CLIENT_ID": "1.2"}, "SLACK_CLIENT_SECRET"),
    ({"SLACK_BOT_TOKEN": "xoxb-1234567890", "SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "s"}, "not both"),
    ({}, "SLACK_BOT_TOKEN"),
    ({"SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "s", "SLACK_APP_TOKEN": "xapp-1"}, "SLACK_APP_TOKEN"),
    ({"SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "s", "SLACK_REDIRECT_URI": "https://x.example/"}, "SLACK_REDIRECT_URI"),
])
def test_oauth_settings_are_checked_with_a_line_naming_the_setting(monkeypatch, env, named):
    for name in ("SLACK_BOT_TOKEN", "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET", "SLACK_APP_TOKEN", "SLACK_REDIRECT_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=named):
        load_settings(_env_file=None)


def test_the_oauth_flow_asks_for_the_manifests_scopes():
    manifest = yaml.safe_load((Path(__file__).parents[2] / "manifest.yml").read_text())
    assert manifest["oauth_config"]["scopes"]["bot"] == BOT_SCOPES
    assert {"app_uninstalled", "tokens_revoked"} <= set(manifest["settings"]["event_subscriptions"]["bot_events"])


@pytest.fixture
def oauth_http(fake_slack, db, policy):
    from starlette.testclient import TestClient

    app, deps = create_app(oauth_settings(fake_slack, db), policy, db)
    with TestClient(create_web_app(app, deps, run_background=False), raise_server_exceptions=False) as http:
        yield http


def installations(db) -> int:
    with db.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM slack_installations")).scalar_one()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/slack/install", "/slack/oauth_redirect"]),
       params=st.dictionaries(st.sampled_from(["code", "state", "error", "team"]), st.text(max_size=60), max_size=4),
       cookie=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255, exclude_characters=";"), max_size=80),
       junk=st.dictionaries(st.sampled_from(["x-forwarded-proto", "accept-language", "referer", "user-agent"]),
                            st.binary(max_size=60).map(lambda b: bytes(c for c in b if c not in b"\r\n\x00")), max_size=3),
       body=st.sampled_from([b"", b"x" * 1_000_001, b'{"a": [' * 900]))
def test_the_install_routes_never_500_and_install_nothing_for_junk(oauth_http, db, path, params, cookie, junk, body):
    headers = {"cookie": b"slack-app-oauth-state=" + cookie.encode("latin-1"), **junk}
    resp = oauth_http.request("GET", path, params=params, headers=headers, content=body)
    assert resp.status_code < 500, resp.text[:200]
    assert installations(db) == 0


# ------------------------------------------------------------------ only our workspace (issue #14)


def oauth_rows(db) -> tuple[int, int]:
    with db.engine.connect() as conn:
        return tuple(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in ("slack_installations", "slack_bots"))


@pytest.mark.parametrize("allowed", [None, HOME])  # default: the policy's workspace; or named
async def test_an_outsider_cannot_install_and_is_not_served(fake_slack, db, policy, allowed):
    async with oauth_instance(fake_slack, db, policy, allowed=allowed) as bot:
        await install(bot, team=HOME)
        before = oauth_rows(db)
        page = await install(bot, team=OTHER, status=403)
        assert "serves only its own workspace" in page and "T0OTHER001" in page and "Nothing was saved" in page
        page = await install(bot, team=None, enterprise=GRID, org_install=True, status=403)
        assert oauth_rows(db) == before
        # Even with an installation made before the setting (or by hand), its requests are refused
        # before any listener runs: nothing is filed, nothing is sent.
        late = fake_slack.grant("code-late", team=OTHER)
        store = bot.deps.workspaces.store
        from slack_sdk.oauth.installation_store.models.installation import Installation
        await store.async_save(Installation(app_id="A1", team_id=OTHER, user_id=DEV, bot_token=late, bot_id="B1",
                                            bot_user_id="U0BOTOTHER", bot_scopes=BOT_SCOPES))
        calls = len(fake_slack.calls)
        resp = await bot.post(*slash_command("outsider report", fake_url=fake_slack.url, user=DEV, team=OTHER))
        assert resp.status_code == 200 and "serves only its own" in resp.text
        await bot.drain()
        with db.session() as s:
            assert s.exec(select(FrictionPoint)).all() == [] and s.exec(select(OutboxMessage)).all() == []
        assert [c.method for c in fake_slack.calls[calls:]] in ([], ["auth.test"])


async def test_without_a_named_workspace_only_the_first_installation_is_allowed(fake_slack, db):
    async with oauth_instance(fake_slack, db, Policy(hosts=Hosts(users=[HOST])), allowed=None) as bot:
        await install(bot, team=OTHER)
        await install(bot, team=HOME, status=403)
        await install(bot, team=OTHER)  # re-installing the same workspace (new scopes, new token) works


async def test_install_links_do_not_pile_up(oauth_bot, db, monkeypatch):
    import bot.runtime.workspaces as ws

    monkeypatch.setattr(ws, "MAX_LIVE_STATES", 50)
    for _ in range(120):
        assert (await oauth_bot.http.get("/slack/install")).status_code == 200

    def states() -> int:
        with db.engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM slack_oauth_states")).scalar_one()

    assert states() <= 50
    with db.engine.begin() as conn:  # every link expired
        conn.execute(text("UPDATE slack_oauth_states SET expire_at = '2000-01-01 00:00:00'"))
    await oauth_bot.http.get("/slack/install")
    assert states() == 1
