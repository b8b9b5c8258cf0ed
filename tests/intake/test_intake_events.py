"""Events: the filing reaction (with Slack's retries) and the App Home tab."""

import json

from sqlmodel import select

from storage.models import FrictionPoint
from tests.slack_requests import USER, app_home_opened, event_callback, reaction_added, slash_command

CHANNEL = "C0HELP0001"


def points(db) -> list[FrictionPoint]:
    with db.session() as s:
        return list(s.exec(select(FrictionPoint).order_by(FrictionPoint.id)).all())


async def test_ticket_reaction_files_the_message_and_replies_in_its_thread(bot):
    bot.fake.add_message(CHANNEL, "1700000100.000100", "CI &amp; deploys are slow :snail:", user="U0AUTHOR01")
    resp = await bot.post(*event_callback(reaction_added(channel=CHANNEL, ts="1700000100.000100")))
    assert resp.status_code == 200
    await bot.drain()
    [point] = points(bot.db)
    assert point.text == "CI & deploys are slow :snail:"
    assert point.source == "reaction" and point.filed_by == USER
    assert [r.user_id for r in point.reporters] == ["U0AUTHOR01"]
    assert point.permalink.endswith("/archives/C0HELP0001/p1700000100000100")
    [reply] = bot.fake.calls_to("chat.postMessage")
    assert reply.body["channel"] == CHANNEL and reply.body["thread_ts"] == "1700000100.000100"
    assert f"FB-{point.id}" in reply.body["text"]


async def test_retried_event_never_files_twice(bot):
    bot.fake.add_message(CHANNEL, "1700000100.000200", "the VPN drops every hour")
    event = reaction_added(channel=CHANNEL, ts="1700000100.000200")
    for retry in (None, 1, 2, 3):  # the first delivery and Slack's three retries, same event_id
        resp = await bot.post(*event_callback(event, event_id="Ev0RETRY0001", retry_num=retry))
        assert resp.status_code == 200
    await bot.drain()
    assert len(points(bot.db)) == 1
    assert len(bot.fake.calls_to("chat.postMessage")) == 1


async def test_second_person_reacting_does_not_file_again_or_reply_again(bot):
    bot.fake.add_message(CHANNEL, "1700000100.000300", "onboarding doc is outdated")
    for user in (USER, "U0SECOND01"):
        await bot.post(*event_callback(reaction_added(channel=CHANNEL, ts="1700000100.000300", user=user)))
    await bot.drain()
    assert len(points(bot.db)) == 1
    assert len(bot.fake.calls_to("chat.postMessage")) == 1


async def test_reaction_on_a_thread_reply_files_the_reply_and_answers_in_that_thread(bot):
    bot.fake.add_message(CHANNEL, "1700000200.000100", "parent message")
    bot.fake.add_message(CHANNEL, "1700000200.000200", "reply: builds time out", thread_ts="1700000200.000100")
    await bot.post(*event_callback(reaction_added(channel=CHANNEL, ts="1700000200.000200")))
    await bot.drain()
    [point] = points(bot.db)
    assert point.text == "reply: builds time out"
    assert bot.fake.calls_to("chat.postMessage")[0].body["thread_ts"] == "1700000200.000100"


async def test_other_reactions_and_unreadable_channels_file_nothing(bot):
    bot.fake.add_message(CHANNEL, "1700000300.000100", "nice work team")
    await bot.post(*event_callback(reaction_added(channel=CHANNEL, ts="1700000300.000100", reaction="tada")))
    await bot.post(*event_callback(reaction_added(channel="C0NOTMEMBR", ts="1700000300.000200")))
    await bot.drain()
    assert points(bot.db) == []
    assert bot.fake.calls_to("chat.postMessage") == []


async def test_app_home_shows_own_reports_and_how_to_file(bot):
    await bot.post(*slash_command("artifact registry is slow today", fake_url=bot.fake.url))
    await bot.post(*slash_command("not mine to see at all", fake_url=bot.fake.url, user="U0OTHER001"))
    await bot.settle()
    await bot.post(*event_callback(app_home_opened()))
    await bot.settle()
    [publish] = bot.fake.calls_to("views.publish")
    assert publish.body["user_id"] == USER
    shown = json.dumps(publish.body["view"])
    assert publish.body["view"]["type"] == "home"
    assert "artifact registry is slow today" in shown and "not mine to see" not in shown
    assert "/platform-feedback" in shown


async def test_malformed_json_event_gets_a_4xx_and_changes_nothing(bot):
    from tests.slack_requests import signed

    body = '{"type": "event_callback", "event": '
    resp = await bot.post(body, signed(body, content_type="application/json"))
    assert 400 <= resp.status_code < 500
    assert bot.fake.calls == []


async def test_malformed_bodies_without_a_valid_signature_get_401(bot):
    body = "payload=%7Bnot-json"
    resp = await bot.post(body, {"content-type": "application/x-www-form-urlencoded", "x-slack-signature": "v0=00",
                                 "x-slack-request-timestamp": "1700000000"})
    assert resp.status_code == 401


async def test_signed_form_with_malformed_payload_json_gets_400(bot):
    from tests.slack_requests import form

    resp = await bot.post(*form("payload=%7Bnot-json"))
    assert resp.status_code == 400
