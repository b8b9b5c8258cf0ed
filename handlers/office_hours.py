"""Office hours: scheduled agenda, host-on-duty DM and summary. (Being built.)"""

from slack_bolt.async_app import AsyncApp

from bot.context import Deps


def register(app: AsyncApp, deps: Deps) -> None:
    pass
