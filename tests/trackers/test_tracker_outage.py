"""A tracker closure arriving while PostgreSQL is unreachable (issue #26, item 2): through the real
route with the database cut by the TCP proxy, the verified delivery is kept in the local spool
and answered 202 (GitHub does not redeliver a failed delivery by itself), then recorded and
applied once the database answers: the reporter is told once, however often it was delivered."""

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.runtime.app import create_app
from storage.models import ClosureNotice
from tests import tracker_requests as tr
from tests.closing.test_closing import USER, file_and_link, notices_to, point
from tests.closing.test_closing import policy as closing_policy
from tests.conftest import make_settings, serving_bot
from tests.fake_slack import TOKEN
from tests.runtime.test_outage import pg_db, proxy  # noqa: F401 - fixtures

policy = closing_policy  # the fixture, under the name the bot fixture below asks for


@pytest.fixture
async def bot(fake_slack, pg_db, policy, tmp_path):  # noqa: F811 - this module's bot sits behind the proxy
    settings = make_settings(fake_slack, pg_db, event_spool_path=tmp_path / "events.spool", **tr.SETTINGS)
    app, deps = create_app(settings, policy, pg_db, client=AsyncWebClient(token=TOKEN, base_url=settings.slack_api_url))
    async with serving_bot(app, deps, fake_slack, pg_db) as b:
        yield b


async def test_a_closure_during_an_outage_is_kept_answered_202_and_applied_when_it_is_back(bot, proxy):  # noqa: F811
    point_id = await file_and_link(bot, "staging deploys hang for ten minutes")
    body, headers = tr.github("issues", tr.github_issue("acme/platform", 42))
    proxy.close()
    for _ in range(2):  # and GitHub's "Redeliver" of the same delivery: one row
        resp = await bot.http.post("/webhooks/github", content=body, headers=headers)
        assert resp.status_code == 202, resp.text
    assert bot.deps.events.spool.waiting() == 1
    assert (await bot.http.get("/healthz")).json()["spool"]["waiting"] == 1
    assert await bot.deps.events.replay_once() == 0  # still down: it waits

    proxy.open()
    assert await bot.deps.events.replay_once() == 1
    await bot.drain()
    assert bot.deps.events.spool.held() == 0
    [notice] = notices_to(bot, USER)
    assert "it's fixed" in notice["text"] and point(bot, point_id).status == "resolved"
    # Once more after the outage: recorded already, nothing new.
    assert (await bot.http.post("/webhooks/github", content=body, headers=headers)).status_code == 200
    await bot.drain()
    with bot.db.session() as s:
        assert len(s.query(ClosureNotice).all()) == 1
    assert len(notices_to(bot, USER)) == 1


async def test_an_edited_spooled_delivery_is_not_applied(bot, proxy):  # noqa: F811
    await file_and_link(bot, "staging deploys hang for ten minutes")
    body, headers = tr.github("issues", tr.github_issue("acme/platform", 42))
    proxy.close()
    assert (await bot.http.post("/webhooks/github", content=body, headers=headers)).status_code == 202
    with bot.deps.events.spool._lock:  # someone with the disk rewrites what was kept
        bot.deps.events.spool._conn.execute("UPDATE spooled_event SET body = CAST(REPLACE(CAST(body AS TEXT), '42', '43') AS BLOB)")
    proxy.open()
    await bot.deps.events.replay_once()
    await bot.drain()
    assert bot.deps.events.spool.held() == 0 and notices_to(bot, USER) == []
