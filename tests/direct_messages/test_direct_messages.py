"""A direct message to the bot (message.im, Slack's own payload in tests/fixtures/slack/events):
filed once like a one-line report, answered once in the DM; edits, bots and the bot itself ignored."""

import json
from pathlib import Path

import pytest
from sqlmodel import select

from bot.policy import Hosts, Policy, Triage
from storage.models import FrictionPoint
from tests.fake_slack import BOT_USER
from tests.slack_requests import event_callback

FIXTURE = Path(__file__).parents[1] / "fixtures" / "slack" / "events" / "message_im.json"


@pytest.fixture
def policy() -> Policy:
    return Policy(hosts=Hosts(users=["U0HOST0001"]), triage=Triage(channel="C0TRIAGE01"))


def dm(words: str, /, **changes) -> dict:
    event = json.loads(FIXTURE.read_text())["event"]
    return {**event, "text": words, **changes}


def points(db) -> list[FrictionPoint]:
    with db.session() as s:
        return list(s.exec(select(FrictionPoint)).all())


async def test_a_dm_is_filed_and_answered_once_in_the_dm(bot):
    event = dm("the staging VPN drops every hour &lt;3")
    for retry in (None, 1, 2):  # Slack's retries of the same event
        resp = await bot.post(*event_callback(event, event_id="Ev0DM000001", retry_num=retry))
        assert resp.status_code == 200
    await bot.drain()
    [point] = points(bot.db)
    assert (point.source, point.filed_by, point.text) == ("dm", "U043H11ES4V", "the staging VPN drops every hour <3")
    answers = [c for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"] == "D0442US94JD"]
    assert len(answers) == 1 and f"FB-{point.id}" in answers[0].body["text"]
    cards = [c for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"] == "C0TRIAGE01"]
    assert len(cards) == 1


@pytest.mark.parametrize("changes", [
    {"subtype": "message_changed", "message": {"text": "edited"}},  # an edit
    {"subtype": "message_deleted"},
    {"subtype": "bot_message", "bot_id": "B0OTHER001", "user": None},  # another bot
    {"bot_id": "B0OTHER001"},  # an app posting as a user
    {"user": BOT_USER},  # the bot's own answer, echoed back
    {"text": "   "},
], ids=["edit", "deletion", "bot-message", "bot-id", "own", "empty"])
async def test_edits_bots_and_the_bots_own_messages_are_ignored(bot, changes):
    resp = await bot.post(*event_callback(dm("something", **changes)))
    assert resp.status_code == 200
    await bot.drain()
    assert points(bot.db) == [] and bot.fake.calls_to("chat.postMessage") == []


async def test_a_channel_message_is_not_taken_for_a_dm(bot):
    await bot.post(*event_callback(dm("in a channel", channel="C0RANDOM01", channel_type="channel")))
    await bot.drain()
    assert points(bot.db) == []
