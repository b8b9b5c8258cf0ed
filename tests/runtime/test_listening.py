"""bot.runtime.listening: the one answer to a database outage, and the parameters Bolt fills."""

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.util.utils import get_arg_names_of_callable

from bot.runtime.listening import UNREACHABLE, answers_outage
from storage.database import DatabaseUnavailable


class Said:
    def __init__(self):
        self.calls = []

    async def __call__(self, **kwargs):
        self.calls.append(kwargs)


@answers_outage("your answer", block="answer_block")
async def submitted(ack, view, deps):
    """A form whose save meets an outage."""
    raise DatabaseUnavailable("down")


@answers_outage("your click")
async def clicked(ack, deps):
    await ack()
    raise DatabaseUnavailable("down")


async def test_bolt_fills_the_listeners_own_parameters_and_what_the_answer_needs():
    assert get_arg_names_of_callable(submitted) == ["ack", "view", "deps", "respond", "body"]
    assert submitted.__name__ == "submitted" and "outage" in submitted.__doc__


async def test_a_form_keeps_its_words_and_says_so_under_its_block():
    ack = AsyncAck()
    await submitted(ack=ack, view={}, deps=None, respond=None, body={"type": "view_submission"})
    assert ack.response is not None and ack.response.status == 200
    assert '"answer_block": "' + UNREACHABLE + '"' in ack.response.body


async def test_a_click_is_answered_once_in_one_ephemeral_line():
    ack, respond = AsyncAck(), Said()
    await clicked(ack=ack, deps=None, respond=respond, body={"type": "block_actions"})
    assert len(respond.calls) == 1
    call = respond.calls[0]
    assert call["response_type"] == "ephemeral" and call["replace_original"] is False
    assert "couldn't save your click" in call["text"] and "try again in a minute" in call["text"]


async def test_an_event_without_a_response_url_is_raised_for_the_gate_to_keep():
    ack = AsyncAck()
    try:
        await clicked(ack=ack, deps=None, respond=None, body={"type": "event_callback"})
    except DatabaseUnavailable:
        return
    raise AssertionError("the outage was swallowed: nothing would keep the event")
