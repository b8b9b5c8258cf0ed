"""Response targets: the job that queues warnings and breaches, and waiting for the reporter
(`/platform-feedback ask FB-12 <question>`, the Reply button in the reporter's DM, its modal)."""

import logging
from functools import partial

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.ids import Action, Callback, PointMetadata
from bot.intake.blocks import build_try_again
from bot.intake.service import first_word
from bot.references import format_ref, parse_ref
from bot.runtime.context import Deps
from bot.runtime.scheduler import Job, interval_slot, interval_trigger
from bot.runtime.slack_reads import read_deadline
from bot.targets import alerts as target_alerts
from bot.targets.blocks import ASK_BLOCK, ASK_INPUT, REPLY_BLOCK, REPLY_INPUT, build_ask_modal, build_reply_modal
from storage.database import DatabaseUnavailable

log = logging.getLogger(__name__)
JOB = "targets.check"
TICK_MINUTES = 5
ACK_BUDGET = 2.0  # seconds the Ask modal's host check may take before it acks (Slack allows 3)
NOT_A_HOST = "Only office-hours hosts can ask reporters. Nothing was changed."




def register(app: AsyncApp, deps: Deps) -> None:
    policy, prefix = deps.policy, deps.policy.reference_prefix

    if policy.targets.enabled:
        deps.scheduler.add(
            Job(name=JOB, db=deps.db, work=partial(target_alerts.check_job, policy=policy), occurrence_at=interval_slot(TICK_MINUTES), after=deps.sender.wake),
            interval_trigger(TICK_MINUTES),
        )

    async def ask_command(user: str, args: str, respond: AsyncRespond, client: AsyncWebClient) -> None:
        ref, question = first_word(args)
        point_id = parse_ref(prefix, ref)
        if point_id is None or not question.strip():
            await respond(response_type="ephemeral", text=f"Usage: `/platform-feedback ask {prefix}-12 <your question for the reporter>`: "
                                                          "its response-target clocks pause until they answer.")
            return
        if not await deps.hosts.is_host(user):
            await respond(response_type="ephemeral", text=NOT_A_HOST)
            return
        try:
            await deps.db.run(target_alerts.wait_for_reporter, point_id=point_id, actor=user, question=question.strip(),
                              prefix=prefix)
        except target_alerts.TargetError as exc:
            await respond(response_type="ephemeral", text=str(exc))
            return
        except DatabaseUnavailable:
            await respond(response_type="ephemeral", **build_try_again("that question"))
            return
        clocks = ("; its response-target clocks are paused until they answer" if deps.policy.targets.enabled
                  else "; their answer goes to the card's thread")  # no targets set: no clock to pause
        await respond(response_type="ephemeral", text=f"Asked the reporter of {format_ref(prefix, point_id)}{clocks}.")

    deps.commands["ask"] = ask_command

    @app.action(Action.target_reply)
    async def on_reply(ack: AsyncAck, body: dict, action: dict, client: AsyncWebClient):
        await ack()
        value = action.get("value") or ""
        if value.isdigit():
            await client.views_open(trigger_id=body["trigger_id"], view=build_reply_modal(format_ref(prefix, value), int(value)))

    @app.view(Callback.target_reply)
    async def on_reply_submitted(ack: AsyncAck, body: dict, view: dict):
        answer = ((view.get("state", {}).get("values", {}).get(REPLY_BLOCK) or {}).get(REPLY_INPUT) or {}).get("value") or ""
        meta = PointMetadata.parse(view.get("private_metadata"))
        if not answer.strip() or meta is None:
            await ack(response_action="errors", errors={REPLY_BLOCK: "Write your answer first."})
            return
        try:
            done = await deps.db.run(target_alerts.answer_as_reporter, point_id=meta.point_id, user=body["user"]["id"],
                                     answer=answer.strip(), prefix=prefix)
        except DatabaseUnavailable:
            await ack(response_action="errors", errors={REPLY_BLOCK: "The bot cannot reach its database right now; try again in a minute."})
            return
        if not done:
            await ack(response_action="errors", errors={REPLY_BLOCK: "That report is not waiting for an answer from you."})
            return
        await ack()

    @app.action(Action.target_ask)
    async def on_ask(ack: AsyncAck, body: dict, action: dict, client: AsyncWebClient, respond: AsyncRespond):
        await ack()
        value = action.get("value") or ""
        if not value.isdigit():
            return
        if not await deps.hosts.is_host(body["user"]["id"]):
            await respond(response_type="ephemeral", replace_original=False, text=NOT_A_HOST)
            return
        await client.views_open(trigger_id=body["trigger_id"], view=build_ask_modal(format_ref(prefix, value), int(value)))

    @app.view(Callback.target_ask)
    async def on_ask_submitted(ack: AsyncAck, body: dict, view: dict):
        question = ((view.get("state", {}).get("values", {}).get(ASK_BLOCK) or {}).get(ASK_INPUT) or {}).get("value") or ""
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
            await deps.db.run(target_alerts.wait_for_reporter, point_id=meta.point_id, actor=user, question=question.strip(), prefix=prefix)
        except target_alerts.TargetError as exc:
            await ack(response_action="errors", errors={ASK_BLOCK: str(exc)})
            return
        except DatabaseUnavailable:
            await ack(response_action="errors", errors={ASK_BLOCK: "The bot cannot reach its database right now; try again in a minute."})
            return
        await ack()
