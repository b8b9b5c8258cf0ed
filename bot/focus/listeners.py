"""The quarter's focus in Slack: `/platform-feedback focus [publish|report]`, the Pick / Drop /
Publish buttons, the announcement rendered when sent and kept up to date, and the end-of-period
report (a scheduled job, once per period across instances)."""

import dataclasses
import logging
from functools import partial

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.focus import flows as focus_flow
from bot.focus import service as focus
from bot.focus.blocks import build_focus_picker, build_focus_report
from bot.ids import Action
from bot.intake.blocks import build_try_again
from bot.runtime import access
from bot.runtime.context import Deps
from bot.runtime.scheduler import Job, interval_slot, interval_trigger
from storage.database import DatabaseUnavailable

log = logging.getLogger(__name__)
JOB = "focus.tick"
TICK_MINUTES = 15
NOT_ALLOWED = "Only office-hours hosts and the policy's focus.leads can change the focus. Nothing was changed."
UNKNOWN = "That is not a report or an area. Nothing was changed: `/platform-feedback focus` shows the candidates."
USAGE = "Usage: `/platform-feedback focus` (the focus and candidates), `focus publish`, `focus report`."


def register(app: AsyncApp, deps: Deps) -> None:
    policy, prefix = deps.policy, deps.policy.reference_prefix
    if policy.closing.announce_channel:  # without it nothing is published, so nothing to keep up or report
        deps.scheduler.add(
            Job(name=JOB, db=deps.db, work=partial(focus_flow.tick, policy=policy),
                occurrence_at=interval_slot(TICK_MINUTES), after=deps.sender.wake),
            interval_trigger(TICK_MINUTES),
        )

    async def allowed(user: str) -> bool:
        return user in policy.focus.leads or await deps.hosts.is_host(user)

    async def picker(user: str, respond: AsyncRespond, note: str | None = None) -> None:
        current, ranking = await deps.db.run(focus_flow.picker, policy=policy)
        current, ranking = await readable(user, current, ranking)
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
        await picker(user, respond, done)

    async def focus_command(user: str, args: str, respond: AsyncRespond, client) -> None:
        word = args.strip().lower()
        try:
            if word == "":
                await picker(user, respond)
            elif word == "publish":
                await change(user, respond, focus.publish, "Published: the announcement and the reporters' DMs are on their way.", actor=user)
            elif word == "report":
                result = await deps.db.run(focus.report, policy=policy)
                if result is None:
                    await respond(response_type="ephemeral", text="Nothing is in this quarter's focus yet: `/platform-feedback focus` to pick.")
                else:
                    views, _ = await readable_views(user, [item.view for item in result.items])
                    items = [dataclasses.replace(item, view=view) for item, view in zip(result.items, views, strict=False)]
                    await respond(response_type="ephemeral", **build_focus_report(dataclasses.replace(result, items=items), prefix=prefix))
            else:
                await respond(response_type="ephemeral", text=USAGE)
        except DatabaseUnavailable:
            await respond(response_type="ephemeral", **build_try_again("the focus"))

    deps.commands["focus"] = focus_command

    async def readable_views(user: str, views: list, point_ids=()) -> tuple[list, access.Reader]:
        """``views`` with the words of reports ``user`` may not read hidden (``bot.runtime.access``)."""
        ids = [int(v.subject.value) for v in views if v.subject.kind == "report"] + list(point_ids)
        reader = await access.reader(deps, user, ids)
        return [dataclasses.replace(v, title=reader.words(int(v.subject.value), v.title)) if v.subject.kind == "report" else v
                for v in views], reader

    async def readable(user: str, current: focus.FocusState, ranking):
        views, reader = await readable_views(user, current.items, [p.point_id for p in ranking.open_points])
        points = [dataclasses.replace(p, text=reader.words(p.point_id, p.text)) for p in ranking.open_points]
        return dataclasses.replace(current, items=views), dataclasses.replace(ranking, open_points=points)

    def subject_of(action: dict) -> focus.Subject | None:
        try:
            return focus.Subject.parse(action.get("value") or "")
        except focus.FocusError:
            return None

    @app.action(Action.focus_pick)
    async def on_pick(ack: AsyncAck, body: dict, action: dict, respond: AsyncRespond):
        await ack()
        subject = subject_of(action)
        if subject is None:
            await respond(response_type="ephemeral", replace_original=False, text=UNKNOWN)
        else:
            await change(body["user"]["id"], respond, focus.pick, f"Picked {subject.kind} {subject.value}.", actor=body["user"]["id"], subject=subject)

    @app.action(Action.focus_drop)
    async def on_drop(ack: AsyncAck, body: dict, action: dict, respond: AsyncRespond):
        await ack()
        subject = subject_of(action)
        if subject is None:
            await respond(response_type="ephemeral", replace_original=False, text=UNKNOWN)
        else:
            await change(body["user"]["id"], respond, focus.drop, f"Dropped {subject.kind} {subject.value}.", subject=subject)

    @app.action(Action.focus_publish)
    async def on_publish(ack: AsyncAck, body: dict, respond: AsyncRespond):
        await ack()
        user = body["user"]["id"]
        await change(user, respond, focus.publish, "Published: the announcement and the reporters' DMs are on their way.", actor=user)
