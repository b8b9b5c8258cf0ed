"""Claiming: which due messages this sender takes, for how long, and in what order they go.

A batch is claimed in one transaction (``storage.outbox.claim_batch``: ``FOR UPDATE SKIP LOCKED``
on PostgreSQL, so several senders share the table without taking the same row), each message held
for ``claim_seconds`` (the deployment's OUTBOX_CLAIM_SECONDS, default ``outbox.CLAIM_SECONDS``). A
sender that dies loses its claims when they run out and another sends the messages. A batch claims
about ``batch_seconds`` of sending per method and never starts a send later than ``hold_seconds``
after the claim (at most half the claim), so a claim always outlasts the sending; a message whose
turn would come later goes back to the outbox unattempted.
"""

import asyncio
import json
from dataclasses import dataclass, field

from storage import outbox
from storage.models import OutboxMessage

# Where a claimed message is, for a stop in the middle of a batch.
CLAIMED, IN_FLIGHT, DONE = "claimed", "in_flight", "done"


@dataclass
class Batch:
    """One claimed batch being sent."""

    messages: list[OutboxMessage]
    latest: float  # no turn may start after this (clock time): the claim must outlast the sending
    semaphore: asyncio.Semaphore  # the requests in flight
    state: dict[int, str] = field(default_factory=dict)
    payloads: dict[int, dict] = field(default_factory=dict)  # message id -> its payload, parsed once
    attempted: int = 0
    unrecorded: bool = False  # a send could not be recorded (database down): start no more
    all_started: asyncio.Event | None = None  # set once no message is waiting for its turn

    def __post_init__(self):
        self.state = {m.id: CLAIMED for m in self.messages}
        self.payloads = {m.id: json.loads(m.payload) for m in self.messages}
        self._waiting = len(self.messages)

    def mark(self, message_id: int, state: str) -> None:
        """``message_id`` is now IN_FLIGHT or DONE."""
        if self.state.get(message_id) == CLAIMED:
            self._waiting -= 1
            if self._waiting == 0 and self.all_started is not None:
                self.all_started.set()
        self.state[message_id] = state

    def not_started(self) -> list[int]:
        return [i for i, s in self.state.items() if s == CLAIMED]


def hold_seconds(batch_seconds: float, claim_seconds: float) -> float:
    """How long after its claim a batch may still start sends: twice the batch, at most half the claim."""
    return min(2 * batch_seconds, claim_seconds / 2)


async def claim(db, *, limit_for, skip_methods, claim_seconds: float) -> list[OutboxMessage]:
    """Claim due messages: at most ``limit_for(method)`` of each method, none of ``skip_methods``
    (paused), each held for ``claim_seconds``. Oldest first."""
    return await db.run(outbox.claim_batch, limit_for=limit_for, skip_methods=skip_methods, claim_seconds=claim_seconds)


def chains(batch: Batch, hooks) -> list[list[OutboxMessage]]:
    """Split a batch (oldest first) into what must go in order: one channel's messages, or one
    hook's (a card's post before its updates; a discreet hook's messages, or a ``by_channel`` hook's,
    are independent and go by channel). Different chains go concurrently."""
    found: dict[str, list[OutboxMessage]] = {}
    for message in batch.messages:
        hook = hooks.get(message.purpose or "")
        if hook is not None and not hook.discreet and not hook.by_channel:
            key = f"hook:{message.purpose}"
        else:
            channel = batch.payloads[message.id].get("channel")
            key = f"channel:{channel}" if channel else f"message:{message.id}"
        found.setdefault(key, []).append(message)
    return list(found.values())
