"""Triage in Slack: the card in the triage channel and its actions, the triage modals, and the
host-only commands. Only hosts may triage; anyone else gets an ephemeral refusal and nothing changes."""

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.ids import Action, Callback, PointMetadata
from bot.intake.blocks import build_try_again
from bot.intake.service import first_word, flatten_state
from bot.references import format_ref, parse_ref
from bot.runtime.context import Deps
from bot.runtime.slack_reads import read_deadline
from bot.trackers import parse_issue_url
from bot.triage import due_queue
from bot.triage import flows as triage_flow
from bot.triage import service as triage
from bot.triage.blocks import (
    TRIAGE_INPUT_BLOCK,
    build_queue_list,
    build_triage_modal,
    point_id_from_block,
)
from storage.database import DatabaseUnavailable
from storage.models import FrictionPoint, as_utc

log = logging.getLogger(__name__)

NOT_A_HOST = "Only office-hours hosts can triage reports. Nothing was changed."
ACK_BUDGET = 2.0  # seconds a view submission may spend on Slack reads before it acks (Slack allows 3)


class CardUpdates:
    """Triage cards updated in place: one update at a time per card, and none from an older state
    than the last one sent (two clicks' cards, each rendered in its own transaction, may come out
    in either order), so Slack is never left showing an older state."""

    def __init__(self, ref: Callable[[int], str]):
        self.ref = ref
        self.locks: dict[int, asyncio.Lock] = {}
        self.shown: dict[int, datetime] = {}  # per card, the point's ``updated_at`` in the last update sent

    async def show(self, client: AsyncWebClient, point: FrictionPoint, card: dict | None) -> bool:
        """Update ``point``'s card with ``card``, rendered from ``point`` as it is here. False: not
        sent (no card: not posted yet, and the queued post renders the latest state; or older than
        what was sent)."""
        if card is None:
            return False
        async with self.locks.setdefault(point.id, asyncio.Lock()):
            version = as_utc(point.updated_at)
            if point.id in self.shown and version < self.shown[point.id]:
                return False
            self.shown[point.id] = version
            try:
                await client.chat_update(channel=point.card_channel, ts=point.card_ts, **card)
            except SlackApiError as exc:
                log.warning("card %s not updated: %s", self.ref(point.id), exc.response.get("error"))
            return True


