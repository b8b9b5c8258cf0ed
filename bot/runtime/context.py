"""What every handler needs, built once per app."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.policy import Policy
from bot.references import format_ref
from bot.runtime.hosts import HostDirectory
from bot.runtime.metrics import Metrics
from bot.runtime.outbox import OutboxSender
from bot.runtime.scheduler import Scheduler
from bot.runtime.settings import Settings
from bot.runtime.workspaces import Workspaces
from storage.database import Database

if TYPE_CHECKING:
    from bot.runtime.event_gate import EventGate
    from bot.trackers.identity import Identities


@dataclass
class Deps:
    settings: Settings
    policy: Policy
    db: Database
    sender: OutboxSender
    hosts: HostDirectory
    workspaces: Workspaces
    scheduler: Scheduler = field(default_factory=Scheduler)
    metrics: Metrics = field(default_factory=Metrics)
    # Slash-command subcommands other surfaces add: name -> fn(user, args, respond, client)
    commands: dict[str, Callable[..., Awaitable[None]]] = field(default_factory=dict)
    # Slack events during a database outage: kept in the local spool and replayed (bot.runtime.event_gate)
    events: "EventGate | None" = None
    # Tracker issue ids asked of the tracker's API when a host links an issue (bot.trackers.identity)
    identities: "Identities | None" = None
    # Usage events' after-ack work: a bot.usage.settling.Settler, made by bot.usage.listeners.register
    # (Any: the runtime sits below the features, tests/test_imports.py)
    usage: Any = None
    # Creating issues from cards (bot.issue_create.service.Creator), set by its register()
    issue_creator: Any = None  # (Any: the runtime sits below the features, tests/test_imports.py)

    def ref(self, point_id: int) -> str:
        return format_ref(self.policy.reference_prefix, point_id)
