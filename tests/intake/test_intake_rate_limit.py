"""Reads retry too (#13, item 4): a :ticket: reaction while conversations.history answers 429 with
Retry-After. The read waits it out through slack_sdk's retry handler; a read that still fails files
what the event carries and tells the reactor. Writes are left to the outbox sender."""

import time

from sqlmodel import select

from bot.intake.listeners import UNREAD_TEXT
from bot.runtime.slack_reads import READ_RETRIES, is_read
from storage.models import FrictionPoint
from tests.slack_requests import USER, event_callback, reaction_added

CHANNEL = "C0HELP0001"
# The wire shape Slack sends (tests/fixtures/slack/web_api/ratelimited_429.md).
RATELIMITED = {"ok": False, "error": "ratelimited"}


def limited(seconds: int) -> tuple[int, dict, dict]:
    return 429, RATELIMITED, {"Retry-After": str(seconds)}


def points(db) -> list[FrictionPoint]:
    with db.session() as s:
        return list(s.exec(select(FrictionPoint).order_by(FrictionPoint.id)).all())


async def react(bot, ts: str) -> float:
    started = time.monotonic()
    await bot.post(*event_callback(reaction_added(channel=CHANNEL, ts=ts, item_user="U0AUTHOR01")))
    await bot.drain()
    return time.monotonic() - started


async def test_a_rate_limited_read_waits_retry_after_and_files_the_message(bot):
    bot.fake.add_message(CHANNEL, "1700000500.000100", "the artifact cache is always cold", user="U0AUTHOR01")
    bot.fake.script("conversations.history", limited(1))
    elapsed = await react(bot, "1700000500.000100")
    assert elapsed >= 1.0  # it waited as Slack asked
    assert len(bot.fake.calls_to("conversations.history")) == 2
    [point] = points(bot.db)
    assert point.text == "the artifact cache is always cold"
    [reply] = bot.fake.calls_to("chat.postMessage")
    assert reply.body["thread_ts"] == "1700000500.000100"


async def test_a_read_still_limited_files_what_the_event_carries_and_says_so(bot):
    bot.fake.add_message(CHANNEL, "1700000500.000200", "never read", user="U0AUTHOR01")
    bot.fake.script("conversations.history", *[limited(1)] * (READ_RETRIES + 1))
    await react(bot, "1700000500.000200")
    assert len(bot.fake.calls_to("conversations.history")) == READ_RETRIES + 1
    [point] = points(bot.db)
    assert point.text == UNREAD_TEXT and point.filed_by == USER
    assert [r.user_id for r in point.reporters] == ["U0AUTHOR01"]  # the event's item_user
    assert point.permalink.endswith("/archives/C0HELP0001/p1700000500000200")  # where to read it
    [dm] = bot.fake.calls_to("chat.postMessage")
    assert dm.body["channel"] == USER and f"FB-{point.id}" in dm.body["text"]
    shown = str(dm.body["blocks"])
    assert "ratelimited" in shown and "add_details" in shown


async def test_a_retry_after_longer_than_a_read_may_wait_is_not_waited_for(bot):
    bot.fake.add_message(CHANNEL, "1700000500.000300", "not waited for")
    bot.fake.script("conversations.history", limited(120))
    elapsed = await react(bot, "1700000500.000300")
    assert elapsed < 60  # not the 120 s asked for (60: a loaded machine is slow, never 120 s slow)
    assert len(bot.fake.calls_to("conversations.history")) == 1
    [point] = points(bot.db)
    assert point.text == UNREAD_TEXT


async def test_a_rate_limited_write_still_reaches_the_outbox_sender(bot):
    # chat.postMessage is not retried by the client: the sender pauses the method and keeps the row.
    bot.fake.add_message(CHANNEL, "1700000500.000400", "the thread reply is limited")
    bot.fake.script("chat.postMessage", limited(30))
    await bot.post(*event_callback(reaction_added(channel=CHANNEL, ts="1700000500.000400")))
    await bot.settle()
    started = time.monotonic()
    await bot.deps.sender.drain_once()
    assert time.monotonic() - started < 25  # not the 30 s pause (25: a loaded machine is slow, never 30 s slow)
    assert len(bot.fake.calls_to("chat.postMessage")) == 1  # tried once, then left to the sender's pause


def test_reads_are_told_from_writes_by_method_name():
    for url in ("https://slack.com/api/conversations.history", "http://127.0.0.1:1/api/conversations.replies?x=1",
                "https://slack.com/api/chat.getPermalink", "https://slack.com/api/usergroups.users.list",
                "https://slack.com/api/users.info", "https://slack.com/api/auth.test"):
        assert is_read(url), url
    for url in ("https://slack.com/api/chat.postMessage", "https://slack.com/api/chat.update",
                "https://slack.com/api/views.open", "https://slack.com/api/files.completeUploadExternal"):
        assert not is_read(url), url


async def test_a_read_answered_before_the_ack_waits_only_within_slacks_3_seconds():
    from slack_sdk.http_retry.request import HttpRequest
    from slack_sdk.http_retry.response import HttpResponse
    from slack_sdk.http_retry.state import RetryState

    from bot.runtime.slack_reads import ReadRateLimitRetryHandler, read_deadline

    handler = ReadRateLimitRetryHandler()
    request = HttpRequest(method="POST", url="https://slack.com/api/usergroups.users.list", headers={})

    async def retries(retry_after: str) -> bool:
        response = HttpResponse(status_code=429, headers={"Retry-After": [retry_after]}, body=RATELIMITED)
        return await handler.can_retry_async(state=RetryState(), request=request, response=response)

    assert await retries("1") and await retries("10") and not await retries("11")
    with read_deadline(2.5):  # 1 s plus up to 1 s of jitter still fits, 2 s does not
        assert await retries("1") and not await retries("2")
    assert await retries("5")  # the deadline ends with the block
