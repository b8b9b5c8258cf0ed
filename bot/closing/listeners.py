"""Closing the loop in Slack: closure notices by DM through the outbox, "Works for me" and
"Still broken", and "you said, we did"."""

import logging

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.closing.blocks import COMMENT_BLOCK, build_feedback_thanks, build_still_broken_modal
from bot.closing.ids import NoticeMetadata
from bot.closing.service import answer_notice
from bot.ids import Action, Callback
from bot.intake.blocks import build_try_again
from bot.intake.service import flatten_state
from bot.runtime.context import Deps
from storage.database import DatabaseUnavailable

log = logging.getLogger(__name__)


def register(app: AsyncApp, deps: Deps) -> None:
    prefix = deps.policy.reference_prefix

    @app.action(Action.closure_works)
    async def on_works(ack: AsyncAck, body: dict, action: dict, respond: AsyncRespond):
        await ack()
        try:
            ref = await deps.db.run(answer_notice, notice_id=int(action["value"]), user_id=body["user"]["id"],
                                    works=True, comment=None, prefix=prefix)
        except DatabaseUnavailable:
            await respond(replace_original=False, **build_try_again("your answer"))
            return
        if ref:
            await respond(replace_original=True, **build_feedback_thanks(True, ref))

    @app.action(Action.closure_broken)
    async def on_broken(ack: AsyncAck, body: dict, action: dict, client):
        await ack()
        await client.views_open(trigger_id=body["trigger_id"], view=build_still_broken_modal(int(action["value"]), "your report"))

    @app.view(Callback.still_broken)
    async def on_broken_submitted(ack: AsyncAck, body: dict, view: dict, client):
        comment = str(flatten_state(view["state"]["values"]).get(COMMENT_BLOCK) or "").strip()
        if not comment:
            await ack(response_action="errors", errors={COMMENT_BLOCK: "Tell us what still goes wrong."})
            return
        user = body["user"]["id"]
        try:
            ref = await deps.db.run(answer_notice, notice_id=NoticeMetadata.load(view["private_metadata"]).notice_id, user_id=user,
                                    works=False, comment=comment[:2000], prefix=prefix)
        except DatabaseUnavailable:
            await ack(response_action="errors", errors={COMMENT_BLOCK: "We couldn't save this just now. Please press Send to try again in a minute."})
            return
        if ref is None:
            await ack(response_action="errors", errors={COMMENT_BLOCK: "This notice is not yours or no longer exists."})
            return
        await ack(response_action="update", view={
            "type": "modal", "title": {"type": "plain_text", "text": "Thanks"}, "close": {"type": "plain_text", "text": "Close"},
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": build_feedback_thanks(False, ref)["text"]}}],
        })
