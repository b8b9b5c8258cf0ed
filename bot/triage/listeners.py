"""Triage in Slack: the card in the triage channel and its actions, the triage modals, and the
host-only commands. Only hosts may triage; anyone else gets an ephemeral refusal and nothing changes."""

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.ids import PointMetadata
from bot.intake.service import first_word, flatten_state
from bot.references import format_ref, parse_ref
from bot.runtime.context import Deps, Subcommand
from bot.runtime.listening import answers_outage
from bot.runtime.slack_reads import read_deadline
from bot.surveys.csat import csat_followup_hook
from bot.trackers import IssueRef, parse_issue_url
from bot.triage import due_queue
from bot.triage import flows as triage_flow
from bot.triage import service as triage
from bot.triage.blocks import build_queue_list, build_triage_modal, point_id_from_block
from bot.triage.ids import TRIAGE_INPUT_BLOCK, TriageAction, TriageCallback
from storage.models import FrictionPoint, as_utc

log = logging.getLogger(__name__)

NOT_A_HOST = "Only office-hours hosts can triage reports. Nothing was changed."
ACK_BUDGET = 2.0  # seconds a view submission may spend on Slack reads before it acks (Slack allows 3)
MODAL_FOR = {
    TriageAction.link: TriageCallback.link,
    TriageAction.merge: TriageCallback.merge,
    TriageAction.resolve: TriageCallback.resolve,
    TriageAction.decline: TriageCallback.decline,
}


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
        if card is None or point.card_channel is None or point.card_ts is None:
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


def card_updates(deps: Deps) -> CardUpdates:
    """The app's one ``CardUpdates`` (``deps.once``): the serving app and its replay twin update
    the same cards, so they keep one order."""
    return CardUpdates(deps.ref)


def after_resolve(deps: Deps) -> Callable | None:
    """What a resolve's transaction does besides (``deps.once``): queue the CSAT follow-up
    (``bot.surveys.csat``), or None when the team policy turns it off."""
    return csat_followup_hook(deps.policy)


# ---------------------------------------------------------------- shared by the listeners below


async def refresh_card(deps: Deps, client: AsyncWebClient, point_id: int) -> None:
    """Update the card in place from the latest state, loaded now."""
    point, card = await deps.db.run(triage_flow.load_card, policy=deps.policy, point_id=point_id)
    if point is not None:
        await deps.once(card_updates).show(client, point, card)


async def apply(deps: Deps, user: str, change: Callable, client: AsyncWebClient, **kwargs) -> str | None:
    """Apply ``change`` as ``user`` and update the card; returns what to tell them if it did not
    apply. ``DatabaseUnavailable`` goes to the caller (``answers_outage``, the subcommand dispatcher)."""
    if not await deps.hosts.is_host(user):
        return NOT_A_HOST
    try:
        applied, card = await deps.db.run(triage_flow.apply_and_render, policy=deps.policy, action=change, actor=user,
                                          on_resolved=deps.once(after_resolve), **kwargs)
    except triage.TriageError as exc:
        return str(exc)
    await deps.once(card_updates).show(client, applied.point, card)
    if applied.change == triage.Change.merged and applied.point.duplicate_of_id:
        await refresh_card(deps, client, applied.point.duplicate_of_id)
    return None


async def tell(respond: AsyncRespond, text: str | None) -> None:
    if text:
        await respond(response_type="ephemeral", replace_original=False, text=text)


def card_point(action: dict) -> int | None:
    """The report a card's button or menu is about: its value, else its block's id."""
    value = action.get("value")
    return int(value) if value and value.isdigit() else point_id_from_block(action.get("block_id", ""))


def look_up(deps: Deps, issue: IssueRef) -> None:
    """Learn a linked issue's identity from its tracker, after the ack: the tracker's API may be slow."""
    if deps.identities is not None:  # always set by the app factory
        deps.identities.soon(issue.tracker, issue.key, issue.url)


# ---------------------------------------------------------------- the card's buttons and menus


@answers_outage("that change")
async def on_assign_me(ack: AsyncAck, body: dict, action: dict, client: AsyncWebClient, respond: AsyncRespond, deps: Deps) -> None:
    await ack()
    user = body["user"]["id"]
    await tell(respond, await apply(deps, user, triage.assign, client, point_id=card_point(action), assignee=user))


