"""What every handler needs, built once per app."""

from dataclasses import dataclass

from bot.config import Policy, Settings
from bot.references import format_ref
from bot.sender import OutboxSender
from storage.database import Database


@dataclass
class Deps:
    settings: Settings
    policy: Policy
    db: Database
    sender: OutboxSender

    def ref(self, point_id: int) -> str:
        return format_ref(self.policy.reference_prefix, point_id)
