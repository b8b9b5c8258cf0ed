"""Intake: the slash command, the message shortcut, the report modal and the :ticket: reaction."""

import logging

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.emoji_names import same_emoji
from bot.ids import Action, Block, Callback
from bot.intake.blocks import (
    ReportMetadata,
    build_filed_message,
    build_report_modal,
    build_reports_list,
    build_try_again,
    build_usage,
)
from bot.intake.drafts import new_draft
from bot.intake.filing import DetailsRefused, add_details, details_point, file_report
from bot.intake.service import CommandKind, parse_command, read_modal, suggest_categories
from bot.messages import message_text
from bot.progress.stage import started_points
from bot.runtime.context import Deps
from bot.runtime.listening import try_again
from bot.runtime.slack_reads import Unread, fetch_message, remember_permalink
from bot.text import from_slack
from storage import friction
from storage.database import DatabaseUnavailable
from storage.models import Source

log = logging.getLogger(__name__)

FORM_NOT_OPENED = ("Slack did not let me open the form just now (`{error}`). Please run `/platform-feedback` again, "
                   "or type your report after it: `/platform-feedback the staging VPN drops every hour`.")
SHORTCUT_NOT_OPENED = "Slack did not let me open the form just now (`{error}`). Please choose the shortcut on the message again."
UNREAD_TEXT = "(Slack did not let the bot read this message; the link to it is on the report.)"


def _code(exc: SlackApiError) -> str:
    """Slack's error code, and nothing else of its answer."""
    error = str((exc.response.data or {}).get("error", "") if isinstance(exc.response.data, dict) else "")
    return "".join(c for c in error if c.isalnum() or c == "_")[:60] or "error"


def unread_note(error: str) -> str:
    """What the reactor is told when their reaction was filed without the message's words."""
    error = "".join(c for c in error if c.isalnum() or c in "_ ")[:60]  # Slack's error code, nothing else
    return (f"I couldn't read the message itself (Slack said `{error}`), so the report only points at it. "
            "Press *Add details* to say what got in your way.")


