"""Intake: the slash command, the message shortcut, the report modal and the :ticket: reaction."""

import logging

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.emoji_names import same_emoji
from bot.intake.blocks import build_filed_message, build_report_modal, build_reports_list, build_usage
from bot.intake.drafts import new_draft
from bot.intake.filing import DetailsRefused, add_details, details_point, file_report
from bot.intake.ids import IntakeAction, IntakeBlock, IntakeCallback, ReportMetadata
from bot.intake.service import CommandKind, parse_command, read_modal, suggest_categories
from bot.messages import message_text
from bot.progress.stage import started_points
from bot.runtime.context import Deps
from bot.runtime.listening import UNREACHABLE, answers_outage, try_again, unsure
from bot.runtime.slack_reads import Unread, fetch_message, remember_permalink
from bot.text import from_slack
from storage import friction
from storage.database import ANSWERED_SECONDS, DatabaseUnavailable, OutcomeUnknown
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



def _filing(deps: Deps) -> dict:
    """What every filing takes from the team policy (``file_report``'s keywords)."""
    return {"prefix": deps.policy.reference_prefix, "triage_channel": deps.policy.triage.channel}


async def on_command(ack: AsyncAck, command: dict, client: AsyncWebClient, respond: AsyncRespond, deps: Deps) -> None:
    """``/platform-feedback``: a one-line report, the form, ``mine``, ``help``, or another feature's
    subcommand (``deps.commands``; an outage during one is answered here, once)."""
    policy = deps.policy
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
        except DatabaseUnavailable:  # a read: nothing to save, only to say
            await respond(response_type="ephemeral", text=f":warning: {UNREACHABLE}")
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
        except DatabaseUnavailable:  # every subcommand's one answer to an outage, a read or a change alike
            await respond(response_type="ephemeral", text=f":warning: {UNREACHABLE}")
        return
    text = from_slack(parsed.text)
    draft = new_draft(
        taxonomy=policy.taxonomy, source=Source.command, intake_key=f"command:{command['trigger_id']}", team_id=team, filed_by=user,
        text=text, channel_id=command.get("channel_id"), enterprise_id=command.get("enterprise_id"),
    )
    # Acked means kept: a one-line report is stored before the ack, and the ack is its answer.
    # A process killed before that answers nothing, and Slack tells the person the command failed.
    # Its write may take as long as one after an ack (ANSWERED_SECONDS): past Slack's 3 s the answer
    # goes to the response URL (bot.runtime.late_answer). At the database's 2.5 s it used to say
    # "try again" to a write that then committed anyway: untrue, and the resend was filed twice.
    try:
        # Keyed by the command's trigger id: a repeat after a lost COMMIT reply finds it if written.
        filed = await deps.db.run_repeating(ANSWERED_SECONDS, file_report, draft=draft, **_filing(deps))
        assert filed is not None  # None only for an event id seen before, and none is given
    except OutcomeUnknown:
        await ack(response_type="ephemeral", **unsure("your report", text))
        return
    except DatabaseUnavailable:
        await ack(response_type="ephemeral", **try_again("your report", text))  # their words quoted back: nothing is lost
        return
    await ack(response_type="ephemeral", **build_filed_message(deps.ref(filed.point.id), filed.point, with_details_button=True))


async def on_message_shortcut(ack: AsyncAck, shortcut: dict, client: AsyncWebClient, respond: AsyncRespond, deps: Deps) -> None:
    """The message shortcut: the form, filled with the message's words and the areas they suggest."""
    await ack()
    taxonomy = deps.policy.taxonomy
    message = shortcut.get("message") or {}
    metadata = ReportMetadata(
        source=Source.shortcut, channel_id=shortcut.get("channel", {}).get("id"), message_ts=message.get("ts")
    )
    text = message_text(message)
    view = build_report_modal(taxonomy, metadata, text=text, categories=list(suggest_categories(text, taxonomy)))
    try:
        await client.views_open(trigger_id=shortcut["trigger_id"], view=view)
    except SlackApiError as exc:  # expired_trigger_id: a message shortcut can still be answered by its response_url
        log.warning("report form not opened for a message shortcut: %s", _code(exc))
        if shortcut.get("response_url"):
            await respond(response_type="ephemeral", text=SHORTCUT_NOT_OPENED.format(error=_code(exc)))


