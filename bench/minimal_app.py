"""The baseline for ``bench.ack_latency``: the smallest Bolt app that answers the same requests, served
the way ``platform-feedback serve`` serves the bot (uvicorn, Starlette, slack_bolt's Starlette
adapter, the same signing secret and Web API client settings). Its listeners only ``await ack()``.

    SLACK_SIGNING_SECRET=... SLACK_BOT_TOKEN=... SLACK_API_URL=... PORT=... python -m bench.minimal_app
"""

import os
import re

import uvicorn
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def create() -> Starlette:
    client = AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"])
    app = AsyncApp(client=client, signing_secret=os.environ["SLACK_SIGNING_SECRET"])

    @app.command("/platform-feedback")
    async def on_command(ack):
        await ack()

    @app.action(re.compile(".+"))
    async def on_action(ack):
        await ack()

    handler = AsyncSlackRequestHandler(app)

    async def events(request: Request):
        return await handler.handle(request)

    async def healthz(_request: Request):
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/slack/events", events, methods=["POST"]), Route("/healthz", healthz, methods=["GET"])])


if __name__ == "__main__":
    uvicorn.run(create(), host="127.0.0.1", port=int(os.environ["PORT"]), log_level="info")
