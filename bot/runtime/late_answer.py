"""A person's answer that comes after Bolt stopped waiting for it.

Bolt waits ``ack_timeout`` (3 s) for a listener's ``ack()``; past that it gives up on the listener,
which runs on (slack_bolt/listener/asyncio_runner.py: "await for the completion of ack()"), and
answers without it (with our middlewares, its "unhandled request" 404). What the listener acks
afterwards went nowhere: a one-line report filed after 3 s (SQLite's writer busy on a loaded host,
the chaos run of issue #26) was stored, but its ack, the person's reference, was never shown, and
the request's spool copy stayed ``held`` (dropped, not replayed, if the process then died).

``LateAck`` is the ack of a person's command or interaction (``EventGate.hold`` puts it in the
request's context): once the route has answered without it (``answered``), what the listener acks
is sent to the request's response URL instead, the ephemeral message it would have been (Slack
keeps a response URL for 30 minutes, five messages: https://docs.slack.dev/interactivity/handling-user-interaction).
A form has no response URL, and Slack closed it at the empty answer: a late refusal (the form's
errors, "cannot reach its database, try again") would leave the person believing it was saved, so
it goes to them by DM, with what they typed quoted to send again (``form_message``). A form's late
other answer (another view, "Thanks") and a menu's options have no way to the person: logged.
"""

import asyncio
import json
import logging

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackClientError

from bot.text import fit, to_mrkdwn
from storage.database import person_answered

log = logging.getLogger(__name__)
# What a response URL takes of an ack's body (Bolt's ``_build_message``).
MESSAGE_FIELDS = ("text", "blocks", "attachments", "response_type", "unfurl_links", "unfurl_media")


def message_of(response: BoltResponse | None) -> dict | None:
    """The message an ack's ``response`` carried (a 200 with text or blocks), shaped for a response
    URL (ephemeral unless it said otherwise); None when it carried none or something only the
    original answer can carry (a form's ``response_action``, a menu's ``options``)."""
    body = _acked(response)
    if not (body.get("text") or body.get("blocks") or body.get("attachments")):
        return None
    message = {k: body[k] for k in MESSAGE_FIELDS if k in body}
    message.setdefault("response_type", "ephemeral")
    return message


def _acked(response: BoltResponse | None) -> dict:
    """What an ack's ``response`` carried, as a dict ({} for none, or not a 200)."""
    if response is None or response.status != 200 or not response.body:
        return {}
    try:
        body = json.loads(response.body)
    except ValueError:  # ack("words"): Bolt sends the bare text
        return {"text": response.body}
    return body if isinstance(body, dict) else {}


def form_message(body: dict, response: BoltResponse) -> dict | None:
    """A form's late refusal as a direct message to the person who sent it: the form's title, its
    errors, and each text they typed, quoted (inert, like all people's text: ``bot.text``). None
    unless ``body`` is a form's submission (``view_submission``) and ``response`` its
    ``response_action: errors``."""
    answer = _acked(response)
    if body.get("type") != "view_submission" or answer.get("response_action") != "errors":
        return None
    view = body.get("view") or {}
    title = str((view.get("title") or {}).get("text") or "form")
    errors = " ".join(str(e) for e in (answer.get("errors") or {}).values()) or "it was refused."
    typed = [field["value"] for block in ((view.get("state") or {}).get("values") or {}).values() if isinstance(block, dict)
             for field in block.values() if isinstance(field, dict) and isinstance(field.get("value"), str) and field["value"].strip()]
    lines = [f"Your form “{to_mrkdwn(title)}” closed before it was saved. {to_mrkdwn(errors)}"]
    if typed:
        lines.append("What you wrote, to send again:")
        lines += ["\n".join("> " + line for line in to_mrkdwn(text).splitlines()) for text in typed]
    return {"text": fit("\n".join(lines))}


