"""The quarter's focus in Slack: `/platform-feedback focus [publish|report]`, the Pick / Drop /
Publish buttons. The announcement is rendered when sent and kept up to date (``bot.focus.flows``);
the job that does it and posts the end-of-period report is ``bot.focus.jobs``."""

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.focus import flows as focus_flow
from bot.focus import service as focus
from bot.focus.blocks import build_focus_picker, build_focus_report
from bot.focus.ids import FocusAction
from bot.insight.service import FrictionScores
from bot.runtime import access
from bot.runtime.context import Deps, Subcommand
from bot.runtime.listening import answers_outage
from storage.database import DatabaseUnavailable

log = logging.getLogger(__name__)
NOT_ALLOWED = "Only office-hours hosts and the policy's focus.leads can change the focus. Nothing was changed."
UNKNOWN = "That is not a report or an area. Nothing was changed: `/platform-feedback focus` shows the candidates."
USAGE = "Usage: `/platform-feedback focus` (the focus and candidates), `focus publish`, `focus report`."
PUBLISHED = "Published: the announcement and the reporters' DMs are on their way."


async def _allowed(deps: Deps, user: str) -> bool:
    return user in deps.policy.focus.leads or await deps.hosts.is_host(user)


async def _readable_views(deps: Deps, user: str, views: list, point_ids: Any = ()) -> tuple[list, access.Reader]:
    """``views`` with the words of reports ``user`` may not read hidden (``bot.runtime.access``)."""
    ids = [int(v.subject.value) for v in views if v.subject.kind == "report"] + list(point_ids)
    reader = await access.reader(deps, user, ids)
    return [dataclasses.replace(v, title=reader.words(int(v.subject.value), v.title)) if v.subject.kind == "report" else v
            for v in views], reader


async def _readable(deps: Deps, user: str, current: focus.FocusState, ranking: FrictionScores) -> tuple[focus.FocusState, FrictionScores]:
    views, reader = await _readable_views(deps, user, current.items, [p.point_id for p in ranking.open_points])
    points = [dataclasses.replace(p, text=reader.words(p.point_id, p.text)) for p in ranking.open_points]
    return dataclasses.replace(current, items=views), dataclasses.replace(ranking, open_points=points)


async def _picker(deps: Deps, user: str, respond: AsyncRespond, note: str | None = None) -> None:
    policy = deps.policy
    current, ranking = await deps.db.run(focus_flow.picker, policy=policy)
    current, ranking = await _readable(deps, user, current, ranking)
    view = build_focus_picker(current, ranking, prefix=policy.reference_prefix, taxonomy=policy.taxonomy, size=policy.focus.size)
    if note:
        view["blocks"].insert(0, {"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    await respond(response_type="ephemeral", replace_original=False, **view)


async def _change(deps: Deps, user: str, respond: AsyncRespond, operation: Callable[..., Any], done: str, **kwargs: Any) -> None:
    """``operation`` (pick, drop, publish) by ``user`` if they may change the focus; then the picker again."""
    if not await _allowed(deps, user):
        await respond(response_type="ephemeral", replace_original=False, text=NOT_ALLOWED)
        return
    try:
        await deps.db.run(operation, policy=deps.policy, **kwargs)
    except focus.FocusError as exc:
        await respond(response_type="ephemeral", replace_original=False, text=str(exc))
        return
    try:
        await _picker(deps, user, respond, done)
    except DatabaseUnavailable:  # saved already: say so, not "couldn't save" (answers_outage's words)
        await respond(response_type="ephemeral", replace_original=False,
                      text=f"{done} The picker could not be redrawn just now: `/platform-feedback focus` shows it.")


async def focus_command(deps: Deps, user: str, args: str, respond: AsyncRespond, client: Any, trigger_id: str) -> None:
    """``/platform-feedback focus [publish|report]``."""
    word = args.strip().lower()
    if word == "":
        await _picker(deps, user, respond)
    elif word == "publish":
        await _change(deps, user, respond, focus.publish, PUBLISHED, actor=user)
    elif word == "report":
        result = await deps.db.run(focus.report, policy=deps.policy)
        if result is None:
            await respond(response_type="ephemeral", text="Nothing is in this quarter's focus yet: `/platform-feedback focus` to pick.")
        else:
            views, _ = await _readable_views(deps, user, [item.view for item in result.items])
            items = [dataclasses.replace(item, view=view) for item, view in zip(result.items, views, strict=False)]
            await respond(response_type="ephemeral",
                          **build_focus_report(dataclasses.replace(result, items=items), prefix=deps.policy.reference_prefix))
    else:
        await respond(response_type="ephemeral", text=USAGE)


def _subject_of(action: dict) -> focus.Subject | None:
    try:
        return focus.Subject.parse(action.get("value") or "")
    except focus.FocusError:
        return None


async def _on_subject(body: dict, action: dict, respond: AsyncRespond, deps: Deps, operation: Callable[..., Any], verb: str,
                      **kwargs: Any) -> None:
    """A Pick or Drop button: ``operation`` on the subject its value names."""
    subject = _subject_of(action)
    if subject is None:
        await respond(response_type="ephemeral", replace_original=False, text=UNKNOWN)
        return
    await _change(deps, body["user"]["id"], respond, operation, f"{verb} {subject.kind} {subject.value}.", subject=subject, **kwargs)


@answers_outage("that change")
async def on_pick(ack: AsyncAck, body: dict, action: dict, respond: AsyncRespond, deps: Deps) -> None:
    """A candidate's Pick button."""
    await ack()
    await _on_subject(body, action, respond, deps, focus.pick, "Picked", actor=body["user"]["id"])


@answers_outage("that change")
async def on_drop(ack: AsyncAck, body: dict, action: dict, respond: AsyncRespond, deps: Deps) -> None:
    """An item's Drop button."""
    await ack()
    await _on_subject(body, action, respond, deps, focus.drop, "Dropped")


@answers_outage("that change")
async def on_publish(ack: AsyncAck, body: dict, respond: AsyncRespond, deps: Deps) -> None:
    """The picker's Publish button."""
    await ack()
    user = body["user"]["id"]
    await _change(deps, user, respond, focus.publish, PUBLISHED, actor=user)


COMMANDS: dict[str, Subcommand] = {"focus": focus_command}


def register(app: AsyncApp) -> None:
    """The wiring table: which Slack request each listener answers."""
    app.action(FocusAction.pick)(on_pick)
    app.action(FocusAction.drop)(on_drop)
    app.action(FocusAction.publish)(on_publish)
