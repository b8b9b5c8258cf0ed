"""What every handler needs, built once per app."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from slack_sdk.web.async_client import AsyncWebClient

from bot.policy import Policy
from bot.references import format_ref
from bot.runtime.event_gate import EventGate
from bot.runtime.hosts import HostDirectory
from bot.runtime.metrics import Metrics
from bot.runtime.outbox import OutboxSender
from bot.runtime.scheduler import Scheduler
from bot.runtime.settings import Settings
from bot.runtime.workspaces import Workspaces
from bot.trackers.identity import Identities
from storage.database import Database

# A subcommand's handler: (deps, the person's user id, the words after the subcommand, respond,
# the Web API client, the slash command's trigger_id for a modal). Its own answers go through
# respond; DatabaseUnavailable is answered once by the dispatcher (bot.intake.listeners).
Subcommand = Callable[["Deps", str, str, Any, Any, str], Awaitable[None]]


T = TypeVar("T")


@dataclass
class Deps:
    settings: Settings
    policy: Policy
    db: Database
    sender: OutboxSender
    hosts: HostDirectory
    workspaces: Workspaces
    # Slack events during a database outage, and a person's requests while their listener runs: kept
    # in the local spool and replayed (bot.runtime.event_gate)
    events: EventGate
    # Tracker issue ids asked of the tracker's API when a host links an issue (bot.trackers.identity)
    identities: Identities
    # The Web API client: SLACK_BOT_TOKEN's, or without a token (installations, the offline commands) none
    client: AsyncWebClient
    scheduler: Scheduler = field(default_factory=Scheduler)
    metrics: Metrics = field(default_factory=Metrics)
    # Slash-command subcommands of other features, from the wiring table (handlers.COMMANDS)
    commands: dict[str, Subcommand] = field(default_factory=dict)

    # A feature's per-app objects (bot.surveys' runner, bot.closing's deliveries, …): ``once``. Shared
    # by reference with the replay twin (dataclasses.replace), so both use the same one.
    built: dict[Callable[..., Any], Any] = field(default_factory=dict)

    def once(self, factory: "Callable[[Deps], T]") -> T:
        """The app's one ``factory(self)``, made at first use: a feature's object that its listeners,
        jobs and outbox hooks share (e.g. ``deps.once(runner_for)``), made without the Bolt app so
        ``jobs`` and ``run-job`` need no Slack."""
        if factory not in self.built:
            self.built[factory] = factory(self)
        return self.built[factory]

    def ref(self, point_id: int) -> str:
        return format_ref(self.policy.reference_prefix, point_id)