async def answer_late(context: AsyncBoltContext, response: BoltResponse | None, body: dict | None = None) -> None:
    """Send what ``response`` (a listener's ack to the request ``body``) says to the request's
    response URL, or a form's refusal to the person by DM (``form_message``); one log line when
    there is no such way, or Slack refuses it."""
    if response is None or response.status != 200 or not response.body:
        return  # an empty ack: nothing the person missed
    message, dm = message_of(response), form_message(body or {}, response)
    try:
        if message is not None and context.response_url and context.respond is not None:
            await context.respond(message)
        elif dm is not None and context.client is not None and context.user_id:
            await context.client.chat_postMessage(channel=context.user_id, **dm)
        else:
            log.warning("an answer came after Slack's 3 s and has no way to the person (%s)",
                        "no response URL" if message is not None else "a form's or a menu's answer")
    except (SlackClientError, OSError, TimeoutError, ValueError) as exc:  # aiohttp's errors are OSErrors
        log.warning("an answer that came after Slack's 3 s could not be sent to the person: %s", exc)


class LateAck(AsyncAck):
    """Bolt's ``ack`` for a held request; what it acks after the route answered without it goes to
    the response URL (``answer_late``). An ack, once made, stands: Bolt's runner sets
    ``ack.response`` back to None when a listener that had acked then raises ("already
    acknowledged": asyncio_runner.py), and, if that came before its wait loop looked, waited its
    full 3 s and answered without the ack (a forged button value failing ``int()`` after ``ack()``:
    3 s per request, and a command's acked message lost)."""

    def __init__(self, context: AsyncBoltContext, body: dict | None = None):
        self._response: BoltResponse | None = None
        super().__init__()
        self.context, self.body = context, body or {}
        self.late = False
        self.made = asyncio.Event()  # set at the first ack (``dispatch``)

    @property
    def response(self) -> BoltResponse | None:
        return self._response

    @response.setter
    def response(self, value: BoltResponse | None) -> None:
        if value is not None or self._response is None:
            self._response = value

    async def __call__(self, *args, **kwargs) -> BoltResponse:
        response = await super().__call__(*args, **kwargs)
        self.made.set()
        person_answered()  # the listener's later database calls keep nobody waiting (storage.database)
        if self.late:
            await answer_late(self.context, response, self.body)
        return response

    async def answered(self, sent: BoltResponse) -> bool:
        """The route is about to answer with ``sent`` after a listener took the request: True if that
        is not this ack's answer (Bolt stopped waiting). From then on what it acks goes to the
        response URL; an ack that came in between goes there now."""
        if self.late or (self.response is not None and sent is self.response):
            return self.late
        self.late = True
        if self.response is not None:
            await answer_late(self.context, self.response, self.body)
        return True


_running: set[asyncio.Task] = set()  # dispatches answered at their ack, finishing in the background


async def dispatch(app: AsyncApp, request: AsyncBoltRequest) -> BoltResponse:
    """``app.async_dispatch(request)``, answered as soon as the listener acks (``LateAck.made``).

    Bolt's runner looks for the ack every 10 ms (``await asyncio.sleep(0.01)``, asyncio_runner.py),
    starting before the listener's task has run at all, so every command and click waited at
    least one such sleep, and a busy loop's sleeps run late. What it returns at its next look is
    this same ack response; the dispatch goes on in the background (its listener runs on past
    the ack as before). Raises what the dispatch raises, when it ends first."""
    ack = request.context.get("ack")
    if not isinstance(ack, LateAck):
        return await app.async_dispatch(request)
    task = asyncio.ensure_future(app.async_dispatch(request))
    acked = asyncio.ensure_future(ack.made.wait())
    try:
        await asyncio.wait({task, acked}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # the request itself went away: its listener still runs to its end
        _in_background(task)
        raise
    finally:
        acked.cancel()
    if task.done() or ack.response is None:
        return await task
    _in_background(task)
    return ack.response


def _in_background(task: asyncio.Task) -> None:
    _running.add(task)
    task.add_done_callback(_ended)


def _ended(task: asyncio.Task) -> None:
    _running.discard(task)
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("a Slack request answered at its ack failed after: %r", exc)
