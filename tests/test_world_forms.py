"""Issue #27, item 8: a help channel fed by a Workflow Builder form ("Ask the platform team").
Slack posts each submission as the workflow: a ``bot_id`` and no ``user``, ``subtype: bot_message``
(legacy workflows; slackapi/bolt-python#817) or none with a ``bot_profile`` (newer ones), the
submitter only mentioned in the text or a rich_text ``user`` element. Each is a question: filed,
answered once in its thread, reported by the person it names (else by the workflow itself); never
the bot's own posts. Through the real app, SQLite and PostgreSQL."""

import pytest
from sqlmodel import select

from bot.help_channel.blocks import RESOLVE_ACTION
from bot.policy import HelpChannel, Hosts, Policy, Triage
from storage.models import FrictionPoint
from tests.fake_slack import BOT_USER, TEAM
from tests.slack_requests import APP_ID, block_actions, element_action, event_callback, interactive, slash_command

HELP, TRIAGE = "C0HELP0001", "C0TRIAGE01"
HOST, ASKER = "U0HOST0001", "U0ASKER001"
WORKFLOW_BOT = "B0WORKFLOW"


@pytest.fixture
def policy() -> Policy:
    return Policy(help_channel=HelpChannel(channel=HELP, join_minutes=5), hosts=Hosts(users=[HOST]), triage=Triage(channel=TRIAGE))


def legacy_form_post(ts: str, text: str) -> dict:
    """A legacy Workflow Builder "send a message" step, as message.channels delivers it."""
    return {"type": "message", "subtype": "bot_message", "text": text, "ts": ts, "username": "Ask the platform team",
            "bot_id": WORKFLOW_BOT, "channel": HELP, "event_ts": ts, "channel_type": "channel", "team": TEAM,
            "blocks": [{"type": "rich_text", "block_id": "wf", "elements": [{"type": "rich_text_section", "elements": [
                {"type": "text", "text": text}]}]}]}


def new_form_post(ts: str, *, submitter: str | None) -> dict:
    """A newer workflow's post: no subtype, the workflow's bot user and profile, the submitter as a
    rich_text ``user`` element (the form's "Person who submitted" variable)."""
    mention = [{"type": "user", "user_id": submitter}, {"type": "text", "text": " asks:\n"}] if submitter else []
    return {"type": "message", "text": "", "ts": ts, "user": "U0WFBOT001", "bot_id": WORKFLOW_BOT, "app_id": "A0WORKFLOW",
            "bot_profile": {"id": WORKFLOW_BOT, "app_id": "A0WORKFLOW", "name": "Ask the platform team", "deleted": False, "team_id": TEAM},
            "channel": HELP, "event_ts": ts, "channel_type": "channel", "team": TEAM,
            "blocks": [{"type": "rich_text", "block_id": "wf", "elements": [{"type": "rich_text_section", "elements": [
                *mention, {"type": "text", "text": "builds on the arm64 runners time out"}]}]}]}


async def send(bot, event: dict, **kw) -> None:
    resp = await bot.post(*event_callback(event, **kw))
    assert resp.status_code == 200
    await bot.drain()


def points(db) -> list[FrictionPoint]:
    with db.session() as s:
        return list(s.exec(select(FrictionPoint).order_by(FrictionPoint.id)).all())


def thread_replies(bot, ts: str) -> list[dict]:
    return [c.body for c in bot.fake.calls_to("chat.postMessage") if c.body.get("channel") == HELP and c.body.get("thread_ts") == ts]


async def test_a_legacy_form_post_is_filed_for_the_person_it_names(bot):
    post = legacy_form_post("1700000100.000100", "*Submitted by* <@U0ASKER001>\n*What's wrong?*\nThe staging VPN drops hourly")
    for retry in (None, 1):
        await send(bot, post, event_id="Ev0FORM0001", retry_num=retry)
    [point] = points(bot.db)
    assert point.source == "help_channel" and point.kind == "support"
    assert [r.user_id for r in point.reporters] == [ASKER] and point.filed_by == WORKFLOW_BOT
    assert "staging VPN drops hourly" in point.text and "@U0ASKER001" in point.text
    [reply] = thread_replies(bot, post["ts"])
    assert f"FB-{point.id}" in reply["text"]
    # The person who asked may resolve it from the thread, as for a question they typed.
    button = next(e for b in reply["blocks"] if b["type"] == "actions" for e in b["elements"] if e["action_id"] == RESOLVE_ACTION)
    await bot.post(*interactive(block_actions([element_action(button)], block_id="help", user=ASKER,
                                              response_url=f"{bot.fake.url}/response_url/r", channel=HELP)))
    await bot.drain()
    assert points(bot.db)[0].status == "resolved"


async def test_a_newer_workflow_post_names_the_submitter_in_its_blocks(bot):
    await send(bot, new_form_post("1700000200.000100", submitter=ASKER))
    [point] = points(bot.db)
    assert [r.user_id for r in point.reporters] == [ASKER] and "arm64 runners" in point.text


async def test_a_form_post_naming_nobody_is_reported_by_the_workflow(bot):
    await send(bot, new_form_post("1700000300.000100", submitter=None))
    [point] = points(bot.db)
    assert [r.user_id for r in point.reporters] == [WORKFLOW_BOT] == [point.filed_by]
    assert len(thread_replies(bot, "1700000300.000100")) == 1
    # Resolved by a host: the answer is in the thread; no DM is tried to the workflow's bot id.
    await bot.post(*slash_command(f"resolve FB-{point.id} rotated the runners", fake_url=bot.fake.url, user=HOST))
    await bot.drain()
    assert points(bot.db)[0].status == "resolved"
    assert not [c for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"].startswith("B")]


async def test_two_submissions_by_one_person_are_two_questions(bot):
    await send(bot, legacy_form_post("1700000400.000100", "From <@U0ASKER001>: the registry is slow"))
    await send(bot, legacy_form_post("1700000460.000100", "From <@U0ASKER001>: and helm lint fails"))
    assert len(points(bot.db)) == 2  # a follow-up joins; a second form is a second question


@pytest.mark.parametrize("changes", [
    {"bot_id": "B0BOT0001"},  # the bot's own bot id
    {"user": BOT_USER, "subtype": None},  # posted as the bot's user
    {"app_id": APP_ID, "bot_id": "B0OURS0002"},  # this app, another of its bot ids
    {"thread_ts": "1700000000.000001"},  # a bot's reply in a thread is no question
    {"subtype": "bot_add"},
], ids=["own-bot-id", "own-user", "own-app", "thread-reply", "not-a-post"])
async def test_the_bots_own_posts_and_other_shapes_are_not_filed(bot, changes):
    await send(bot, legacy_form_post("1700000500.000100", "From <@U0ASKER001>: something") | changes)
    assert points(bot.db) == []


async def test_a_form_post_elsewhere_is_not_a_question(bot):
    await send(bot, legacy_form_post("1700000600.000100", "From <@U0ASKER001>: something") | {"channel": "C0RANDOM01"})
    assert points(bot.db) == []
