"""Closing the loop in Slack: closure notices by DM through the outbox, "Works for me" and
"Still broken", and "you said, we did"."""

import logging

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from sqlmodel import Session

from bot.operations import closing
from bot.blocks.closing import (
    COMMENT_BLOCK,
    build_announcement,
    build_closure_notice,
    build_feedback_thanks,
    build_still_broken_alert,
    build_still_broken_modal,
)
from bot.blocks.intake import build_try_again
from bot.runtime.config import Policy
from bot.runtime.context import Deps
from bot.blocks.ids import Action, Callback
from bot.operations.intake import flatten_state
from bot.trackers.events import IssueEvent, Outcome
from bot.operations.triage import CARD_PURPOSE
from storage import outbox
from storage.database import DatabaseUnavailable
from storage.models import FrictionPoint

log = logging.getLogger(__name__)


def sync_card(*, session: Session, point: FrictionPoint, why: str) -> None:
    """Queue an in-place update of the point's card (rendered when sent, so it shows the latest)."""
    if point.card_ts:
        outbox.enqueue(session=session, dedupe_key=f"card-sync:{point.id}:{why}", method="chat.update",
                       payload={}, friction_point_id=point.id, purpose=CARD_PURPOSE)


def apply_and_queue(*, session: Session, event: IssueEvent, policy: Policy) -> closing.Closure | None:
    """Apply a tracker event and queue, in the same transaction, one notice per reporter,
    the card updates and the announcement. Repeats of the same news queue nothing."""
    closure = closing.apply_issue_event(session=session, event=event)
    if closure is None:
        return None
    prefix = policy.reference_prefix
    for notice in closure.notices:
        point = session.get(FrictionPoint, notice.friction_point_id)  # the reporter's own report
        message = build_closure_notice(f"{prefix}-{point.id}", point, notice, event.url, event.title,
                                       not_planned_message=policy.closing.not_planned_message)
        outbox.enqueue(session=session, dedupe_key=f"closure-notice:{notice.id}", method="chat.postMessage",
                       payload={"channel": notice.user_id, **message}, friction_point_id=point.id,
                       workspace=point.reporter_workspace(notice.user_id))
    for point in closure.points:
        sync_card(session=session, point=point, why=f"closure:{event.tracker}:{event.key}:{closure.closure}")
    channel = policy.closing.announce_channel
    if channel and policy.closing.announce == "per_closure" and event.outcome == Outcome.fixed and closure.points:
        post = build_announcement(prefix, event.key, event.url, event.title, closure.points, len(closure.notices))
        outbox.enqueue(session=session, dedupe_key=f"announce:{event.tracker}:{event.key}:{closure.closure}",
                       method="chat.postMessage", payload={"channel": channel, **post})
    return closure


def answer_notice(*, session: Session, notice_id: int, user_id: str, works: bool, comment: str | None, prefix: str) -> str | None:
    """Record the answer; "still broken" alerts the hosts in the card's thread. Returns the ref."""
    recorded = closing.record_feedback(session=session, notice_id=notice_id, user_id=user_id, works=works, comment=comment)
    if recorded is None:
        return None
    notice, point = recorded
    ref = f"{prefix}-{point.id}"
    if not works:
        sync_card(session=session, point=point, why=f"broken:{notice.id}")
        if point.card_ts:
            outbox.enqueue(session=session, dedupe_key=f"still-broken:{notice.id}", method="chat.postMessage",
                           payload={"channel": point.card_channel, "thread_ts": point.card_ts,
                                    **build_still_broken_alert(ref, point, user_id, comment)},
                           friction_point_id=point.id)
    return ref


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
            ref = await deps.db.run(answer_notice, notice_id=int(view["private_metadata"]), user_id=user,
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
        deps.sender.wake()
