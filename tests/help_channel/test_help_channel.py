"""The help channel over signed requests against the fake Slack: questions become data points with
one thread reply, follow-ups join, a host's reply is the first response, resolving from the thread."""

import json
import uuid
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.help_channel.blocks import RESOLVE_ACTION
from bot.policy import HelpChannel, Hosts, Policy, Triage
from storage.models import FrictionChange, FrictionPoint
from tests.fake_slack import TEAM
from tests.slack_requests import block_actions, element_action, event_callback, interactive, reaction_added

HELP, OTHER, TRIAGE_CHANNEL = "C0HELP0001", "C0RANDOM01", "C0TRIAGE01"
HOST, ASKER, STRANGER = "U0HOST0001", "U0ASKER001", "U0STRANGE1"


@pytest.fixture
def policy() -> Policy:
    return Policy(
        help_channel=HelpChannel(channel=HELP, join_minutes=5),
        hosts=Hosts(users=[HOST]),
        triage=Triage(channel=TRIAGE_CHANNEL),
    )


def message(text: str, *, ts: str, user: str = ASKER, channel: str = HELP, thread_ts: str | None = None, **extra) -> dict:
    """A ``message`` event as the Events API sends it (message.channels)."""
    event = {
        "type": "message",
        "channel": channel,
        "user": user,
        "text": text,
        "ts": ts,
        "event_ts": ts,
        "channel_type": "channel",
        "team": TEAM,
        "client_msg_id": str(uuid.uuid4()),
        "blocks": [{"type": "rich_text", "block_id": "b1", "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}]}],
    }
    if thread_ts:
        event |= {"thread_ts": thread_ts, "parent_user_id": ASKER}
    return event | extra


async def send(bot, event: dict, **kw) -> None:
    resp = await bot.post(*event_callback(event, **kw))
    assert resp.status_code == 200
    await bot.drain()


def points(db) -> list[FrictionPoint]:
    with db.session() as s:
        return list(s.exec(select(FrictionPoint).order_by(FrictionPoint.id)).all())


def changes(db, point_id: int) -> list[str]:
    with db.session() as s:
        return list(s.exec(select(FrictionChange.action).where(FrictionChange.friction_point_id == point_id).order_by(FrictionChange.id)))


def thread_posts(bot, ts: str) -> list[dict]:
    return [c.body for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"] == HELP and c.body.get("thread_ts") == ts]


def dms(bot) -> list[dict]:
    return [c.body for c in bot.fake.calls_to("chat.postMessage") if c.body["channel"].startswith("U")]


def resolve_button(reply: dict) -> tuple[dict, str]:
    for block in reply["blocks"]:
        for el in block.get("elements", []):
            if el.get("action_id") == RESOLVE_ACTION:
                return el, block["block_id"]
    raise AssertionError("no Resolve button in the reply")


async def click_resolve(bot, reply: dict, user: str) -> str:
    el, block_id = resolve_button(reply)
    url = f"{bot.fake.url}/response_url/resolve-{user}"
    resp = await bot.post(*interactive(block_actions([element_action(el)], block_id=block_id, user=user, response_url=url,
                                                     channel=HELP, message_ts="1700000500.000001")))
    assert resp.status_code == 200
    await bot.drain()
    return url


async def test_question_becomes_a_data_point_with_one_thread_reply(bot):
    await send(bot, message("How do I get access to the staging &amp; prod VPN?", ts="1700000100.000100"))
    [point] = points(bot.db)
    assert point.source == "help_channel" and point.kind == "support"
    assert point.filed_by == ASKER and [r.user_id for r in point.reporters] == [ASKER]
    assert point.text == "How do I get access to the staging & prod VPN?"
    assert (point.channel_id, point.message_ts) == (HELP, "1700000100.000100")
    assert point.permalink.endswith("/archives/C0HELP0001/p1700000100000100")
    [reply] = thread_posts(bot, "1700000100.000100")
    assert f"FB-{point.id}" in reply["text"]
    resolve_button(reply)
    # Its triage card went to the triage channel; nothing else was posted (no DM to the asker).
    assert sorted(c.body["channel"] for c in bot.fake.calls_to("chat.postMessage")) == sorted([HELP, TRIAGE_CHANNEL])


async def test_retried_message_event_files_once_and_replies_once(bot):
    event = message("the deploy pipeline is stuck", ts="1700000100.000200")
    for retry in (None, 1, 2, 3):  # the first delivery and Slack's three retries, same event_id
        resp = await bot.post(*event_callback(event, event_id="Ev0HELPRETRY", retry_num=retry))
        assert resp.status_code == 200
    await bot.drain()
    assert len(points(bot.db)) == 1
    assert len(thread_posts(bot, "1700000100.000200")) == 1


async def test_follow_up_within_join_minutes_joins_the_question(bot):
    await send(bot, message("builds fail on main", ts="1700000100.000000"))
    await send(bot, message("with exit code 137", ts="1700000160.000000"))  # a minute later
    await send(bot, message("since this morning", ts="1700000400.000000"))  # within 5 min of the follow-up
    [point] = points(bot.db)
    assert point.text == "builds fail on main\nwith exit code 137\nsince this morning"
    assert changes(bot.db, point.id).count("joined") == 2
    assert len(thread_posts(bot, "1700000100.000000")) == 1
    assert thread_posts(bot, "1700000160.000000") == [] and thread_posts(bot, "1700000400.000000") == []


async def test_follow_up_after_join_minutes_is_a_new_question(bot):
    await send(bot, message("where are the runbooks?", ts="1700000100.000000"))
    await send(bot, message("another thing: logs are missing", ts="1700000401.000000"))  # 5 min 1 s later
    first, second = points(bot.db)
    assert first.text == "where are the runbooks?" and second.text == "another thing: logs are missing"
    assert len(thread_posts(bot, first.message_ts)) == 1 and len(thread_posts(bot, second.message_ts)) == 1


async def test_follow_up_joins_by_when_it_was_written_not_when_it_arrived(bot):
    """Moving the first point's created_at back (as if the follow-up were delivered late) changes
    nothing: the window is measured between the two messages' own timestamps."""
    await send(bot, message("sso login loops", ts="1700000100.000000"))
    with bot.db.session() as s, s.begin():
        point = s.exec(select(FrictionPoint)).one()
        point.created_at = point.created_at - timedelta(hours=1)
        s.add(point)
    await send(bot, message("in firefox only", ts="1700000130.000000"))
    [point] = points(bot.db)
    assert point.text == "sso login loops\nin firefox only"


async def test_others_and_closed_questions_are_not_joined(bot):
    await send(bot, message("terraform plan hangs", ts="1700000100.000000"))
    await send(bot, message("same for me!", ts="1700000110.000000", user=STRANGER))
    assert [p.filed_by for p in points(bot.db)] == [ASKER, STRANGER]
    [reply] = thread_posts(bot, "1700000100.000000")
    await click_resolve(bot, reply, ASKER)
    await send(bot, message("new: and now plan fails", ts="1700000120.000000"))
    assert [p.text for p in points(bot.db)][-1] == "new: and now plan fails"
    assert len(points(bot.db)) == 3


@pytest.mark.parametrize(
    "event",
    [
        # A bot's or workflow's top-level post is a question now (a Workflow Builder form, issue
        # #27 item 8): tests/test_world_forms.py; the bot's own posts are still not.
        {"type": "message", "subtype": "message_changed", "channel": HELP, "ts": "1700000200.000003", "hidden": True,
         "message": {"type": "message", "user": ASKER, "text": "edited", "ts": "1700000100.000000"},
         "previous_message": {"type": "message", "user": ASKER, "text": "orig", "ts": "1700000100.000000"}},
        {"type": "message", "subtype": "message_deleted", "channel": HELP, "ts": "1700000200.000004", "hidden": True,
         "deleted_ts": "1700000100.000000"},
        message("<@U0ASKER001> has joined the channel", ts="1700000200.000005", subtype="channel_join"),
        message("a question, elsewhere", ts="1700000200.000006", channel=OTHER),
    ],
    ids=["message_changed", "message_deleted", "channel_join", "other_channel"],
)
async def test_messages_that_are_not_questions_do_nothing(bot, event):
    await send(bot, event)
    assert points(bot.db) == []
    assert bot.fake.calls_to("chat.postMessage") == []


async def test_non_host_reply_in_the_thread_does_nothing(bot):
    await send(bot, message("is the registry down?", ts="1700000100.000000"))
    calls_before = len(bot.fake.calls)
    await send(bot, message("me too", ts="1700000150.000000", user=STRANGER, thread_ts="1700000100.000000"))
    await send(bot, message("any news?", ts="1700000160.000000", thread_ts="1700000100.000000"))
    [point] = points(bot.db)
    assert point.first_response_at is None and point.status == "new" and len(point.text.splitlines()) == 1
    assert changes(bot.db, point.id) == ["filed"]
    assert len(bot.fake.calls) == calls_before


async def test_host_reply_in_the_thread_is_the_first_response(bot):
    await send(bot, message("is the registry down?", ts="1700000100.000000"))
    reply = message("Yes, we're on it", ts="1700000200.000000", user=HOST, thread_ts="1700000100.000000")
    for retry in (None, 1):
        await send(bot, reply, event_id="Ev0HOSTREPLY", retry_num=retry)
    [point] = points(bot.db)
    assert point.first_response_at is not None
    assert point.status == "acknowledged"
    assert changes(bot.db, point.id) == ["filed", "responded"]
    # The card is updated in place; the asker sees the host's reply and gets no DM.
    [update] = bot.fake.calls_to("chat.update")
    assert update.body["channel"] == TRIAGE_CHANNEL and "Picked up" in json.dumps(update.body)
    assert len(bot.fake.calls_to("chat.postMessage")) == 2 and dms(bot) == []
    first = point.first_response_at
    await send(bot, message("Fixed now", ts="1700000300.000000", user=HOST, thread_ts="1700000100.000000"))
    [point] = points(bot.db)
    assert point.first_response_at == first


async def test_host_resolves_with_the_reaction_and_the_thread_hears_once(bot):
    await send(bot, message("can't push to artifactory", ts="1700000100.000000"))
    event = reaction_added(channel=HELP, ts="1700000100.000000", user=HOST, reaction="white_check_mark", item_user=ASKER)
    for retry in (None, 1, 2):
        await send(bot, event, event_id="Ev0RESOLVE01", retry_num=retry)
    [point] = points(bot.db)
    assert point.status == "resolved" and point.resolved_at is not None
    assert point.first_response_at is not None  # a host resolving is a response
    assert changes(bot.db, point.id) == ["filed", "resolved"]
    posts = thread_posts(bot, "1700000100.000000")
    assert len(posts) == 2  # the reference, then "resolved"
    assert "resolved by <@U0HOST0001>" in posts[1]["text"]
    assert dms(bot) == []  # the thread post replaces the DM to the asker
    # The card shows it, updated in place.
    assert "Resolved" in json.dumps(bot.fake.calls_to("chat.update")[-1].body)


async def test_other_reactions_and_strangers_reactions_resolve_nothing(bot):
    await send(bot, message("quota exceeded in sandbox", ts="1700000100.000000"))
    await send(bot, reaction_added(channel=HELP, ts="1700000100.000000", user=STRANGER, reaction="white_check_mark"))
    await send(bot, reaction_added(channel=HELP, ts="1700000100.000000", user=HOST, reaction="eyes"))
    await send(bot, reaction_added(channel=OTHER, ts="1700000100.000000", user=HOST, reaction="white_check_mark"))
    [point] = points(bot.db)
    assert point.status == "new"
    assert len(thread_posts(bot, "1700000100.000000")) == 1


async def test_asker_resolves_their_own_question_by_reaction(bot):
    await send(bot, message("never mind, found it?", ts="1700000100.000000"))
    await send(bot, reaction_added(channel=HELP, ts="1700000100.000000", user=ASKER, reaction="white_check_mark"))
    [point] = points(bot.db)
    assert point.status == "resolved"
    assert point.first_response_at is None  # no host answered
    assert len(thread_posts(bot, "1700000100.000000")) == 2 and dms(bot) == []


async def test_stranger_pressing_resolve_is_refused_and_nothing_changes(bot):
    await send(bot, message("how do I rotate my token?", ts="1700000100.000000"))
    [reply] = thread_posts(bot, "1700000100.000000")
    calls_before = len(bot.fake.calls_to("chat.postMessage"))
    await click_resolve(bot, reply, STRANGER)
    [refusal] = [c.body for c in bot.fake.calls_to("response_url")]
    assert refusal["response_type"] == "ephemeral" and refusal["replace_original"] is False
    assert "Nothing was changed" in refusal["text"]
    [point] = points(bot.db)
    assert point.status == "new" and point.first_response_at is None
    assert changes(bot.db, point.id) == ["filed"]
    assert len(bot.fake.calls_to("chat.postMessage")) == calls_before


async def test_asker_pressing_resolve_resolves_and_the_button_goes(bot):
    await send(bot, message("how do I rotate my token?", ts="1700000100.000000"))
    [reply] = thread_posts(bot, "1700000100.000000")
    await click_resolve(bot, reply, ASKER)
    [point] = points(bot.db)
    assert point.status == "resolved"
    [replaced] = bot.fake.calls_to("response_url")
    assert replaced.body["replace_original"] is True and RESOLVE_ACTION not in json.dumps(replaced.body)
    posts = thread_posts(bot, "1700000100.000000")
    assert len(posts) == 2 and "resolved by <@U0ASKER001>" in posts[1]["text"]
    # Pressing it again (a stale copy) says so, and posts nothing more.
    await click_resolve(bot, reply, HOST)
    assert "already resolved" in bot.fake.calls_to("response_url")[-1].body["text"]
    assert len(thread_posts(bot, "1700000100.000000")) == 2


async def test_ticket_reaction_on_a_question_files_nothing_new(bot):
    bot.fake.add_message(HELP, "1700000100.000000", "is staging down?", user=ASKER)
    await send(bot, message("is staging down?", ts="1700000100.000000"))
    await send(bot, reaction_added(channel=HELP, ts="1700000100.000000", user=STRANGER, reaction="ticket"))
    assert len(points(bot.db)) == 1
    assert len(thread_posts(bot, "1700000100.000000")) == 1


@pytest.mark.parametrize("policy", [Policy(hosts=Hosts(users=[HOST]), triage=Triage(channel=TRIAGE_CHANNEL))])
async def test_without_a_help_channel_nothing_happens(bot):
    await send(bot, message("hello", ts="1700000100.000000"))
    await send(bot, reaction_added(channel=HELP, ts="1700000100.000000", user=HOST, reaction="white_check_mark"))
    assert points(bot.db) == []
    assert bot.fake.calls_to("chat.postMessage") == []