@answers_outage("that change")
async def on_assign(ack: AsyncAck, body: dict, action: dict, client: AsyncWebClient, respond: AsyncRespond, deps: Deps) -> None:
    await ack()
    user, assignee, point_id = body["user"]["id"], action.get("selected_user"), card_point(action)
    if assignee and not await deps.hosts.is_host(assignee) and await deps.hosts.is_host(user):
        await tell(respond, f"<@{assignee}> is not an office-hours host; pick a host.")
        if point_id is not None:
            await refresh_card(deps, client, point_id)
        return
    await tell(respond, await apply(deps, user, triage.assign, client, point_id=point_id, assignee=assignee))


@answers_outage("that change")
async def on_severity(ack: AsyncAck, body: dict, action: dict, client: AsyncWebClient, respond: AsyncRespond, deps: Deps) -> None:
    await ack()
    severity = (action.get("selected_option") or {}).get("value")
    await tell(respond, await apply(deps, body["user"]["id"], triage.set_severity, client, point_id=card_point(action), severity=severity))


@answers_outage("that change")
async def on_tags(ack: AsyncAck, body: dict, action: dict, client: AsyncWebClient, respond: AsyncRespond, deps: Deps) -> None:
    await ack()
    chosen = [o["value"] for o in action.get("selected_options") or [] if deps.policy.taxonomy.has(o["value"])]
    await tell(respond, await apply(deps, body["user"]["id"], triage.set_tags, client, point_id=card_point(action), categories=chosen))


@answers_outage("that change")
async def on_merge_suggested(ack: AsyncAck, body: dict, action: dict, client: AsyncWebClient, respond: AsyncRespond, deps: Deps) -> None:
    await ack()
    point_id, into = point_id_from_block(action.get("block_id", "")), action.get("value", "")
    if point_id is None or not into.isdigit():
        return
    await tell(respond, await apply(deps, body["user"]["id"], triage.merge, client, point_id=point_id, into_id=int(into)))


@answers_outage("that change")
async def on_reopen(ack: AsyncAck, body: dict, action: dict, client: AsyncWebClient, respond: AsyncRespond, deps: Deps) -> None:
    await ack()
    await tell(respond, await apply(deps, body["user"]["id"], triage.reopen, client, point_id=card_point(action)))


async def on_modal_button(ack: AsyncAck, body: dict, action: dict, client: AsyncWebClient, respond: AsyncRespond, deps: Deps) -> None:
    """Link issue, Mark duplicate, Resolve, Won't fix: their modal (hosts only)."""
    await ack()
    if not await deps.hosts.is_host(body["user"]["id"]):
        await tell(respond, NOT_A_HOST)
        return
    point_id = card_point(action)
    if point_id is None:
        return  # a card always names its report: a forged click
    view = build_triage_modal(MODAL_FOR[TriageAction(action["action_id"])], deps.ref(point_id), point_id)
    await client.views_open(trigger_id=body["trigger_id"], view=view)


# ---------------------------------------------------------------- the triage modals


async def submit(deps: Deps, ack: AsyncAck, body: dict, view: dict, client: AsyncWebClient, change: Callable, **kwargs) -> str | None:
    """Apply the modal's change and ack: its error under the input, or the modal closes."""
    # Answered before the ack: a rate-limited host lookup must not outlast Slack's 3 seconds.
    with read_deadline(ACK_BUDGET):
        error = await apply(deps, body["user"]["id"], change, client, point_id=PointMetadata.load(view["private_metadata"]).point_id, **kwargs)
    if error:
        await ack(response_action="errors", errors={TRIAGE_INPUT_BLOCK: error[:300]})
    else:
        await ack()
    return error


def modal_input(view: dict) -> str:
    return str(flatten_state(view["state"]["values"]).get(TRIAGE_INPUT_BLOCK) or "").strip()


@answers_outage("that change", block=TRIAGE_INPUT_BLOCK)
async def on_link_submitted(ack: AsyncAck, body: dict, view: dict, client: AsyncWebClient, deps: Deps) -> None:
    issue = parse_issue_url(modal_input(view))
    if issue is None:
        await ack(response_action="errors", errors={TRIAGE_INPUT_BLOCK: "Paste the URL of a GitHub, GitLab, Jira or Linear issue (or a GitHub PR)."})
        return
    if not await submit(deps, ack, body, view, client, triage.link, issue=issue):
        look_up(deps, issue)


