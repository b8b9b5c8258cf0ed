"""The quarter's focus in Slack: `/platform-feedback focus [publish|report]`, the Pick / Drop /
Publish buttons, the announcement rendered when sent and kept up to date, and the end-of-period
report (a scheduled job, once per period across instances)."""

import logging
from datetime import datetime

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from sqlmodel import Session

from bot.blocks.focus import build_focus_picker, build_focus_post, build_focus_report
from bot.blocks.ids import Action
from bot.blocks.intake import build_try_again
from bot.operations import focus
from bot.runtime.context import Deps
from bot.runtime.scheduler import Job, interval_slot, interval_trigger
from storage import focus as store
from storage import outbox
from storage.database import DatabaseUnavailable
from storage.models import OutboxMessage

log = logging.getLogger(__name__)
JOB = "focus.tick"
TICK_MINUTES = 15
NOT_ALLOWED = "Only office-hours hosts and the policy's focus.leads can change the focus. Nothing was changed."
USAGE = "Usage: `/platform-feedback focus` (the focus and candidates), `focus publish`, `focus report`."


class PostHook:
    """Outbox hook: renders the announcement when sent and remembers where it was posted."""

    def __init__(self, deps: Deps):
        self.deps = deps

    def prepare(self, session: Session, message: OutboxMessage, payload: dict) -> tuple[str, dict] | None:
        current = focus.state(session=session, policy=self.deps.policy, key=payload.get("period"))
        if current.period is None or current.period.published_at is None:
            return None
        post = build_focus_post(current, prefix=self.deps.policy.reference_prefix)
        if current.period.post_ts:
            return "chat.update", {"channel": current.period.post_channel, "ts": current.period.post_ts, **post}
        if "channel" not in payload:
            return None  # an update for a post that was never made
        return "chat.postMessage", {"channel": payload["channel"], **post}

    def sent(self, session: Session, message: OutboxMessage, response: dict) -> None:
        period = store.get_period(session=session, key=json_period(message))
        if period is not None and "ts" in response and period.post_ts is None:
            period.post_channel, period.post_ts = response.get("channel"), response["ts"]
            session.add(period)


def json_period(message: OutboxMessage) -> str:
    import json

    return json.loads(message.payload).get("period", "")


def tick(*, session: Session, occurrence: datetime, deps: Deps) -> None:
    """Keep the announcement up to date (one update per distinct state) and, once a period has
    ended, post its report once."""
    policy = deps.policy
    current = focus.state(session=session, policy=policy, now=occurrence)
    if current.period is not None:
        focus.sync_post(session, current.period, current.fingerprint())
    ended = store.last_ended(session=session, at=occurrence)
    if ended is None:
        return
    key = f"focus:{ended.key}:report"
    if outbox.exists(session=session, dedupe_key=key):
        return
    result = focus.report(session=session, policy=policy, key=ended.key, now=occurrence)
    if result is not None:
        outbox.enqueue(session=session, dedupe_key=key, method="chat.postMessage",
                       payload={"channel": policy.closing.announce_channel, **build_focus_report(result, prefix=policy.reference_prefix)})



def register(app: AsyncApp, deps: Deps) -> None:
    policy, prefix = deps.policy, deps.policy.reference_prefix
    deps.sender.hooks[focus.POST_PURPOSE] = PostHook(deps)
    if policy.closing.announce_channel:  # without it nothing is published, so nothing to keep up or report
        deps.scheduler.add(
            Job(name=JOB, db=deps.db, work=lambda *, session, occurrence: tick(session=session, occurrence=occurrence, deps=deps),
                occurrence_at=interval_slot(TICK_MINUTES), after=deps.sender.wake),
            interval_trigger(TICK_MINUTES),
        )

    async def allowed(user: str) -> bool:
        return user in policy.focus.leads or await deps.hosts.is_host(user)

    async def picker(respond: AsyncRespond, note: str | None = None) -> None:
        def load(*, session: Session):
            return focus.state(session=session, policy=policy), focus.candidates(session=session, policy=policy)

        current, ranking = await deps.db.run(load)
        view = build_focus_picker(current, ranking, prefix=prefix, taxonomy=policy.taxonomy, size=policy.focus.size)
        if note:
            view["blocks"].insert(0, {"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
        await respond(response_type="ephemeral", replace_original=False, **view)

    async def change(user: str, respond: AsyncRespond, operation, done: str, **kwargs) -> None:
        if not await allowed(user):
            await respond(response_type="ephemeral", replace_original=False, text=NOT_ALLOWED)
            return
        try:
            await deps.db.run(operation, policy=policy, **kwargs)
        except focus.FocusError as exc:
            await respond(response_type="ephemeral", replace_original=False, text=str(exc))
            return
        except DatabaseUnavailable:
            await respond(response_type="ephemeral", replace_original=False, **build_try_again("that change"))
            return
        deps.sender.wake()
        await picker(respond, done)

    async def focus_command(user: str, args: str, respond: AsyncRespond, client) -> None:
        word = args.strip().lower()
        try:
            if word == "":
                await picker(respond)
            elif word == "publish":
                await change(user, respond, focus.publish, "Published: the announcement and the reporters' DMs are on their way.", actor=user)
            elif word == "report":
                result = await deps.db.run(focus.report, policy=policy)
                if result is None:
                    await respond(response_type="ephemeral", text="Nothing is in this quarter's focus yet: `/platform-feedback focus` to pick.")
                else:
                    await respond(response_type="ephemeral", **build_focus_report(result, prefix=prefix))
            else:
                await respond(response_type="ephemeral", text=USAGE)
        except DatabaseUnavailable:
            await respond(response_type="ephemeral", **build_try_again("the focus"))

    deps.commands["focus"] = focus_command

    def subject_of(action: dict) -> focus.Subject | None:
        try:
            return focus.Subject.parse(action.get("value") or "")
        except focus.FocusError:
            return None

    @app.action(Action.focus_pick)
    async def on_pick(ack: AsyncAck, body: dict, action: dict, respond: AsyncRespond):
        await ack()
        subject = subject_of(action)
        if subject is not None:
            await change(body["user"]["id"], respond, focus.pick, f"Picked {subject.kind} {subject.value}.", actor=body["user"]["id"], subject=subject)

    @app.action(Action.focus_drop)
    async def on_drop(ack: AsyncAck, body: dict, action: dict, respond: AsyncRespond):
        await ack()
        subject = subject_of(action)
        if subject is not None:
            await change(body["user"]["id"], respond, focus.drop, f"Dropped {subject.kind} {subject.value}.", subject=subject)

    @app.action(Action.focus_publish)
    async def on_publish(ack: AsyncAck, body: dict, respond: AsyncRespond):
        await ack()
        user = body["user"]["id"]
        await change(user, respond, focus.publish, "Published: the announcement and the reporters' DMs are on their way.", actor=user)
