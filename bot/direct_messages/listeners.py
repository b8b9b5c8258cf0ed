"""Direct messages to the bot (message.im): each a one-line report, answered in the DM."""

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from bot.direct_messages.service import add_from_thread, by_a_person, file_direct_message
from bot.intake.drafts import new_draft
from bot.intake.service import MAX_TEXT
from bot.messages import message_text
from bot.runtime.context import Deps
from bot.text import from_slack
from storage.models import Source


async def is_dm(event: dict) -> bool:
    return event.get("channel_type") == "im"


async def on_direct_message(body: dict, event: dict, context: AsyncBoltContext, deps: Deps) -> None:
    """A person's DM: more about a report when it replies in one's thread, else a new report."""
    if not by_a_person(event, context.bot_user_id):
        return  # edits, deletions, bots (the bot's own answers included): nothing to file
    policy = deps.policy
    # The words as typed; a file sent with none is named by message_text ("Files: shot.png").
    text = from_slack(event.get("text") or "").strip() or message_text(event) or "(a message with no text)"
    channel = event["channel"]
    draft = new_draft(
        taxonomy=policy.taxonomy, source=Source.dm, intake_key=f"dm:{channel}:{event['ts']}", team_id=body.get("team_id") or event.get("team") or "",
        filed_by=event["user"], text=text, max_text=MAX_TEXT, channel_id=channel, message_ts=event["ts"], enterprise_id=body.get("enterprise_id"),
    )
    thread_ts = event.get("thread_ts")
    if thread_ts and thread_ts != event["ts"]:  # a reply in a thread: more about a report, if it is one's
        # DatabaseUnavailable here goes to the app's error handler, which keeps the event in the spool.
        added = await deps.db.run(add_from_thread, event_id=body["event_id"], dm_channel=channel, thread_ts=thread_ts,
                                  ts=event["ts"], user=event["user"], text=text[:MAX_TEXT], prefix=policy.reference_prefix,
                                  workspace=draft.workspace)
        if added is not None:
            return
    # DatabaseUnavailable here goes to the app's error handler, which keeps the event in the spool.
    await deps.db.run(file_direct_message, draft=draft, event_id=body["event_id"], dm_channel=channel,
                      prefix=policy.reference_prefix, triage_channel=policy.triage.channel)


def register(app: AsyncApp) -> None:
    """The wiring table. Registered before the help channel's catch-all message listener (the
    wiring table's order): Bolt runs the first match."""
    app.event("message", matchers=[is_dm])(on_direct_message)