@answers_outage("that change", block=TRIAGE_INPUT_BLOCK)
async def on_merge_submitted(ack: AsyncAck, body: dict, view: dict, client: AsyncWebClient, deps: Deps) -> None:
    prefix = deps.policy.reference_prefix
    into = parse_ref(prefix, modal_input(view))
    if into is None:
        await ack(response_action="errors", errors={TRIAGE_INPUT_BLOCK: f"Give a reference like {format_ref(prefix, 12)}."})
        return
    await submit(deps, ack, body, view, client, triage.merge, into_id=into)


@answers_outage("that change", block=TRIAGE_INPUT_BLOCK)
async def on_resolve_submitted(ack: AsyncAck, body: dict, view: dict, client: AsyncWebClient, deps: Deps) -> None:
    await submit(deps, ack, body, view, client, triage.resolve, note=modal_input(view) or None)


@answers_outage("that change", block=TRIAGE_INPUT_BLOCK)
async def on_decline_submitted(ack: AsyncAck, body: dict, view: dict, client: AsyncWebClient, deps: Deps) -> None:
    reason = modal_input(view)
    if not reason:
        await ack(response_action="errors", errors={TRIAGE_INPUT_BLOCK: "Say why: the reporter will read it."})
        return
    await submit(deps, ack, body, view, client, triage.decline, reason=reason)


# ---------------------------------------------------------- commands (routed from the slash command)


async def queue_command(deps: Deps, user: str, args: str, respond: AsyncRespond, client: AsyncWebClient, trigger_id: str) -> None:
    """``/platform-feedback queue``: the open queue (hosts only)."""
    if not await deps.hosts.is_host(user):
        await respond(response_type="ephemeral", text=NOT_A_HOST)
        return
    queue = await deps.db.run(due_queue.queue, policy=deps.policy, limit=20)
    order = "by what is due first" if queue.by_due else "by priority"
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*Open queue*, {order}"}},
              *build_queue_list(deps.policy.reference_prefix, queue.points, clocks=queue.clocks, now=queue.now)]
    await respond(response_type="ephemeral", text="Open queue", blocks=blocks)


async def link_command(deps: Deps, user: str, args: str, respond: AsyncRespond, client: AsyncWebClient, trigger_id: str) -> None:
    """``/platform-feedback link FB-12 <issue URL>``."""
    prefix = deps.policy.reference_prefix
    ref, url = first_word(args)
    point_id, issue = parse_ref(prefix, ref), parse_issue_url(url.strip())
    if point_id is None or issue is None:
        await respond(response_type="ephemeral",
                      text=f"Usage: `/platform-feedback link {format_ref(prefix, 12)} <issue or PR URL>` (GitHub, GitLab, Jira, Linear).")
        return
    error = await apply(deps, user, triage.link, client, point_id=point_id, issue=issue)
    await respond(response_type="ephemeral", text=error or f"Linked {format_ref(prefix, point_id)} to {issue.key}.")
    if not error:
        look_up(deps, issue)


async def resolve_command(deps: Deps, user: str, args: str, respond: AsyncRespond, client: AsyncWebClient, trigger_id: str) -> None:
    """``/platform-feedback resolve FB-12 [what was done]``."""
    prefix = deps.policy.reference_prefix
    ref, note = first_word(args)
    point_id = parse_ref(prefix, ref)
    if point_id is None:
        await respond(response_type="ephemeral", text=f"Usage: `/platform-feedback resolve {format_ref(prefix, 12)} [what was done]`.")
        return
    error = await apply(deps, user, triage.resolve, client, point_id=point_id, note=note.strip() or None)
    await respond(response_type="ephemeral", text=error or f"Resolved {format_ref(prefix, point_id)}.")


COMMANDS: dict[str, Subcommand] = {"queue": queue_command, "link": link_command, "resolve": resolve_command}


def register(app: AsyncApp) -> None:
    """The wiring table: which Slack request each listener answers."""
    app.action(TriageAction.assign_me)(on_assign_me)
    app.action(TriageAction.assign)(on_assign)
    app.action(TriageAction.severity)(on_severity)
    app.action(TriageAction.tags)(on_tags)
    app.action(TriageAction.merge_suggested)(on_merge_suggested)
    app.action(TriageAction.reopen)(on_reopen)
    for modal_button in reversed(MODAL_FOR):  # decline, resolve, merge, link: the order they were registered in
        app.action(modal_button)(on_modal_button)
    app.view(TriageCallback.link)(on_link_submitted)
    app.view(TriageCallback.merge)(on_merge_submitted)
    app.view(TriageCallback.resolve)(on_resolve_submitted)
    app.view(TriageCallback.decline)(on_decline_submitted)
