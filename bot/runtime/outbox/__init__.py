"""The outbox sender, in the order a message meets it: claiming.py (which due messages this sender
takes, and for how long), pacing.py (each method's and channel's turn, 429 and outage pauses),
sending.py (the Web API call and what its failure means), recording.py (the outcome, written before
the next call takes its place), sender.py (the loop that ties them together)."""

from bot.runtime.outbox.pacing import MethodLimiter
from bot.runtime.outbox.sender import Hook, OutboxHook, OutboxSender
from bot.runtime.outbox.sending import MAX_ATTEMPTS

__all__ = ["MAX_ATTEMPTS", "Hook", "MethodLimiter", "OutboxHook", "OutboxSender"]
