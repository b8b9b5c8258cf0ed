"""Response targets in Slack: waiting for the reporter (`/platform-feedback ask FB-12 <question>`,
the host's Ask button on the card and its modal, the Reply button in the reporter's DM and its modal).
The job that queues warnings and breaches is ``bot.targets.jobs``."""

import logging

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.ids import PointMetadata
from bot.intake.service import first_word
from bot.references import format_ref, parse_ref
from bot.runtime.context import Deps, Subcommand
from bot.runtime.listening import answers_outage
from bot.runtime.slack_reads import read_deadline
from bot.targets import alerts as target_alerts
from bot.targets.blocks import ASK_BLOCK, ASK_INPUT, REPLY_BLOCK, REPLY_INPUT, build_ask_modal, build_reply_modal
from bot.targets.ids import TargetAction, TargetCallback

log = logging.getLogger(__name__)
ACK_BUDGET = 2.0  # seconds the Ask modal's host check may take before it acks (Slack allows 3)
NOT_A_HOST = "Only office-hours hosts can ask reporters. Nothing was changed."


def _field(view: dict, block: str, element: str) -> str:
    """The text typed into ``block``/``element`` of a submitted view, "" when absent."""
    return ((view.get("state", {}).get("values", {}).get(block) or {}).get(element) or {}).get("value") or ""


async def ask_command(deps: Deps, user: str, args: str, respond: AsyncRespond, client: AsyncWebClient, trigger_id: str) -> None:
    """``/platform-feedback ask FB-12 <question>``: a host asks the reporter; the clocks pause."""
    prefix = deps.policy.reference_prefix
    ref, question = first_word(args)
    point_id = parse_ref(prefix, ref)
    if point_id is None or not question.strip():
        await respond(response_type="ephemeral", text=f"Usage: `/platform-feedback ask {format_ref(prefix, 12)} <your question for the reporter>`: "
                                                      "its response-target clocks pause until they answer.")
        return
    if not await deps.hosts.is_host(user):
        await respond(response_type="ephemeral", text=NOT_A_HOST)
        return
    try:
        await deps.db.run(target_alerts.wait_for_reporter, point_id=point_id, actor=user, question=question.strip(), prefix=prefix)
    except target_alerts.TargetError as exc:
        await respond(response_type="ephemeral", text=str(exc))
        return
    clocks = ("; its response-target clocks are paused until they answer" if deps.policy.targets.enabled
              else "; their answer goes to the card's thread")  # no targets set: no clock to pause
    await respond(response_type="ephemeral", text=f"Asked the reporter of {format_ref(prefix, point_id)}{clocks}.")


async def on_reply(ack: AsyncAck, body: dict, action: dict, client: AsyncWebClient, deps: Deps) -> None:
    """The reporter's Reply button in their DM: the answer modal."""
    await ack()
    value = action.get("value") or ""
    if value.isdigit():
        await client.views_open(trigger_id=body["trigger_id"], view=build_reply_modal(deps.ref(int(value)), int(value)))


@answers_outage("your answer", block=REPLY_BLOCK)
async def on_reply_submitted(ack: AsyncAck, body: dict, view: dict, deps: Deps) -> None:
    """The reporter's answer: to the card's thread; the clocks run again."""
    answer = _field(view, REPLY_BLOCK, REPLY_INPUT)
    meta = PointMetadata.parse(view.get("private_metadata"))
    if not answer.strip() or meta is None:
        await ack(response_action="errors", errors={REPLY_BLOCK: "Write your answer first."})
        return
    done = await deps.db.run(target_alerts.answer_as_reporter, point_id=meta.point_id, user=body["user"]["id"],
                             answer=answer.strip(), prefix=deps.policy.reference_prefix)
    if not done:
        await ack(response_action="errors", errors={REPLY_BLOCK: "That report is not waiting for an answer from you."})
        return
    await ack()


async def on_ask(ack: AsyncAck, body: dict, action: dict, client: AsyncWebClient, respond: AsyncRespond, deps: Deps) -> None:
    """A host's Ask button on the card: the question modal (hosts only)."""
    await ack()
    value = action.get("value") or ""
    if not value.isdigit():
        return
    if not await deps.hosts.is_host(body["user"]["id"]):
        await respond(response_type="ephemeral", replace_original=False, text=NOT_A_HOST)
        return
    await client.views_open(trigger_id=body["trigger_id"], view=build_ask_modal(deps.ref(int(value)), int(value)))


@answers_outage("your question", block=ASK_BLOCK)
async def on_ask_submitted(ack: AsyncAck, body: dict, view: dict, deps: Deps) -> None:
    """The host's question: DMed to the reporter; the report waits for them."""
    question = _field(view, ASK_BLOCK, ASK_INPUT)
    meta, user = PointMetadata.parse(view.get("private_metadata")), body["user"]["id"]
    if not question.strip() or meta is None:
        await ack(response_action="errors", errors={ASK_BLOCK: "Write your question first."})
        return
    with read_deadline(ACK_BUDGET):
        allowed = await deps.hosts.is_host(user)
    if not allowed:
        await ack(response_action="errors", errors={ASK_BLOCK: NOT_A_HOST})
        return
    try:
        await deps.db.run(target_alerts.wait_for_reporter, point_id=meta.point_id, actor=user, question=question.strip(),
                          prefix=deps.policy.reference_prefix)
    except target_alerts.TargetError as exc:
        await ack(response_action="errors", errors={ASK_BLOCK: str(exc)})
        return
    await ack()


COMMANDS: dict[str, Subcommand] = {"ask": ask_command}


def register(app: AsyncApp) -> None:
    """The wiring table: which Slack request each listener answers."""
    app.action(TargetAction.reply)(on_reply)
    app.view(TargetCallback.reply)(on_reply_submitted)
    app.action(TargetAction.ask)(on_ask)
    app.view(TargetCallback.ask)(on_ask_submitted)
