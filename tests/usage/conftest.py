"""Fixtures of the usage tests."""

import pytest

from bot.surveys.sealing import Keys
from tests.usage.helpers import USAGE_SECRET, usage_policy
from tests.web.test_dashboard import chromium  # noqa: F401  (the headless browser fixture)


@pytest.fixture
def settings_overrides():
    return {"usage_signing_secret": USAGE_SECRET}


@pytest.fixture
async def bot_with_usage(fake_slack, db):
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.runtime.app import create_app
    from tests.conftest import make_settings, serving_bot
    from tests.fake_slack import TOKEN

    settings = make_settings(fake_slack, db, usage_signing_secret=USAGE_SECRET)
    app, deps = create_app(settings, usage_policy(), db, client=AsyncWebClient(token=TOKEN, base_url=settings.slack_api_url))
    async with serving_bot(app, deps, fake_slack, db) as b:
        yield b, Keys.from_settings(settings)
