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
from dataclasses import dataclass

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import Session

from bot.operations import help_channel
from bot.operations import triage
from bot.blocks.help_channel import RESOLVE_ACTION, build_help_reply, build_resolved_reply
from bot.blocks.intake import build_try_again
from bot.blocks.triage import build_reporter_notice
from bot.runtime.context import Deps
from bot.operations.intake import suggest_categories
from bot.blocks.text import from_slack
from handlers.intake import remember_permalink, file_report
from handlers.triage import CARD_PURPOSE
from storage import friction, outbox
from storage.database import DatabaseUnavailable
from storage.friction import FrictionDraft
from storage.models import FrictionKind, FrictionPoint, Source

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ transactions


def sync_card(*, session: Session, point: FrictionPoint, why: str) -> None:
    """Queue an in-place update of the point's triage card, rendered when sent. Not posted yet:
    nothing to do, the queued post renders the latest state."""
    if point.card_ts:
        outbox.enqueue(session=session, dedupe_key=f"card-sync:{point.id}:{why}", method="chat.update",
                       payload={}, friction_point_id=point.id, purpose=CARD_PURPOSE)


@dataclass
class Taken:
    point: FrictionPoint
    created: bool  # a new data point (and its thread reply) was made
    joined: bool  # the message was appended to the person's open question


def take_question(
    *,
    session: Session,
    draft: FrictionDraft,
    event_id: str,
    join_minutes: int,
    resolve_reaction: str,
    prefix: str,
    triage_channel: str | None,
) -> Taken | None:
    """A top-level message: join it to the asker's open question, or file it and queue the one
    thread reply. None: this event was handled before."""
    if not friction.first_delivery(session=session, event_id=event_id):
        return None
    channel, ts = draft.channel_id, draft.message_ts
    existing = help_channel.thread_point(session=session, channel=channel, thread_ts=ts)
    if existing is not None:  # this very message was filed already
        return Taken(existing, created=False, joined=False)
    joined = help_channel.join_follow_up(
        session=session, channel=channel, user=draft.reporter_id, ts=ts, text=draft.text, join_minutes=join_minutes
    )
    if joined is not None:
        sync_card(session=session, point=joined, why=f"help-joined:{ts}")
        return Taken(joined, created=False, joined=True)
    filed = file_report(session=session, draft=draft, prefix=prefix, triage_channel=triage_channel)
    if filed.created:
        point = filed.point
        outbox.enqueue(
            session=session,
            dedupe_key=f"help-reply:{point.id}",
            method="chat.postMessage",
            payload={"channel": channel, "thread_ts": ts, **build_help_reply(f"{prefix}-{point.id}", point.id, resolve_reaction)},
            friction_point_id=point.id,
        )
    return Taken(filed.point, created=filed.created, joined=False)


def take_answer(*, session: Session, event_id: str, channel: str, thread_ts: str, actor: str) -> triage.Applied | None:
    """A host's reply in a question's thread. None: not a question's thread, or handled before."""
    point = help_channel.thread_point(session=session, channel=channel, thread_ts=thread_ts)
    if point is None or not friction.first_delivery(session=session, event_id=event_id):
        return None
    applied = help_channel.record_response(session=session, point_id=point.id, actor=actor)
    if applied.picked_up:
        sync_card(session=session, point=applied.point, why=f"help-response:{applied.entry.id}")
    return applied


def resolve_in_thread(
    *, session: Session, point_id: int, actor: str, actor_is_host: bool, prefix: str, event_id: str | None = None
) -> triage.Applied | None:
    """Resolve, and queue the one "resolved" post in the thread. Reporters who are not in the
    thread (merged in from elsewhere) get the usual DM; the asker and the actor do not.
    Raises ``triage.TriageError`` when it cannot apply. None: this event was handled before."""
    if event_id is not None and not friction.first_delivery(session=session, event_id=event_id):
        return None
    resolved = help_channel.resolve(session=session, point_id=point_id, actor=actor, actor_is_host=actor_is_host, prefix=prefix)
    applied = resolved.applied
    point, ref = applied.point, f"{prefix}-{applied.point.id}"
    if point.channel_id and point.message_ts:
        outbox.enqueue(
            session=session,
            dedupe_key=f"help-resolved:{applied.entry.id}",
            method="chat.postMessage",
            payload={"channel": point.channel_id, "thread_ts": point.message_ts, **build_resolved_reply(ref, actor)},
            friction_point_id=point.id,
        )
    notice = build_reporter_notice(ref, point, applied.change, actor, picked_up=False)
    for reporter in point.reporters:
        if notice is None or reporter.user_id in (actor, resolved.asker):
            continue
        outbox.enqueue(
            session=session,
            dedupe_key=f"notice:closed:{applied.entry.id}:{reporter.user_id}",
            method="chat.postMessage",
            payload={"channel": reporter.user_id, **notice},
            friction_point_id=point.id,
        )
    sync_card(session=session, point=point, why=f"help-resolved:{applied.entry.id}")
    return applied