def register(app: AsyncApp, deps: Deps, *, on_resolved: Callable | None = None) -> None:
    prefix = deps.policy.reference_prefix
    cards = CardUpdates(deps.ref)

    async def refresh_card(client: AsyncWebClient, point_id: int) -> None:
        """Update the card in place from the latest state, loaded now."""
        point, card = await deps.db.run(triage_flow.load_card, policy=deps.policy, point_id=point_id)
        if point is not None:
            await cards.show(client, point, card)

    async def apply(user: str, action: Callable, client: AsyncWebClient, **kwargs) -> str | None:
        """Apply a change as ``user`` and update the card; returns what to tell them if it did not apply."""
        if not await deps.hosts.is_host(user):
            return NOT_A_HOST
        try:
            applied, card = await deps.db.run(triage_flow.apply_and_render, policy=deps.policy, action=action, actor=user,
                                              on_resolved=on_resolved, **kwargs)
        except triage.TriageError as exc:
            return str(exc)
        except DatabaseUnavailable:
            return build_try_again("that change")["text"]
        await cards.show(client, applied.point, card)
        if applied.change == triage.Change.merged and applied.point.duplicate_of_id:
            await refresh_card(client, applied.point.duplicate_of_id)
        return None

    async def tell(respond: AsyncRespond, text: str | None) -> None:
        if text:
            await respond(response_type="ephemeral", replace_original=False, text=text)

    def card_point(body: dict, action: dict) -> int | None:
        value = action.get("value")
        return int(value) if value and value.isdigit() else point_id_from_block(action.get("block_id", ""))

    @app.action(Action.triage_assign_me)
    async def on_assign_me(ack: AsyncAck, body: dict, action: dict, client: AsyncWebClient, respond: AsyncRespond):
        await ack()
        user = body["user"]["id"]
        await tell(respond, await apply(user, triage.assign, client, point_id=card_point(body, action), assignee=user))

    @app.action(Action.triage_assign)
    async def on_assign(ack: AsyncAck, body: dict, action: dict, client: AsyncWebClient, respond: AsyncRespond):
        await ack()
        user, assignee = body["user"]["id"], action.get("selected_user")
        if assignee and not await deps.hosts.is_host(assignee) and await deps.hosts.is_host(user):
            await tell(respond, f"<@{assignee}> is not an office-hours host; pick a host.")
            await refresh_card(client, card_point(body, action))
            return
        await tell(respond, await apply(user, triage.assign, client, point_id=card_point(body, action), assignee=assignee))

    @app.action(Action.triage_severity)
    async def on_severity(ack: AsyncAck, body: dict, action: dict, client: AsyncWebClient, respond: AsyncRespond):
        await ack()
        severity = (action.get("selected_option") or {}).get("value")
        await tell(respond, await apply(body["user"]["id"], triage.set_severity, client, point_id=card_point(body, action), severity=severity))

    @app.action(Action.triage_tags)
    async def on_tags(ack: AsyncAck, body: dict, action: dict, client: AsyncWebClient, respond: AsyncRespond):
        await ack()
        chosen = [o["value"] for o in action.get("selected_options") or [] if deps.policy.taxonomy.has(o["value"])]
        await tell(respond, await apply(body["user"]["id"], triage.set_tags, client, point_id=card_point(body, action), categories=chosen))

    @app.action(Action.triage_merge_suggested)
    async def on_merge_suggested(ack: AsyncAck, body: dict, action: dict, client: AsyncWebClient, respond: AsyncRespond):
        await ack()
        point_id, into = point_id_from_block(action.get("block_id", "")), action.get("value", "")
        if point_id is None or not into.isdigit():
            return
        await tell(respond, await apply(body["user"]["id"], triage.merge, client, point_id=point_id, into_id=int(into)))

    @app.action(Action.triage_reopen)
    async def on_reopen(ack: AsyncAck, body: dict, action: dict, client: AsyncWebClient, respond: AsyncRespond):
        await ack()
        await tell(respond, await apply(body["user"]["id"], triage.reopen, client, point_id=card_point(body, action)))

    modal_for = {
        Action.triage_link: Callback.triage_link,
        Action.triage_merge: Callback.triage_merge,
        Action.triage_resolve: Callback.triage_resolve,
        Action.triage_decline: Callback.triage_decline,
    }

    @app.action(Action.triage_link)
    @app.action(Action.triage_merge)
    @app.action(Action.triage_resolve)
    @app.action(Action.triage_decline)
    async def on_modal_button(ack: AsyncAck, body: dict, action: dict, client: AsyncWebClient, respond: AsyncRespond):
        await ack()
        if not await deps.hosts.is_host(body["user"]["id"]):
            await tell(respond, NOT_A_HOST)
            return
        point_id = card_point(body, action)
        view = build_triage_modal(modal_for[Action(action["action_id"])], deps.ref(point_id), point_id)
        await client.views_open(trigger_id=body["trigger_id"], view=view)

    async def submit(ack: AsyncAck, body: dict, view: dict, client: AsyncWebClient, action: Callable, **kwargs):
        # Answered before the ack: a rate-limited host lookup must not outlast Slack's 3 seconds.
        with read_deadline(ACK_BUDGET):
            error = await apply(body["user"]["id"], action, client, point_id=PointMetadata.load(view["private_metadata"]).point_id, **kwargs)
        if error:
            await ack(response_action="errors", errors={TRIAGE_INPUT_BLOCK: error[:300]})
        else:
            await ack()
        return error

    def modal_input(view: dict) -> str:
        return str(flatten_state(view["state"]["values"]).get(TRIAGE_INPUT_BLOCK) or "").strip()

    @app.view(Callback.triage_link)
    async def on_link_submitted(ack: AsyncAck, body: dict, view: dict, client: AsyncWebClient):
        issue = parse_issue_url(modal_input(view))
        if issue is None:
            await ack(response_action="errors", errors={TRIAGE_INPUT_BLOCK: "Paste the URL of a GitHub, GitLab, Jira or Linear issue (or a GitHub PR)."})
            return
        if not await submit(ack, body, view, client, triage.link, issue=issue):
            deps.identities.soon(issue.tracker, issue.key, issue.url)  # after the ack: the tracker's API may be slow

    @app.view(Callback.triage_merge)
    async def on_merge_submitted(ack: AsyncAck, body: dict, view: dict, client: AsyncWebClient):
        into = parse_ref(prefix, modal_input(view))
        if into is None:
            await ack(response_action="errors", errors={TRIAGE_INPUT_BLOCK: f"Give a reference like {prefix}-12."})
            return
        await submit(ack, body, view, client, triage.merge, into_id=into)

    @app.view(Callback.triage_resolve)
    async def on_resolve_submitted(ack: AsyncAck, body: dict, view: dict, client: AsyncWebClient):
        await submit(ack, body, view, client, triage.resolve, note=modal_input(view) or None)

    @app.view(Callback.triage_decline)
    async def on_decline_submitted(ack: AsyncAck, body: dict, view: dict, client: AsyncWebClient):
        reason = modal_input(view)
        if not reason:
            await ack(response_action="errors", errors={TRIAGE_INPUT_BLOCK: "Say why: the reporter will read it."})
            return
        await submit(ack, body, view, client, triage.decline, reason=reason)

    # ---------------------------------------------------------- commands (routed from the slash command)

    async def queue_command(user: str, respond: AsyncRespond) -> None:
        if not await deps.hosts.is_host(user):
            await respond(response_type="ephemeral", text=NOT_A_HOST)
            return
        try:
            queue = await deps.db.run(due_queue.queue, policy=deps.policy, limit=20)
        except DatabaseUnavailable:
            await respond(response_type="ephemeral", **build_try_again("the queue"))
            return
        order = "by what is due first" if queue.by_due else "by priority"
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*Open queue*, {order}"}},
                  *build_queue_list(prefix, queue.points, clocks=queue.clocks, now=queue.now)]
        await respond(response_type="ephemeral", text="Open queue", blocks=blocks)

    async def link_command(user: str, args: str, respond: AsyncRespond, client: AsyncWebClient) -> None:
        ref, url = first_word(args)
        point_id, issue = parse_ref(prefix, ref), parse_issue_url(url.strip())
        if point_id is None or issue is None:
            await respond(response_type="ephemeral", text=f"Usage: `/platform-feedback link {prefix}-12 <issue or PR URL>` (GitHub, GitLab, Jira, Linear).")
            return
        error = await apply(user, triage.link, client, point_id=point_id, issue=issue)
        await respond(response_type="ephemeral", text=error or f"Linked {format_ref(prefix, point_id)} to {issue.key}.")
        if not error:
            deps.identities.soon(issue.tracker, issue.key, issue.url)

    async def resolve_command(user: str, args: str, respond: AsyncRespond, client: AsyncWebClient) -> None:
        ref, note = first_word(args)
        point_id = parse_ref(prefix, ref)
        if point_id is None:
            await respond(response_type="ephemeral", text=f"Usage: `/platform-feedback resolve {prefix}-12 [what was done]`.")
            return
        error = await apply(user, triage.resolve, client, point_id=point_id, note=note.strip() or None)
        await respond(response_type="ephemeral", text=error or f"Resolved {format_ref(prefix, point_id)}.")

    deps.commands["queue"] = lambda user, args, respond, client: queue_command(user, respond)
    deps.commands["link"] = link_command
    deps.commands["resolve"] = resolve_command
