"""``LateAck`` (bot.runtime.late_answer): an ack that comes after Bolt answered without it goes to
the response URL; one in time goes nowhere else. The real-process proof is in test_acked_kept.py."""

from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.response import BoltResponse

from bot.runtime.late_answer import LateAck, message_of


def context(with_url: bool = True) -> tuple[AsyncBoltContext, list]:
    sent: list = []

    async def respond(message):
        sent.append(message)

    ctx = AsyncBoltContext()
    if with_url:
        ctx["response_url"] = "https://hooks.slack.com/commands/T0/1/x"
    ctx["respond"] = respond
    return ctx, sent


async def test_an_ack_in_time_is_the_answer_and_nothing_else_is_sent():
    ctx, sent = context()
    ack = LateAck(ctx)
    answer = await ack(text="Filed FB-1", response_type="ephemeral")
    assert await ack.answered(answer) is False
    assert sent == []


async def test_an_ack_after_bolt_answered_without_it_goes_to_the_response_url_once():
    ctx, sent = context()
    ack = LateAck(ctx)
    assert await ack.answered(BoltResponse(status=404, body={"error": "unhandled request"})) is True
    assert sent == []  # nothing acked yet
    await ack(text="Filed FB-1", blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "Filed FB-1"}}])
    assert sent == [{"text": "Filed FB-1", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Filed FB-1"}}],
                     "response_type": "ephemeral"}]
    assert await ack.answered(BoltResponse(status=200, body="")) is True and len(sent) == 1


async def test_an_ack_between_bolt_s_answer_and_the_route_s_look_is_sent_by_the_look():
    ctx, sent = context()
    ack = LateAck(ctx)
    await ack("Filed FB-2")  # Bolt had already returned its own answer
    assert await ack.answered(BoltResponse(status=404, body="")) is True
    assert sent == [{"text": "Filed FB-2", "response_type": "ephemeral"}]


async def test_what_a_response_url_cannot_carry_is_logged_not_sent(caplog):
    ctx, sent = context()
    ack = LateAck(ctx)
    await ack.answered(BoltResponse(status=404, body=""))
    await ack(response_action="errors", errors={"text": "too long"})  # a form's answer
    await ack()  # an empty ack: nothing missed
    nowhere, _ = context(with_url=False)
    other = LateAck(nowhere)
    await other.answered(BoltResponse(status=404, body=""))
    await other(text="Filed FB-3")
    assert sent == []
    assert [r.getMessage() for r in caplog.records] == [
        "an answer came after Slack's 3 s and has no way to the person (a form's or a menu's answer)",
        "an answer came after Slack's 3 s and has no way to the person (no response URL)",
    ]


def test_message_of_keeps_what_a_response_url_takes():
    assert message_of(BoltResponse(status=200, body={"text": "a", "response_type": "in_channel", "unfurl_links": False})) == \
        {"text": "a", "response_type": "in_channel", "unfurl_links": False}
    assert message_of(BoltResponse(status=200, body={"options": []})) is None
    assert message_of(BoltResponse(status=500, body="a")) is None
