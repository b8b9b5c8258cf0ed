"""The app's wiring table: which feature's listeners the Bolt app gets (in which order), which
subcommands answer `/platform-feedback`, which jobs the scheduler runs and which outbox hooks render
which messages. Each feature keeps its parts beside each other (``bot/<feature>/listeners.py``:
module-level listeners and a ``register(app)`` that only wires them, its ``COMMANDS``;
``bot/<feature>/jobs.py``: ``schedule(deps)``); this is the one place that attaches them. The order
matters where two listeners could take the same event: the DM listener goes before the help
channel's catch-all message listener."""

from slack_bolt.async_app import AsyncApp

import bot.changelog.listeners
import bot.closing.listeners
import bot.closing.polling
import bot.direct_messages.listeners
import bot.focus.listeners
import bot.help_channel.listeners
import bot.home.listeners
import bot.insight.jobs
import bot.insight.listeners
import bot.intake.listeners
import bot.issue_create.listeners
import bot.office_hours.listeners
import bot.progress.jobs
import bot.retention.jobs
import bot.surveys.csat
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
    **bot.surveys.listeners.COMMANDS,
    **bot.insight.listeners.COMMANDS,
    **bot.issue_create.listeners.COMMANDS,
    **bot.targets.listeners.COMMANDS,
}

# Each feature's jobs: ``schedule(deps)`` adds them to deps.scheduler or says why they are off.
JOBS = (
    bot.surveys.jobs.schedule,
    bot.targets.jobs.schedule,
    bot.insight.jobs.schedule,
    bot.usage.jobs.schedule,
    bot.progress.jobs.schedule,
)


def schedule(deps: Deps) -> None:
    """Declare every feature's jobs on ``deps.scheduler`` (for ``serve``, and for ``jobs`` and
    ``run-job``, which need no Slack)."""
    for declare in JOBS:
        declare(deps)


def _legacy(handler) -> Subcommand:
    """A subcommand registered the old way (a closure of its feature's register()), called the new way."""

    async def call(deps, user, args, respond, client, trigger_id):
        extra = {"trigger_id": trigger_id} if getattr(handler, "wants_trigger", False) else {}
        await handler(user, args, respond, client, **extra)

    return call


def register(app: AsyncApp, deps: Deps) -> None:
    """Attach every feature's listeners (and, for now, the jobs their ``register`` declares) to
    ``app``, and the outbox hooks to its sender."""
    with_deps(app, deps)  # each listener's ``deps`` parameter
    deps.sender.hooks.update(outbox_hooks(deps))
    deps.sender.quiet |= QUIET_PURPOSES  # the survey DMs: logged by purpose only, never by message (anonymity)
    bot.intake.listeners.register(app, deps)
    bot.triage.listeners.register(app, deps, on_resolved=bot.surveys.csat.csat_followup_hook(deps.policy))
    bot.closing.listeners.register(app, deps)
    bot.changelog.listeners.register(app, deps)
    bot.closing.polling.register(app, deps)
    bot.direct_messages.listeners.register(app, deps)  # before help_channel's catch-all message listener
    bot.help_channel.listeners.register(app, deps)
    bot.office_hours.listeners.register(app, deps)
    bot.surveys.listeners.register(app)
    bot.retention.jobs.register(app, deps)
    bot.targets.listeners.register(app)
    schedule(deps)  # TODO(#24): once every feature's jobs are in JOBS, the app factory calls it for the serving app only
    bot.focus.listeners.register(app, deps)
    bot.home.listeners.register(app, deps)
    bot.usage.listeners.register(app)
    bot.issue_create.listeners.register(app)  # create from the card
    deps.commands.update({name: _legacy(fn) for name, fn in deps.commands.items()})
    deps.commands.update(COMMANDS)
