"""`closing.announce: weekly`: one "you said, we did" post a week through the real app (report
filed, linked, closed by a GitHub webhook), once across instances; `/platform-feedback changelog`."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from bot.changelog.service import JOB, latest_slot
from bot.policy import Closing, Hosts, Insight, Policy, Triage
from bot.runtime.app import create_app
from storage.models import FrictionPoint
from tests import tracker_requests as tr
from tests.conftest import make_settings
from tests.slack_requests import USER, slash_command

HOST, OTHER = "U0HOST0001", "U0OTHER001"
ANNOUNCE = "C0ANNOUNCE"


@pytest.fixture
def policy() -> Policy:
    return Policy(hosts=Hosts(users=[HOST]), triage=Triage(channel="C0TRIAGE01"),
                  closing=Closing(announce_channel=ANNOUNCE, announce="weekly"),
                  insight=Insight(digest_weekday="fri", digest_time="16:00", timezone="Europe/Berlin"))


@pytest.fixture
def settings_overrides() -> dict:
    return tr.SETTINGS


async def run(bot, text: str, user: str):
    resp = await bot.post(*slash_command(text, fake_url=bot.fake.url, user=user))
    await bot.drain()
    return resp


async def fixed_issue_with_two_reporters(bot) -> int:
    await run(bot, "staging deploys hang for ten minutes", USER)
    with bot.db.session() as s:
        point_id = s.exec(select(FrictionPoint.id)).one()
    await run(bot, "staging deploys hang again today", OTHER)
    await run(bot, f"link FB-{point_id} https://github.com/acme/platform/issues/42", HOST)
    await run(bot, f"link FB-{point_id + 1} https://github.com/acme/platform/issues/42", HOST)
    body, headers = tr.github("issues", tr.github_issue("acme/platform", 42))
    resp = await bot.http.post("/webhooks/github", content=body, headers=headers)
    assert resp.status_code == 200
    await bot.drain()
    return point_id


def posts_to(bot, channel: str) -> list[dict]:
    return [c.body for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"] == channel]


async def test_weekly_post_lists_the_weeks_fixes_once_across_instances(bot, fake_slack, db, policy):
    await fixed_issue_with_two_reporters(bot)
    assert posts_to(bot, ANNOUNCE) == []  # weekly: no post per closure
    assert JOB in bot.deps.scheduler.jobs
    occurrence = latest_slot(datetime.now(UTC) + timedelta(days=7), "fri", "16:00", "Europe/Berlin")
    # A second instance on the same database: the claim lets one of them post.
    _app, other = create_app(make_settings(fake_slack, db, **tr.SETTINGS), policy, db, client=bot.deps.workspaces.single)
    ran = [await bot.deps.scheduler.run(JOB, occurrence), await other.scheduler.run(JOB, occurrence)]
    await bot.drain()
    assert sorted(ran) == [False, True]
    [post] = posts_to(bot, ANNOUNCE)
    shown = json.dumps(post["blocks"])
    assert "You said, we did" in post["text"] and "1 fix to what you reported" in post["text"]
    assert "acme/platform#42" in shown and "2 people" in shown and "FB-1, FB-2" in shown
    # The week after: nothing fixed, nothing posted.
    assert await bot.deps.scheduler.run(JOB, occurrence + timedelta(days=7))
    await bot.drain()
    assert len(posts_to(bot, ANNOUNCE)) == 1


async def test_changelog_on_demand_and_bad_weeks(bot):
    await fixed_issue_with_two_reporters(bot)
    await run(bot, "changelog 2", USER)
    [answer] = [c.body for c in bot.fake.calls_to("response_url") if "You said, we did" in c.body.get("text", "")]
    assert "acme/platform#42" in json.dumps(answer["blocks"]) and answer["response_type"] == "ephemeral"
    await run(bot, "changelog 99", USER)
    assert any("Usage: `/platform-feedback changelog" in c.body.get("text", "") for c in bot.fake.calls_to("response_url"))


def test_latest_slot_is_the_last_friday_1600_in_berlin():
    friday = latest_slot(datetime(2026, 11, 30, 12, tzinfo=UTC), "fri", "16:00", "Europe/Berlin")
    assert friday == datetime(2026, 11, 27, 15, tzinfo=UTC)
    assert latest_slot(datetime(2026, 11, 27, 14, 59, 30, tzinfo=UTC), "fri", "16:00", "Europe/Berlin") == friday  # a firing just early


async def test_focus_items_are_marked(bot):
    """Issue #18: the changelog marks the fixes that were in the quarter's focus."""
    from storage.focus import FocusItem, ensure_period

    point_id = await fixed_issue_with_two_reporters(bot)
    now = datetime.now(UTC)
    with bot.db.session() as s, s.begin():
        period = ensure_period(session=s, key="test-Q", starts_at=now - timedelta(days=30), ends_at=now + timedelta(days=30))
        s.add(FocusItem(period_id=period.id, subject=f"report:{point_id}", picked_by=HOST, baseline="{}"))
    await run(bot, "changelog", USER)
    [answer] = [c.body for c in bot.fake.calls_to("response_url") if "You said, we did" in c.body.get("text", "")]
    assert "this quarter's focus" in json.dumps(answer["blocks"])
