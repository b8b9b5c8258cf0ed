"""The moment-of-use question's buttons and modal, as module-level listeners, and ``register``:
the wiring table. The sealing keys and the settler are the app's (``bot.usage.slack_reads``), the
minute's job is ``bot.usage.jobs`` and the DM's outbox hook is in ``handlers.outbox_hooks``."""

import json
import re

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.runtime.context import Deps
from bot.runtime.listening import answers_outage
from bot.text import from_slack
from bot.usage import answers, csat
from bot.usage.blocks import build_comment_modal, build_question, build_thanks
from bot.usage.ids import COMMENT_INPUT, FILE_CHOICE, FILE_VALUE, UsageAction, UsageBlock, UsageCallback
from bot.usage.slack_reads import keys_for


def _ask_id(value: object) -> int | None:
    raw = str(value or "").split("|", 1)[0]
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 12 else None


@answers_outage("your score")
async def on_score(ack: AsyncAck, body: dict, action: dict, respond: AsyncRespond, deps: Deps) -> None:
    """A score button: sealed under the person's pseudonym (their id from the signed request)."""
    await ack()
    parts = str(action.get("value") or "").split("|")
    ask_id = _ask_id(parts[0])
    if ask_id is None or len(parts) != 2 or parts[1] not in {"1", "2", "3", "4", "5"}:
        return
    done = await deps.db.run(csat.record, keys=deps.once(keys_for), ask_id=ask_id, user_id=body["user"]["id"], score=int(parts[1]))
    if done.status == "closed":
        await respond(response_type="ephemeral", replace_original=False, text=build_thanks(closed=True))
    elif done.status == "ok":
        cap = deps.policy.usage.capability(done.capability)
        if cap is not None:
            await respond(replace_original=True, **build_question(cap, ask_id, deps.policy.usage.csat.min_group, chosen=done.score))


@answers_outage("your comment")
async def on_comment(ack: AsyncAck, body: dict, action: dict, client: AsyncWebClient, respond: AsyncRespond, deps: Deps) -> None:
    """"What got in the way?": the modal (with the choice to file it, after a low score)."""
    await ack()
    ask_id = _ask_id(action.get("value"))
    if ask_id is None:
        return
    status, capability, score = await deps.db.run(answers.score_of, keys=deps.once(keys_for), ask_id=ask_id, user_id=body["user"]["id"])
    cap = deps.policy.usage.capability(capability)
    if status == "closed":
        await respond(response_type="ephemeral", replace_original=False, text=build_thanks(closed=True))
        return
    if status != "ok" or cap is None:
        return
    area = deps.policy.taxonomy.label(cap.area) if cap.area else None
    low = score is not None and score <= csat.LOW_SCORE
    await client.views_open(trigger_id=body["trigger_id"], view=build_comment_modal(cap, ask_id, low_score=low, area_label=area))


@answers_outage("your comment", block=UsageBlock.comment)
async def on_comment_submitted(ack: AsyncAck, body: dict, view: dict, deps: Deps) -> None:
    """Stored before the ack (acked means kept); the modal stays open with the text when the database is down."""
    try:
        ask_id = int(json.loads(view.get("private_metadata") or "{}")["ask"])
    except (ValueError, KeyError, TypeError):
        await ack(response_action="errors", errors={UsageBlock.comment: "This form is out of date. Please open it again."})
        return
    values = (view.get("state") or {}).get("values") or {}
    comment = from_slack(str(((values.get(UsageBlock.comment) or {}).get(COMMENT_INPUT) or {}).get("value") or "")).strip()[:2000]
    chosen = ((values.get(UsageBlock.file) or {}).get(FILE_CHOICE) or {}).get("selected_options") or []
    file_it = any(o.get("value") == FILE_VALUE for o in chosen)
    user = body["user"]
    done, ref = await deps.db.run(answers.comment_and_file, keys=deps.once(keys_for), policy=deps.policy, ask_id=ask_id, user_id=user["id"],
                                  team_id=user.get("team_id") or (body.get("team") or {}).get("id") or "",
                                  enterprise_id=(body.get("enterprise") or {}).get("id"), comment=comment, file_it=file_it)
    if done.status == "closed":
        await ack(response_action="errors", errors={UsageBlock.comment: build_thanks(closed=True)})
        return
    if done.status != "ok":
        await ack(response_action="errors", errors={UsageBlock.comment: "Choose a score first (the buttons in the message)."})
        return
    await ack(response_action="update", view={
        "type": "modal", "title": {"type": "plain_text", "text": "Thank you"}, "close": {"type": "plain_text", "text": "Close"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": build_thanks(filed_ref=ref)}}]})


def register(app: AsyncApp) -> None:
    """The wiring table: which Slack request each listener answers."""
    app.action(re.compile(rf"^{UsageAction.score}:"))(on_score)
    app.action(UsageAction.comment)(on_comment)
    app.view(UsageCallback.comment_modal)(on_comment_submitted)
