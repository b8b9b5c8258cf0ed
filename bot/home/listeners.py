"""The App Home tab: hosts see the triage queue and its numbers; everyone else their own reports."""

import logging

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.home.blocks import build_home
from bot.home.ids import HomeAction
from bot.progress.stage import started_points
from bot.runtime import access
from bot.runtime.context import Deps
from bot.triage import due_queue
from bot.triage import service as triage
from bot.triage.blocks import build_host_home
from storage import friction
from storage.database import DatabaseUnavailable

log = logging.getLogger(__name__)


async def _publish(deps: Deps, client: AsyncWebClient, user: str, *, category: str | None = None, status: str | None = None) -> None:
    """Draw ``user``'s Home tab. During a database outage it is left as it was (logged): nobody asked
    for anything, so there is nobody to tell."""
    policy = deps.policy
    try:
        if (await access.reader(deps, user)).host:  # the queue is others' words (bot.runtime.access)
            queue = await deps.db.run(due_queue.host_view, policy=policy, category=category, status=status)
            assert queue.headline is not None  # host_view always counts it
            started = await deps.db.run(started_points, point_ids=[p.id for p in queue.points])
            view = build_host_home(policy.reference_prefix, policy.taxonomy, queue.headline, queue.points, category=category,
                                   status=status, clocks=queue.clocks, now=queue.now, by_due=queue.by_due, started=started,
                                   create_issue=bool(policy.issues.projects))
        else:
            points = await deps.db.run(friction.reports_of, user_id=user)
            started = await deps.db.run(started_points, point_ids=[p.id for p in points])
            view = build_home(policy.reference_prefix, policy.intake.reaction, points, started)
    except DatabaseUnavailable as exc:
        log.warning("home tab not refreshed: %s", exc)
        return
    await client.views_publish(user_id=user, view=view)


async def on_home_opened(event: dict, client: AsyncWebClient, deps: Deps) -> None:
    """The person opened the bot's Home tab."""
    if event.get("tab") == "home":
        await _publish(deps, client, event["user"])


def _filters(deps: Deps, body: dict) -> dict:
    """Both filters as they stand in the published view (the other one keeps its choice)."""
    chosen = {}
    for block in (body.get("view") or {}).get("state", {}).get("values", {}).values():
        for action_id, element in block.items():
            value = (element.get("selected_option") or {}).get("value")
            chosen[action_id] = None if value in (None, "all") else value
    for action in body.get("actions", []):
        value = (action.get("selected_option") or {}).get("value")
        chosen[action["action_id"]] = None if value in (None, "all") else value
    category = chosen.get(HomeAction.filter_category)
    status = chosen.get(HomeAction.filter_status)
    return {
        "category": category if category and deps.policy.taxonomy.has(category) else None,
        "status": status if status in triage.OPEN_STATUSES else None,
    }


async def on_filter(ack: AsyncAck, body: dict, client: AsyncWebClient, deps: Deps) -> None:
    """A host changed a filter of the queue on their Home tab."""
    await ack()
    await _publish(deps, client, body["user"]["id"], **_filters(deps, body))


def register(app: AsyncApp) -> None:
    """The wiring table: which Slack request each listener answers."""
    app.event("app_home_opened")(on_home_opened)
    app.action(HomeAction.filter_status)(on_filter)
    app.action(HomeAction.filter_category)(on_filter)
