"""The help channel (``help_channel.channel`` in the policy).

Every new top-level message there becomes a data point and gets one reply in its thread with the
reference and a Resolve button; a follow-up top-level message from the same person within
``join_minutes`` joins their question instead. A host's reply in the thread is the question's first
response. The Resolve button, or the ``resolve_reaction`` on the question, resolves it, and the bot
says so once in the thread (that post is how the asker hears: no DM as well).

Who may resolve: platform hosts, and the person who asked (any reporter of the data point). Anyone
else pressing Resolve is told so ephemerally and nothing changes; anyone else's reaction is ignored
(people react with a check mark to mean "seen").
"""

import asyncio
import logging

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.emoji_names import same_emoji
from bot.help_channel import service as help_channel
from bot.help_channel.blocks import RESOLVE_ACTION, build_help_reply
from bot.intake.drafts import new_draft
from bot.messages import message_text
from bot.runtime.context import Deps
from bot.runtime.listening import answers_outage
from bot.runtime.slack_reads import remember_permalink
from bot.targets import alerts as target_alerts
from bot.triage import service as triage
from storage.models import FrictionKind, Source

log = logging.getLogger(__name__)


def asker_locks(deps: Deps) -> dict[str, asyncio.Lock]:
    """One question at a time per person (made once per app, ``deps.once``): a quick follow-up must
    find the question it joins."""
    return {}


async def _on_question(deps: Deps, body: dict, event: dict, client: AsyncWebClient, *, form: bool = False) -> None:
    policy = deps.policy
    config = policy.help_channel
    channel, ts = event["channel"], event["ts"]
    # A form's post (Workflow Builder): filed by the workflow, reported by the person it names,
    # or by the workflow itself when it names nobody; never joined to an earlier question.
    user = event["bot_id"] if form else event["user"]
    reporter = (help_channel.form_submitter(event) or user) if form else user
    text = message_text(event) or "(a message with no text)"
    draft = new_draft(
        taxonomy=policy.taxonomy, source=Source.help_channel, intake_key=help_channel.intake_key(channel, ts),
        team_id=body.get("team_id") or event.get("team") or "", filed_by=user, reporter_id=reporter, text=text, max_text=help_channel.MAX_TEXT,
        kind=FrictionKind.support, channel_id=channel, message_ts=ts, enterprise_id=body.get("enterprise_id"),
    )
    # DatabaseUnavailable here goes to the app's error handler, which keeps the event in the spool.
    async with deps.once(asker_locks).setdefault(user, asyncio.Lock()):
        taken = await deps.db.run(
            help_channel.take_question,
            draft=draft,
            event_id=body["event_id"],
            join_minutes=0 if form else config.join_minutes,
            resolve_reaction=config.resolve_reaction,
            prefix=policy.reference_prefix,
            triage_channel=policy.triage.channel,
        )
    if taken is None:
        return
    if taken.created:
        await remember_permalink(deps.db, client, taken.point.id, channel, ts)


async def _on_reporter_reply(deps: Deps, event: dict) -> None:
    """A reply in the thread a report was filed from: its reporter's answer when it waits for them."""
    # DatabaseUnavailable goes to the app's error handler, which keeps the event in the spool.
    await deps.db.run(target_alerts.answer_in_thread, channel=event["channel"], thread_ts=event["thread_ts"],
                      user=event["user"], text=message_text(event) or "(a message with no text)", prefix=deps.policy.reference_prefix)


async def _on_reply(deps: Deps, body: dict, event: dict) -> None:
    user = event["user"]
    if not await deps.hosts.is_host(user):
        await _on_reporter_reply(deps, event)  # the asker and colleagues talk freely; only a host's answer is a response
        return
    await deps.db.run(
        help_channel.take_answer, event_id=body["event_id"], channel=event["channel"], thread_ts=event["thread_ts"], actor=user
    )


async def on_message(body: dict, event: dict, client: AsyncWebClient, context: AsyncBoltContext, deps: Deps) -> None:
    """Every message event the bot receives lands here (Bolt would answer 404 to one no listener
    takes, and Slack would retry it); only the help channel's are looked at."""
    config = deps.policy.help_channel
    if not help_channel.by_a_person(event):
        own = {i for i in (context.bot_id, context.bot_user_id, body.get("api_app_id")) if i is not None}
        if config.channel and event.get("channel") == config.channel and help_channel.is_form_post(event, own):
            await _on_question(deps, body, event, client, form=True)
        return
    if not config.channel or event.get("channel") != config.channel:
        if not help_channel.is_top_level(event):  # a thread elsewhere: maybe a reaction-filed report's
            await _on_reporter_reply(deps, event)
        return
    if help_channel.is_top_level(event):
        await _on_question(deps, body, event, client)
    else:
        await _on_reply(deps, body, event)


async def on_reaction(body: dict, event: dict, deps: Deps) -> None:
    """The resolve reaction on a question (reactions other than the filing one land here: the intake
    listener matches only its own)."""
    config = deps.policy.help_channel
    item = event.get("item") or {}
    if (
        not config.channel
        or not same_emoji(event.get("reaction") or "", config.resolve_reaction)
        or item.get("type") != "message"
        or item.get("channel") != config.channel
    ):
        return
    user = event["user"]
    try:
        point = await deps.db.run(help_channel.thread_point, channel=item["channel"], thread_ts=item["ts"])
        if point is None:
            return  # not a question (a reply, the bot's own message...)
        await deps.db.run(
            help_channel.resolve_in_thread,
            point_id=point.id,
            actor=user,
            actor_is_host=await deps.hosts.is_host(user),
            prefix=deps.policy.reference_prefix,
            event_id=body["event_id"],
        )
    except triage.TriageError as exc:  # not theirs to resolve, already resolved, merged
        log.info("resolve reaction on %s ignored: %s", item["ts"], exc)
        return


@answers_outage("that change")
async def on_resolve_button(ack: AsyncAck, body: dict, action: dict, respond: AsyncRespond, deps: Deps) -> None:
    """The Resolve button on the bot's reply in the question's thread."""
    await ack()
    user, value = body["user"]["id"], action.get("value") or ""
    if not value.isdigit():
        return
    point_id = int(value)
    try:
        await deps.db.run(
            help_channel.resolve_in_thread, point_id=point_id, actor=user, actor_is_host=await deps.hosts.is_host(user),
            prefix=deps.policy.reference_prefix,
        )
    except triage.TriageError as exc:
        await respond(response_type="ephemeral", replace_original=False, text=str(exc))
        return
    # The reply the button sits on keeps its reference and loses the button.
    await respond(replace_original=True, **build_help_reply(deps.ref(point_id), point_id, deps.policy.help_channel.resolve_reaction, open_=False))


def register(app: AsyncApp) -> None:
    """The wiring table: which Slack request each listener answers."""
    app.event("message")(on_message)
    app.event("reaction_added")(on_reaction)
    app.action(RESOLVE_ACTION)(on_resolve_button)
