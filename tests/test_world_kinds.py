"""Issue #27, the hunt: kinds of input that broke comparable Slack bots in public issue threads
(tests/world/README.md lists each report and the test covering it), tried here through the real
app with signed requests, on SQLite and PostgreSQL."""

import json
import uuid
from pathlib import Path

import pytest
from sqlmodel import select

from bot.policy import HelpChannel, Hosts, Policy, Triage
from storage.models import FrictionPoint
from tests.fake_slack import BOT_USER, TEAM
from tests.slack_requests import event_callback, form, reaction_added, slash_command

FIXTURE = Path(__file__).parent / "fixtures" / "slack" / "events" / "message_im.json"
HELP, DM, DEV, ASKER, HOST = "C0HELP0001", "D0442US94JD", "U043H11ES4V", "U0ASKER001", "U0HOST0001"


@pytest.fixture
def policy() -> Policy:
    return Policy(help_channel=HelpChannel(channel=HELP, join_minutes=5), hosts=Hosts(users=[HOST]), triage=Triage(channel="C0TRIAGE01"))


def dm(words: str, ts: str = "1700000100.000100", **changes) -> dict:
    event = json.loads(FIXTURE.read_text())["event"]
    return {**event, "text": words, "ts": ts, "event_ts": ts, "blocks": [], **changes}


def question(text: str, ts: str, *, user: str = ASKER, **extra) -> dict:
    return {"type": "message", "channel": HELP, "user": user, "text": text, "ts": ts, "event_ts": ts, "channel_type": "channel",
            "team": TEAM, "client_msg_id": str(uuid.uuid4())} | extra


async def send(bot, event: dict, **kw) -> int:
    resp = await bot.post(*event_callback(event, **kw))
    await bot.drain()
    return resp.status_code


def points(db) -> list[FrictionPoint]:
    with db.session() as s:
        return list(s.exec(select(FrictionPoint).order_by(FrictionPoint.id)).all())


def posts_to(bot, channel: str) -> list[dict]:
    return [c.body for c in bot.fake.calls_to("chat.postMessage") if c.body.get("channel") == channel]


# agno-agi/agno#10073, vercel/chat#667: a retry whose first delivery never arrived is the only copy.
async def test_a_retry_seen_first_is_handled_not_dropped(bot):
    assert await send(bot, dm("the staging VPN drops hourly"), event_id="Ev0RETRYFIRST", retry_num=2) == 200
    assert len(points(bot.db)) == 1 and len(posts_to(bot, DM)) == 1


# slackapi/node-slack-sdk#2141: one message delivered several times with different event ids.
async def test_one_dm_delivered_under_two_event_ids_is_one_report_and_one_answer(bot):
    for event_id in ("Ev0TWICE0001", "Ev0TWICE0002"):
        await send(bot, dm("helm lint is slow"), event_id=event_id)
    assert len(points(bot.db)) == 1 and len(posts_to(bot, DM)) == 1


async def test_one_question_delivered_under_two_event_ids_gets_one_reply(bot):
    for event_id in ("Ev0TWICE0003", "Ev0TWICE0004"):
        await send(bot, question("is the registry down?", "1700000200.000100"), event_id=event_id)
    assert len(points(bot.db)) == 1 and len([p for p in posts_to(bot, HELP) if p.get("thread_ts")]) == 1


# slackapi/bolt-python#488: "Also send to #channel" (thread_broadcast) is a reply, not a new question.
async def test_a_thread_broadcast_in_the_help_channel_is_not_a_new_question(bot):
    await send(bot, question("is the registry down?", "1700000300.000100"))
    await send(bot, question("still down for me", "1700000400.000100", subtype="thread_broadcast", thread_ts="1700000300.000100",
                             root={"ts": "1700000300.000100", "user": ASKER, "text": "is the registry down?"}))
    [point] = points(bot.db)
    assert point.first_response_at is None  # the asker's own words are no host's answer


# NousResearch/hermes-agent#89908, pinterest/slackminion#13: message_changed re-emits (language
# detection, link unfurls) of a question already taken.
async def test_a_message_changed_re_emit_files_nothing_more(bot):
    original = question("is the registry down?", "1700000500.000100")
    await send(bot, original)
    changed = {"type": "message", "subtype": "message_changed", "hidden": True, "channel": HELP, "ts": "1700000501.000100",
               "event_ts": "1700000501.000100", "channel_type": "channel", "message": original | {"language": {"locale": "en"}},
               "previous_message": original}
    await send(bot, changed)
    assert len(points(bot.db)) == 1 and len([p for p in posts_to(bot, HELP) if p.get("thread_ts")]) == 1


