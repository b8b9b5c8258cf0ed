"""Recording: what the sender learnt about its messages, written to the outbox.

A send is recorded before its place among the requests in flight is given up (``Recorder.commit``
is awaited inside it), so what has been sent but not yet recorded is never more than the calls in
flight: a kill -9, or a database that cannot be reached, leaves at most ``max_in_flight`` messages
that Slack has and the outbox does not know of, and only those can go twice once their claims run
out. Sends that finish together share one transaction (a group commit): a caller that arrives
while a write runs is written by the next one.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session

from storage import outbox
from storage.models import OutboxMessage


@dataclass
class Results:
    """What the sender learnt and has not written yet."""

    sent: list[int] = field(default_factory=list)
    sent_hooked: list[tuple[OutboxMessage, dict]] = field(default_factory=list)
    retry: list[tuple[int, float, str]] = field(default_factory=list)  # id, delay, error
    failed: list[tuple[int, str]] = field(default_factory=list)
    released: list[tuple[int, float, str | None]] = field(default_factory=list)  # id, delay, error
    erased: list[int] = field(default_factory=list)  # a discreet hook's messages, sent or not: deleted alike
    deferred: dict[str, datetime] = field(default_factory=dict)  # method -> paused until (wall clock)

    def __bool__(self) -> bool:
        return any((self.sent, self.sent_hooked, self.retry, self.failed, self.released, self.erased, self.deferred))

    def merge(self, other: "Results") -> None:
        self.sent[:0] = other.sent
        self.sent_hooked[:0] = other.sent_hooked
        self.retry[:0] = other.retry
        self.failed[:0] = other.failed
        self.released[:0] = other.released
        self.erased[:0] = other.erased
        for method, until in other.deferred.items():
            self.deferred[method] = max(until, self.deferred.get(method, until))

    def take(self) -> "Results":
        """Everything noted so far, leaving this empty (the same object: callers may hold it)."""
        taken = Results(self.sent, self.sent_hooked, self.retry, self.failed, self.released, self.erased, self.deferred)
        self.sent, self.sent_hooked, self.retry, self.failed, self.released, self.erased, self.deferred = [], [], [], [], [], [], {}
        return taken

    def defer(self, method: str, until: datetime) -> None:
        self.deferred[method] = max(until, self.deferred.get(method, until))


def record(*, session: Session, results: Results, sent_hook: Callable[..., None]) -> None:
    """Write ``results`` in ``session`` (one transaction). ``sent_hook(session=, message=,
    response=)`` records a hooked message's send (its hook sees what Slack answered)."""
    outbox.mark_sent_many(session=session, message_ids=results.sent)
    for message, response in results.sent_hooked:
        sent_hook(session=session, message=message, response=response)
    for message_id, delay, error in results.retry:
        outbox.mark_retry(session=session, message_id=message_id, delay_seconds=delay, error=error)
    for message_id, error in results.failed:
        outbox.mark_failed(session=session, message_id=message_id, error=error)
    groups: dict[tuple[float, str | None], list[int]] = {}
    for message_id, delay, why in results.released:  # why: None, or the error it went back with
        groups.setdefault((round(delay, 1), why), []).append(message_id)
    for (delay, why), ids in groups.items():
        outbox.release(session=session, message_ids=ids, delay_seconds=delay, error=why)
    outbox.erase(session=session, message_ids=results.erased)
    for method, until in results.deferred.items():
        outbox.defer_method(session=session, method=method, until=until)


class Recorder:
    """Collects results (``pending``) and writes them with group commits."""

    def __init__(self, sent_hook: Callable[..., None]):
        self.pending = Results()
        self._sent_hook = sent_hook
        self._lock = asyncio.Lock()

    async def commit(self, db) -> None:
        """Write everything noted so far (and whatever else is noted while a write runs), in one
        transaction per write, through ``db.run``. If the database is down the results are kept
        for the next commit and DatabaseUnavailable is raised."""
        async with self._lock:  # FIFO: a caller's results are in this write or the one before
            results = self.pending.take()
            if not results:
                return
            try:
                await db.run(record, results=results, sent_hook=self._sent_hook)
            except BaseException:
                self.pending.merge(results)
                raise
