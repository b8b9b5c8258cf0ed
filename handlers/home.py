"""The App Home tab: your own reports and how to file one."""

import logging

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.home import build_home
from bot.context import Deps
from storage import friction
from storage.database import DatabaseUnavailable

log = logging.getLogger(__name__)


def register(app: AsyncApp, deps: Deps) -> None:
    @app.event("app_home_opened")
    async def on_home_opened(event: dict, client: AsyncWebClient):
        if event.get("tab") != "home":
            return
        user = event["user"]
        try:
            points = await deps.db.run(friction.reports_of, user_id=user)
        except DatabaseUnavailable as exc:
            log.warning("home tab not refreshed: %s", exc)
            return
        await client.views_publish(user_id=user, view=build_home(deps.policy.reference_prefix, deps.policy.intake.reaction, points))
