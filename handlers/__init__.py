"""The app's wiring table: which feature's listeners the Bolt app gets, in which order. Each feature
keeps its listeners beside its operations and Block Kit (``bot/<feature>/listeners.py``); this is
the one place that attaches them to the app. The order matters where two listeners could take the
same event: the DM listener goes before the help channel's catch-all message listener."""

from slack_bolt.async_app import AsyncApp

import bot.changelog.listeners
import bot.closing.listeners
import bot.closing.polling
import bot.direct_messages.listeners
import bot.focus.listeners
import bot.help_channel.listeners
import bot.home.listeners
import bot.insight.listeners
import bot.intake.listeners
import bot.office_hours.listeners
import bot.retention.jobs
import bot.surveys.listeners
import bot.targets.listeners
import bot.triage.listeners
from bot import surveys as survey_ops
from bot.runtime.context import Deps


def register(app: AsyncApp, deps: Deps) -> None:
    """Attach every feature's listeners (and, for now, the jobs their ``register`` declares) to ``app``."""
    bot.intake.listeners.register(app, deps)
    bot.triage.listeners.register(app, deps, on_resolved=survey_ops.csat_followup_hook(deps.policy))
    bot.closing.listeners.register(app, deps)
    bot.changelog.listeners.register(app, deps)
    bot.closing.polling.register(app, deps)
    bot.direct_messages.listeners.register(app, deps)  # before help_channel's catch-all message listener
    bot.help_channel.listeners.register(app, deps)
    bot.office_hours.listeners.register(app, deps)
    bot.surveys.listeners.register(app, deps)
    bot.retention.jobs.register(app, deps)
    bot.targets.listeners.register(app, deps)
    bot.focus.listeners.register(app, deps)
    bot.home.listeners.register(app, deps)
    bot.insight.listeners.register(app, deps)