# slackapi/python-slack-sdk#390, mishk0/slack-bot-api#84: the bot hearing its own reply.
async def test_the_bots_own_reply_in_a_question_thread_is_not_a_hosts_answer(bot):
    await send(bot, question("is the registry down?", "1700000600.000100"))
    reply = {"type": "message", "channel": HELP, "user": BOT_USER, "bot_id": "B0BOT0001", "text": "FB-1 is on the platform team's list",
             "ts": "1700000601.000100", "thread_ts": "1700000600.000100", "event_ts": "1700000601.000100", "channel_type": "channel"}
    await send(bot, reply)
    [point] = points(bot.db)
    assert point.first_response_at is None and point.status == "new"


# sweatco/archie-hq#280, saltstack/salt#69439: a bot's post with empty text, everything in
# attachments, and no ``user``.
async def test_an_attachments_only_form_post_is_filed_with_its_words_and_submitter(bot):
    post = {"type": "message", "subtype": "bot_message", "channel": HELP, "bot_id": "B0WORKFLOW", "username": "Ask the platform team", "text": "",
            "ts": "1700000700.000100", "event_ts": "1700000700.000100", "channel_type": "channel",
            "attachments": [{"id": 1, "fallback": "New request", "pretext": "New request",
                             "fields": [{"title": "From", "value": "<@U0ASKER001>", "short": True},
                                        {"title": "Problem", "value": "Terraform plan hangs on the shared runners", "short": False}]}]}
    assert await send(bot, post) == 200
    [point] = points(bot.db)
    assert "Terraform plan hangs" in point.text and [r.user_id for r in point.reporters] == [ASKER]


# bolt-python#264/#299 family: an event shape a listener half-matches must not 4xx or raise.
async def test_the_filing_emoji_on_a_file_is_acked_and_files_nothing(bot):
    event = reaction_added(channel=HELP, ts="1700000800.000100") | {"item": {"type": "file", "file": "F0FILE0001"}}
    assert await send(bot, event) == 200
    assert points(bot.db) == []


# slackapi/bolt-python#886, #772, bolt-js#1662, jcraigk/kudochest#167: views.open answered
# expired_trigger_id (a slow moment between Slack and the bot): the person is told, once.
async def test_a_form_slack_would_not_open_is_explained(bot):
    bot.fake.fail_when = lambda method, body: (200, {"ok": False, "error": "expired_trigger_id"}, {}) if method == "views.open" else None
    resp = await bot.post(*slash_command("", fake_url=bot.fake.url))
    assert resp.status_code == 200
    await bot.settle()
    [told] = bot.fake.calls_to("response_url")
    assert "expired_trigger_id" in told.body["text"] and "/platform-feedback the staging VPN" in told.body["text"]


# A DM of a screenshot alone (file_share, no text) was dropped as "empty" (the kind of
# slackapi/bolt-python#488: a subtype or a missing field taken for "not a person's message").
async def test_a_dm_of_a_file_alone_is_a_report(bot):
    event = dm("", subtype="file_share", files=[{"id": "F0SHOT0001", "name": "vpn-error.png", "title": "vpn-error.png"}], upload=True)
    await send(bot, event)
    [point] = points(bot.db)
    assert "vpn-error.png" in point.text and len(posts_to(bot, DM)) == 1


# errbotio/errbot#382: "/me" messages (me_message) are a person writing.
async def test_a_me_message_dm_is_a_report(bot):
    await send(bot, dm("is stuck on the VPN again", subtype="me_message"))
    assert len(points(bot.db)) == 1


# bolt-python's SslCheck: Slack's certificate check is a signed form POST with ssl_check=1.
async def test_slacks_ssl_check_is_answered_200(bot):
    resp = await bot.post(*form("ssl_check=1&token=XXXXXXXXXXXXXXXXXXXXXXXX"))
    assert resp.status_code == 200
    assert points(bot.db) == []


# slackapi/bolt-python#772: the trigger of a message shortcut expired before views.open.
async def test_a_shortcut_form_slack_would_not_open_is_explained(bot):
    from tests.slack_requests import interactive, message_shortcut

    bot.fake.fail_when = lambda method, body: (200, {"ok": False, "error": "expired_trigger_id"}, {}) if method == "views.open" else None
    payload = message_shortcut(message_text="the VPN drops", message_ts="1700000900.000100")
    payload["response_url"] = f"{bot.fake.url}/response_url/shortcut"
    assert (await bot.post(*interactive(payload))).status_code == 200
    await bot.settle()
    [told] = bot.fake.calls_to("response_url")
    assert "expired_trigger_id" in told.body["text"] and "shortcut" in told.body["text"]
