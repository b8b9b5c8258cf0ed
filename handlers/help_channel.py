"""The help channel: every new top-level message becomes a data point. (Being built.)"""

from slack_bolt.async_app import AsyncApp

from bot.context import Deps


def register(app: AsyncApp, deps: Deps) -> None:
    pass