def register(app: AsyncApp, deps: Deps) -> None:
    policy = deps.policy
    filing = {"prefix": policy.reference_prefix, "triage_channel": policy.triage.channel}

    @app.command("/platform-feedback")
    async def on_command(ack: AsyncAck, command: dict, client: AsyncWebClient, respond: AsyncRespond):
        parsed = parse_command(command.get("text", ""))
        if parsed.kind in (CommandKind.help, CommandKind.unknown):
            unknown = parsed.text if parsed.kind == CommandKind.unknown else None
            await ack(response_type="ephemeral", **build_usage(policy.intake.reaction, unknown=unknown, prefix=policy.reference_prefix))
            return
        if parsed.kind != CommandKind.report:
            await ack()
        user, team = command["user_id"], command["team_id"]
        if parsed.kind == CommandKind.modal:
            metadata = ReportMetadata(source=Source.modal, channel_id=command.get("channel_id"))
            try:
                await client.views_open(trigger_id=command["trigger_id"], view=build_report_modal(policy.taxonomy, metadata))
            except SlackApiError as exc:
                # Slack lets a trigger open a form within 3 s, once (expired_trigger_id,
                # exchanged_trigger_id): say so, and how to report without the form.
                await respond(response_type="ephemeral", text=FORM_NOT_OPENED.format(error=_code(exc)))
            return
        if parsed.kind == CommandKind.mine:
            try:
                points = await deps.db.run(friction.reports_of, user_id=user)
                started = await deps.db.run(started_points, point_ids=[p.id for p in points])
            except DatabaseUnavailable:
                await respond(response_type="ephemeral", **build_try_again("your request"))
                return
            await respond(
                response_type="ephemeral",
                text="Your reports",
                blocks=build_reports_list(policy.reference_prefix, points, heading="Your reports", started=started),
            )
            return
        if parsed.kind == CommandKind.sub:
            handler = deps.commands[parsed.name]
            try:
                await handler(deps, user, parsed.text, respond, client, command.get("trigger_id", ""))
            except DatabaseUnavailable:  # every subcommand's one answer to an outage (bot.runtime.listening)
                await respond(response_type="ephemeral", **try_again("that"))
            return
        text = from_slack(parsed.text)
        draft = new_draft(
            taxonomy=policy.taxonomy, source=Source.command, intake_key=f"command:{command['trigger_id']}", team_id=team, filed_by=user,
            text=text, channel_id=command.get("channel_id"), enterprise_id=command.get("enterprise_id"),
        )
        # Acked means kept: a one-line report is stored before the ack, and the ack is its answer.
        # A process killed before that answers nothing, and Slack tells the person the command failed.
        try:
            filed = await deps.db.run(file_report, draft=draft, **filing)
        except DatabaseUnavailable:
            await ack(response_type="ephemeral", **build_try_again("your report", text))
            return
        await ack(response_type="ephemeral", **build_filed_message(deps.ref(filed.point.id), filed.point, with_details_button=True))

    @app.shortcut(Callback.report_shortcut)
    async def on_message_shortcut(ack: AsyncAck, shortcut: dict, client: AsyncWebClient, respond: AsyncRespond):
        await ack()
        message = shortcut.get("message") or {}
        metadata = ReportMetadata(
            source=Source.shortcut, channel_id=shortcut.get("channel", {}).get("id"), message_ts=message.get("ts")
        )
        text = message_text(message)
        view = build_report_modal(policy.taxonomy, metadata, text=text, categories=list(suggest_categories(text, policy.taxonomy)))
        try:
            await client.views_open(trigger_id=shortcut["trigger_id"], view=view)
        except SlackApiError as exc:  # expired_trigger_id: a message shortcut can still be answered by its response_url
            log.warning("report form not opened for a message shortcut: %s", _code(exc))
            if shortcut.get("response_url"):
                await respond(response_type="ephemeral", text=SHORTCUT_NOT_OPENED.format(error=_code(exc)))

    @app.action(Action.add_details)
    async def on_add_details(ack: AsyncAck, body: dict, action: dict, client: AsyncWebClient, respond: AsyncRespond):
        await ack()
        value = action.get("value") or ""
        if not value.isdigit():
            return
        try:
            point = await deps.db.run(details_point, point_id=int(value), user=body["user"]["id"], prefix=policy.reference_prefix)
        except DatabaseUnavailable:
            await respond(response_type="ephemeral", replace_original=False, **build_try_again("your details"))
            return
        except DetailsRefused as refused:
            await respond(response_type="ephemeral", replace_original=False, text=str(refused))
            return
        view = build_report_modal(
            policy.taxonomy,
            ReportMetadata(source=point.source, point_id=point.id),
            text=point.text,
            categories=[t.category for t in point.tags if not t.automatic],
            severity=point.severity,
            minutes_lost=point.minutes_lost,
            kind=point.kind,
            link_url=point.link_url,
        )
        await client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.view(Callback.report_modal)
    async def on_report_submitted(ack: AsyncAck, body: dict, view: dict, client: AsyncWebClient):
        answers, errors = read_modal(view["state"]["values"], policy.taxonomy)
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        try:
            metadata = ReportMetadata.load(view.get("private_metadata"))
        except ValueError:
            await ack(response_action="errors", errors={Block.text: "This form is out of date. Please open it again."})
            return
        user, team = body["user"]["id"], body["user"].get("team_id") or body["team"]["id"]
        draft = new_draft(
            taxonomy=policy.taxonomy, source=metadata.source, intake_key=f"view:{view['id']}", team_id=team, filed_by=user,
            text=answers.text, max_text=None, categories=answers.categories, severity=answers.severity, minutes_lost=answers.minutes_lost,
            kind=answers.kind, link_url=answers.link_url, channel_id=metadata.channel_id, message_ts=metadata.message_ts,
            enterprise_id=(body.get("enterprise") or {}).get("id"),
        )
        try:
            if metadata.point_id is not None:
                # private_metadata comes back from the client: whose report it is is checked again here.
                await deps.db.run(add_details, point_id=metadata.point_id, user=user, draft=draft, prefix=policy.reference_prefix)
                await ack()
                return
            filed = await deps.db.run(file_report, draft=draft, confirm_by_dm=True, **filing)
        except DetailsRefused as refused:
            await ack(response_action="errors", errors=refused.errors)
            return
        except DatabaseUnavailable:
            # The modal stays open with everything typed in it: nothing is lost.
            await ack(
                response_action="errors",
                errors={Block.text: "We couldn't save this just now (our database did not answer). Please press Send to try again in a minute."},
            )
            return
        await ack()
        if filed.created and metadata.channel_id and metadata.message_ts:
            await remember_permalink(deps.db, client, filed.point.id, metadata.channel_id, metadata.message_ts)

    async def is_filing_reaction(event: dict) -> bool:
        # Any skin tone, any of the emoji's names (bot.emoji_names).
        return same_emoji(event.get("reaction") or "", policy.intake.reaction)

    # Only the filing emoji: other reactions go on to the listeners registered after this one.
    @app.event("reaction_added", matchers=[is_filing_reaction])
    async def on_reaction(body: dict, event: dict, client: AsyncWebClient):
        item = event.get("item") or {}
        if item.get("type") != "message":
            return
        channel, ts, reactor = item["channel"], item["ts"], event["user"]
        message = await fetch_message(client, channel, ts)
        if message is None:
            return  # deleted before we could read it
        unread = message if isinstance(message, Unread) else None
        if unread is not None and not unread.transient:  # e.g. not_in_channel: the bot may not read it
            log.warning("cannot read reacted message in %s: %s", channel, unread.error)
            return
        if unread is not None:
            # Slack would not give us the message now (rate limited beyond what we wait, down).
            # The event still says where it is and who wrote it: file that, and tell the reactor,
            # rather than drop a reaction Slack will not send again.
            log.warning("cannot read reacted message in %s (%s): filing what the event carries", channel, unread.error)
            text, author, thread_ts = UNREAD_TEXT, event.get("item_user"), None
        else:
            text, author, thread_ts = message_text(message) or "(a message with no text)", message.get("user"), message.get("thread_ts") or ts
        draft = new_draft(
            taxonomy=policy.taxonomy, source=Source.reaction, intake_key=f"message:{channel}:{ts}", team_id=body.get("team_id") or "",
            # The person who wrote the message hit the friction; bots' messages count for the reactor.
            filed_by=reactor, reporter_id=author or reactor, text=text, channel_id=channel, message_ts=ts, enterprise_id=body.get("enterprise_id"),
        )
        # DatabaseUnavailable here goes to the app's error handler, which keeps the event in the spool.
        filed = await deps.db.run(
            file_report, draft=draft, event_id=body["event_id"], thread_ts=thread_ts,
            unread_note=unread and unread_note(unread.error), **filing
        )
        if filed is None or not filed.created:
            return
        await remember_permalink(deps.db, client, filed.point.id, channel, ts)