# ------------------------------------------------------------------ Slack


def register(app: AsyncApp, deps: Deps) -> None:
    policy = deps.policy
    config, prefix = policy.help_channel, policy.reference_prefix
    # One question at a time per person: a quick follow-up must find the question it joins.
    asker_locks: dict[str, asyncio.Lock] = {}

    async def on_question(body: dict, event: dict, client: AsyncWebClient) -> None:
        channel, ts, user = event["channel"], event["ts"], event["user"]
        text = from_slack(event.get("text") or "") or "(a message with no text)"
        draft = FrictionDraft(
            team_id=body.get("team_id") or event.get("team") or "",
            filed_by=user,
            reporter_id=user,
            text=text[: help_channel.MAX_TEXT],
            source=Source.help_channel,
            intake_key=help_channel.intake_key(channel, ts),
            auto_categories=suggest_categories(text, policy.taxonomy),
            kind=FrictionKind.support,
            channel_id=channel,
            message_ts=ts,
            enterprise_id=body.get("enterprise_id"),
        )
        try:
            async with asker_locks.setdefault(user, asyncio.Lock()):
                taken = await deps.db.run(
                    take_question,
                    draft=draft,
                    event_id=body["event_id"],
                    join_minutes=config.join_minutes,
                    resolve_reaction=config.resolve_reaction,
                    prefix=prefix,
                    triage_channel=policy.triage.channel,
                )
        except DatabaseUnavailable as exc:
            # Events are acked before this runs, so Slack will not retry.
            log.warning("help-channel message %s not filed, database unavailable: %s", ts, exc)
            return
        if taken is None:
            return
        deps.sender.wake()
        if taken.created:
            await remember_permalink(deps, client, taken.point.id, channel, ts)

    async def on_reply(body: dict, event: dict) -> None:
        user = event["user"]
        if not await deps.hosts.is_host(user):
            return  # the asker and colleagues talk freely; only a host's answer is a response
        try:
            applied = await deps.db.run(
                take_answer, event_id=body["event_id"], channel=event["channel"], thread_ts=event["thread_ts"], actor=user
            )
        except DatabaseUnavailable as exc:
            log.warning("host reply %s not recorded, database unavailable: %s", event["ts"], exc)
            return
        if applied is not None:
            deps.sender.wake()

    # Every message event the bot receives lands here (Bolt would answer 404 to one no listener
    # takes, and Slack would retry it); only the help channel's are looked at.
    @app.event("message")
    async def on_message(body: dict, event: dict, client: AsyncWebClient):
        if not config.channel or event.get("channel") != config.channel or not help_channel.by_a_person(event):
            return
        if help_channel.is_top_level(event):
            await on_question(body, event, client)
        else:
            await on_reply(body, event)

    # Reactions other than the filing one land here (the intake listener matches only its own).
    @app.event("reaction_added")
    async def on_reaction(body: dict, event: dict):
        item = event.get("item") or {}
        if (
            not config.channel
            or event.get("reaction") != config.resolve_reaction
            or item.get("type") != "message"
            or item.get("channel") != config.channel
        ):
            return
        user = event["user"]
        try:
            point = await deps.db.run(help_channel.thread_point, channel=item["channel"], thread_ts=item["ts"])
            if point is None:
                return  # not a question (a reply, the bot's own message...)
            applied = await deps.db.run(
                resolve_in_thread,
                point_id=point.id,
                actor=user,
                actor_is_host=await deps.hosts.is_host(user),
                prefix=prefix,
                event_id=body["event_id"],
            )
        except triage.TriageError as exc:  # not theirs to resolve, already resolved, merged
            log.info("resolve reaction on %s ignored: %s", item["ts"], exc)
            return
        except DatabaseUnavailable as exc:
            log.warning("resolve reaction on %s not applied, database unavailable: %s", item["ts"], exc)
            return
        if applied is not None:
            deps.sender.wake()

    @app.action(RESOLVE_ACTION)
    async def on_resolve_button(ack: AsyncAck, body: dict, action: dict, respond: AsyncRespond):
        await ack()
        user, value = body["user"]["id"], action.get("value") or ""
        if not value.isdigit():
            return
        point_id = int(value)
        try:
            await deps.db.run(
                resolve_in_thread, point_id=point_id, actor=user, actor_is_host=await deps.hosts.is_host(user), prefix=prefix
            )
        except triage.TriageError as exc:
            await respond(response_type="ephemeral", replace_original=False, text=str(exc))
            return
        except DatabaseUnavailable:
            await respond(response_type="ephemeral", replace_original=False, **build_try_again("that change"))
            return
        deps.sender.wake()
        # The reply the button sits on keeps its reference and loses the button.
        await respond(replace_original=True, **build_help_reply(deps.ref(point_id), point_id, config.resolve_reaction, open_=False))