@answers_outage("your details")
async def on_add_details(ack: AsyncAck, body: dict, action: dict, client: AsyncWebClient, respond: AsyncRespond, deps: Deps) -> None:
    """Add details under a filed report's confirmation: the form again, filled with the report."""
    await ack()
    value = action.get("value") or ""
    if not value.isdigit():
        return
    try:
        point = await deps.db.run(details_point, point_id=int(value), user=body["user"]["id"], prefix=deps.policy.reference_prefix)
    except DetailsRefused as refused:
        await respond(response_type="ephemeral", replace_original=False, text=str(refused))
        return
    view = build_report_modal(
        deps.policy.taxonomy,
        ReportMetadata(source=point.source, point_id=point.id),
        text=point.text,
        categories=[t.category for t in point.tags if not t.automatic],
        severity=point.severity,
        minutes_lost=point.minutes_lost,
        kind=point.kind,
        link_url=point.link_url,
    )
    await client.views_open(trigger_id=body["trigger_id"], view=view)


# The form stays open with everything typed in it when the database does not answer: nothing is lost.
@answers_outage("your report", block=IntakeBlock.text)
async def on_report_submitted(ack: AsyncAck, body: dict, view: dict, client: AsyncWebClient, deps: Deps) -> None:
    """The report form sent: a new report, or the details added to one."""
    policy = deps.policy
    answers, errors = read_modal(view["state"]["values"], policy.taxonomy)
    if errors or answers is None:
        await ack(response_action="errors", errors=errors)
        return
    try:
        metadata = ReportMetadata.load(view.get("private_metadata"))
    except ValueError:
        await ack(response_action="errors", errors={IntakeBlock.text: "This form is out of date. Please open it again."})
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
        filed = await deps.db.run(file_report, draft=draft, confirm_by_dm=True, **_filing(deps))
        assert filed is not None  # None only for an event id seen before, and none is given
    except DetailsRefused as refused:
        await ack(response_action="errors", errors=refused.errors)
        return
    await ack()
    if filed.created and metadata.channel_id and metadata.message_ts:
        await remember_permalink(deps.db, client, filed.point.id, metadata.channel_id, metadata.message_ts)


async def is_filing_reaction(event: dict, deps: Deps) -> bool:
    """The filing emoji in any skin tone, by any of its names (``bot.emoji_names``)."""
    return same_emoji(event.get("reaction") or "", deps.policy.intake.reaction)


async def on_reaction(body: dict, event: dict, client: AsyncWebClient, deps: Deps) -> None:
    """The filing emoji on a message: the message filed as a report."""
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
    if isinstance(message, Unread):
        # Slack would not give us the message now (rate limited beyond what we wait, down).
        # The event still says where it is and who wrote it: file that, and tell the reactor,
        # rather than drop a reaction Slack will not send again.
        log.warning("cannot read reacted message in %s (%s): filing what the event carries", channel, message.error)
        text, author, thread_ts = UNREAD_TEXT, event.get("item_user"), None
    else:
        text, author, thread_ts = message_text(message) or "(a message with no text)", message.get("user"), message.get("thread_ts") or ts
    draft = new_draft(
        taxonomy=deps.policy.taxonomy, source=Source.reaction, intake_key=f"message:{channel}:{ts}", team_id=body.get("team_id") or "",
        # The person who wrote the message hit the friction; bots' messages count for the reactor.
        filed_by=reactor, reporter_id=author or reactor, text=text, channel_id=channel, message_ts=ts, enterprise_id=body.get("enterprise_id"),
    )
    # DatabaseUnavailable here goes to the app's error handler, which keeps the event in the spool.
    filed = await deps.db.run(
        file_report, draft=draft, event_id=body["event_id"], thread_ts=thread_ts,
        unread_note=unread and unread_note(unread.error), **_filing(deps)
    )
    if filed is None or not filed.created:
        return
    await remember_permalink(deps.db, client, filed.point.id, channel, ts)


def register(app: AsyncApp) -> None:
    """The wiring table: which Slack request each listener answers."""
    app.command("/platform-feedback")(on_command)
    app.shortcut(IntakeCallback.report_shortcut)(on_message_shortcut)
    app.action(IntakeAction.add_details)(on_add_details)
    app.view(IntakeCallback.report_modal)(on_report_submitted)
    # Only the filing emoji: other reactions go on to the listeners registered after this one.
    app.event("reaction_added", matchers=[is_filing_reaction])(on_reaction)
