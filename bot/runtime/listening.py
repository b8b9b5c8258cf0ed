"""What every feature's Slack listeners share: the app's ``Deps`` handed to each listener by name,
and one answer when the database does not (issue #24: "call the operation; on DatabaseUnavailable
ask to try again" was written 25 times).

Listeners are module-level functions (``bot/<feature>/listeners.py``) whose parameters Bolt fills by
name: its own (``ack``, ``body``, ``action``, ``view``, ``respond``, ``client``, …) and, from the
request's context, ``deps`` (``with_deps`` puts it there; Bolt injects any context key a listener
names: slack_bolt/kwargs_injection/async_utils.py, "for k, v in request.context.items()").
"""

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext

from bot.runtime.context import Deps
from bot.text import mrkdwn
from storage.database import DatabaseUnavailable

log = logging.getLogger(__name__)
Listener = TypeVar("Listener", bound=Callable[..., Awaitable[Any]])
UNREACHABLE = "The bot cannot reach its database right now; try again in a minute."


def with_deps(app: AsyncApp, deps: Deps) -> None:
    """Give every listener of ``app`` the app's ``deps`` (a parameter named ``deps``)."""

    async def give(context: AsyncBoltContext, next: Callable[[], Awaitable[Any]]) -> Any:
        context["deps"] = deps
        return await next()

    app.middleware(give)


def try_again(what: str, text: str | None = None) -> dict:
    """An ephemeral message: ``what`` (e.g. "your answer") was not saved because the database did not
    answer; try again in a minute. ``text``: what the person wrote, quoted back so nothing is lost."""
    return _warning(f"I couldn't save {what} just now (our database did not answer). Please try again in a minute.",
                    text, "What you wrote, so nothing is lost:")


def unsure(what: str, text: str | None = None) -> dict:
    """An ephemeral message: the database stopped answering while ``what`` was being saved, so
    whether it was is not known (``storage.database.OutcomeUnknown``); where to look before sending
    it again. ``text``: what the person wrote, quoted back."""
    return _warning(f"Our database stopped answering while saving {what}, so I can't tell whether it was saved. "
                    "In a minute, `/platform-feedback mine` lists your reports: send it again only if it is not there.",
                    text, "What you wrote:")


def _warning(said: str, text: str | None, lead: str) -> dict:
    """``said`` as a warning, with ``text`` (a person's words, inert) quoted under ``lead``."""
    msg = f":warning: {said}" + (f"\n{lead}\n>{mrkdwn(text, 2500)}" if text else "")
    return {"text": msg, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": msg}}]}


def answers_outage(what: str, *, block: str | None = None) -> Callable[[Listener], Listener]:
    """Decorate a listener whose work needs the database. When it raises ``DatabaseUnavailable`` the
    person is told once, in one line, and nothing half-done is left (the operation's transaction
    rolled back):

    - a form's submission not yet acknowledged: the error under ``block`` (the form stays open, their
      words in it);
    - otherwise, where Slack gave a response URL: an ephemeral "couldn't save ``what``, try again in
      a minute" (``try_again``);
    - neither (an event): logged, and raised again when nothing acknowledged it yet, so the event
      gate keeps it for the replay.

    Bolt fills a listener's parameters by name from ``inspect.getfullargspec`` of the unwrapped
    function (slack_bolt/util/utils.py ``get_arg_names_of_callable``), so the wrapper carries a
    ``__signature__`` naming the listener's own parameters plus ``ack`` and ``respond``, and no
    ``__wrapped__``."""

    def decorate(listener: Listener) -> Listener:
        own = list(inspect.signature(listener).parameters)
        extra = [name for name in ("ack", "respond", "body") if name not in own]

        async def run(**kwargs: Any) -> Any:
            try:
                return await listener(**{name: kwargs[name] for name in own})
            except DatabaseUnavailable:
                ack: AsyncAck | None = kwargs.get("ack")
                acked = ack is None or ack.response is not None
                kind = (kwargs.get("body") or {}).get("type")
                if not acked and kind == "view_submission" and block is not None:
                    await ack(response_action="errors", errors={block: UNREACHABLE})  # type: ignore[misc]
                    return None
                respond = kwargs.get("respond")
                if respond is None:
                    raise  # an event, or a form without a response URL: the gate keeps or Bolt refuses it
                if not acked and ack is not None:
                    await ack()
                await respond(response_type="ephemeral", replace_original=False, **try_again(what))
                return None

        params = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in own + extra]
        run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        run.__name__, run.__qualname__ = listener.__name__, listener.__qualname__
        run.__doc__, run.__module__ = listener.__doc__, listener.__module__
        return run  # type: ignore[return-value]

    return decorate
