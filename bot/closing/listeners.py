"""Closing the loop in Slack: closure notices by DM through the outbox, "Works for me" and
"Still broken", and "you said, we did". Its scheduled jobs (the closing poll, the deliveries'
recovery) are ``bot.closing.jobs``; the tracker webhooks ``bot.closing.webhooks``."""

import logging

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.closing.blocks import COMMENT_BLOCK, build_feedback_thanks, build_still_broken_modal
from bot.closing.ids import ClosingAction, ClosingCallback, NoticeMetadata
from bot.closing.service import answer_notice
from bot.intake.service import flatten_state
from bot.runtime.context import Deps
from bot.runtime.listening import answers_outage

log = logging.getLogger(__name__)


@answers_outage("your answer")
async def on_works(ack: AsyncAck, body: dict, action: dict, respond: AsyncRespond, deps: Deps) -> None:
    """Works for me: the notice answered, and thanks in its place."""
    await ack()
    ref = await deps.db.run(answer_notice, notice_id=int(action["value"]), user_id=body["user"]["id"],
                            works=True, comment=None, prefix=deps.policy.reference_prefix)
    if ref:
        await respond(replace_original=True, **build_feedback_thanks(True, ref))


async def on_broken(ack: AsyncAck, body: dict, action: dict, client: AsyncWebClient) -> None:
    """Still broken: the modal asking what still goes wrong."""
    await ack()
    await client.views_open(trigger_id=body["trigger_id"], view=build_still_broken_modal(int(action["value"]), "your report"))


@answers_outage("your answer", block=COMMENT_BLOCK)
async def on_broken_submitted(ack: AsyncAck, body: dict, view: dict, deps: Deps) -> None:
    """What still goes wrong: the notice answered (its report reopened), and thanks in the modal."""
    comment = str(flatten_state(view["state"]["values"]).get(COMMENT_BLOCK) or "").strip()
    if not comment:
        await ack(response_action="errors", errors={COMMENT_BLOCK: "Tell us what still goes wrong."})
        return
    ref = await deps.db.run(answer_notice, notice_id=NoticeMetadata.load(view["private_metadata"]).notice_id, user_id=body["user"]["id"],
                            works=False, comment=comment[:2000], prefix=deps.policy.reference_prefix)
    if ref is None:
        await ack(response_action="errors", errors={COMMENT_BLOCK: "This notice is not yours or no longer exists."})
        return
    await ack(response_action="update", view={
        "type": "modal", "title": {"type": "plain_text", "text": "Thanks"}, "close": {"type": "plain_text", "text": "Close"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": build_feedback_thanks(False, ref)["text"]}}],
    })


def register(app: AsyncApp) -> None:
    """The wiring table: which Slack request each listener answers."""
    app.action(ClosingAction.works)(on_works)
    app.action(ClosingAction.broken)(on_broken)
    app.view(ClosingCallback.still_broken)(on_broken_submitted)
