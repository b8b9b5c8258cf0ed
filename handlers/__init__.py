"""The app's wiring table: which feature's listeners the Bolt app gets (in which order), which
subcommands answer `/platform-feedback`, which jobs the scheduler runs and which outbox hooks render
which messages. Each feature keeps its parts beside each other (``bot/<feature>/listeners.py``:
module-level listeners and a ``register(app)`` that only wires them, its ``COMMANDS``;
``bot/<feature>/jobs.py``: ``schedule(deps)``); this is the one place that attaches them.

``prepare(deps)`` gives the app's ``Deps`` what the features add to it (hooks, subcommands) and
``schedule(deps)`` their jobs: neither needs the Bolt app, so ``jobs`` and ``run-job`` need no
Slack. ``register(app, deps)`` attaches the listeners to a Bolt app (the serving app, and the
replay twin of bot.runtime.app)."""

from slack_bolt.async_app import AsyncApp

import bot.changelog.jobs
import bot.changelog.listeners
import bot.closing.jobs
import bot.closing.listeners
import bot.direct_messages.listeners
import bot.focus.jobs
import bot.focus.listeners
import bot.help_channel.listeners
import bot.home.listeners
import bot.insight.jobs
import bot.insight.listeners
import bot.intake.listeners
import bot.issue_create.listeners
import bot.office_hours.jobs
import bot.progress.jobs
import bot.retention.jobs
import bot.surveys.jobs
import bot.surveys.listeners
import bot.targets.jobs
import bot.targets.listeners
import bot.triage.listeners
import bot.usage.jobs
import bot.usage.listeners
from bot.direct_messages.service import DM_ANSWER_PURPOSE, DmAnswerHook
from bot.focus.flows import PostHook
from bot.focus.service import POST_PURPOSE
from bot.runtime.context import Deps, Subcommand
from bot.runtime.listening import with_deps
from bot.runtime.outbox import OutboxHook
from bot.surveys.csat import CSAT_PURPOSE, CsatHook
from bot.surveys.runs import QUIET_PURPOSES, REMINDER_PURPOSE, ReminderHook
from bot.surveys.slack_reads import runner_for
from bot.triage.flows import CardHook
from bot.triage.service import CARD_PURPOSE
from bot.usage.csat import PURPOSE as ASK_PURPOSE
from bot.usage.csat import AskHook


def outbox_hooks(deps: Deps) -> dict[str, OutboxHook]:
    """Every outbox hook, by the ``OutboxMessage.purpose`` it renders: the one place they are
    registered. The reminders' hook holds the keys of the app's surveys runner (``deps.once(runner_for)``):
    with them it finds who answered."""
    policy, keys = deps.policy, deps.once(runner_for).keys
    return {
        CARD_PURPOSE: CardHook(policy),
        DM_ANSWER_PURPOSE: DmAnswerHook(),
        CSAT_PURPOSE: CsatHook(policy),
        REMINDER_PURPOSE: ReminderHook(policy, keys),
        POST_PURPOSE: PostHook(policy),
        ASK_PURPOSE: AskHook(policy.usage),
    }


# Every subcommand but the intake's own (help, mine), by its word; bot.commands lists them for the help.
COMMANDS: dict[str, Subcommand] = {
    **bot.triage.listeners.COMMANDS,
    **bot.changelog.listeners.COMMANDS,
    **bot.surveys.listeners.COMMANDS,
    **bot.insight.listeners.COMMANDS,
    **bot.issue_create.listeners.COMMANDS,
    **bot.targets.listeners.COMMANDS,
    **bot.focus.listeners.COMMANDS,
}

# Each feature's jobs: ``schedule(deps)`` adds them to deps.scheduler or says why they are off.
JOBS = (
    bot.closing.jobs.schedule,
    bot.changelog.jobs.schedule,
    bot.office_hours.jobs.schedule,
    bot.surveys.jobs.schedule,
    bot.retention.jobs.schedule,
    bot.targets.jobs.schedule,
    bot.focus.jobs.schedule,
    bot.insight.jobs.schedule,
    bot.usage.jobs.schedule,
    bot.progress.jobs.schedule,
)

# Each feature with Slack listeners, in the order they are attached: the DM listener goes before
# the help channel's catch-all message listener.
LISTENERS = (
    bot.intake.listeners,
    bot.triage.listeners,
    bot.closing.listeners,
    bot.direct_messages.listeners,
    bot.help_channel.listeners,
    bot.surveys.listeners,
    bot.targets.listeners,
    bot.focus.listeners,
    bot.home.listeners,
    bot.usage.listeners,
    bot.issue_create.listeners,
)


def prepare(deps: Deps) -> None:
    """What the features add to the app's ``deps``: the outbox hooks, the survey DMs kept out of the
    log, the subcommands."""
    deps.sender.hooks.update(outbox_hooks(deps))
    deps.sender.quiet |= QUIET_PURPOSES  # the survey DMs: logged by purpose only, never by message (anonymity)
    deps.commands.update(COMMANDS)


def schedule(deps: Deps) -> None:
    """Declare every feature's jobs on ``deps.scheduler`` (for ``serve``, and for ``jobs`` and
    ``run-job``, which need no Slack)."""
    for declare in JOBS:
        declare(deps)


def register(app: AsyncApp, deps: Deps) -> None:
    """Attach every feature's listeners to ``app``; each listener is given ``deps`` by name."""
    with_deps(app, deps)
    for feature in LISTENERS:
        feature.register(app)
