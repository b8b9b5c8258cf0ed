"""Tracker deliveries: recorded before the tracker gets its answer, applied right after, and
applied again on the next tick if the process stopped in between.

The answer waits only for one insert, whatever the fan-out: a closure that owes 2,000 DMs is
applied after the answer, well inside GitHub's and GitLab's 10 s and Linear's 5 s delivery
timeouts: first its links (one short transaction), then the steps that owes (the reports' state,
one notice and DM per reporter, the announcement), each at most ``closing.CHUNK`` rows in a
transaction of its own, so another delivery's recording never waits long behind it (SQLite has one
writer at a time).
"""

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta

from prometheus_client import Counter
from sqlmodel import Session

from bot.closing import service as closing
from bot.runtime.context import Deps
from bot.trackers import IssueEvent
from storage import links
from storage.database import Database, DatabaseUnavailable
from storage.models import utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5  # a delivery that fails to apply this often is left for an operator (logged)
IN_FLIGHT = timedelta(seconds=30)  # younger pending deliveries are being applied by their request
STEP_PAUSE = 0.05  # seconds between a delivery's steps
KEEP = timedelta(days=7)  # applied deliveries are kept this long (their hash catches replays)
RECOVERY_JOB = "closing.deliveries"  # the job that applies what a stopped process left (bot.closing.jobs)


def record(*, session: Session, tracker: str, body: bytes, events: list[IssueEvent]) -> int | None:
    """Record a verified delivery; its id, or None when this exact body was recorded before."""
    return links.record_delivery(session=session, tracker=tracker, body=body, events=[e.to_json() for e in events])


def prune(*, session: Session, occurrence, job: str = RECOVERY_JOB) -> None:
    """Runs in the recovery job's claim: old applied deliveries, and the job's own old claims."""
    links.prune_deliveries(session=session, keep=KEEP)
    links.prune_runs(session=session, job=job, before=occurrence - timedelta(days=2))


class Deliveries:
    """Applies recorded deliveries off the request. ``observe(tracker, outcome)`` is told of each
    delivery's outcome (applied, unchanged, unmatched: ``DeliveryResult.outcome``); ``wake`` is
    called when messages were queued."""

    def __init__(self, *, db: Database, policy, observe: Callable[[str, str], None], wake: Callable[[], None]):
        self.db, self.policy, self.observe, self.wake = db, policy, observe, wake
        self._tasks: set[asyncio.Task] = set()
        self._logged: OrderedDict[tuple[str, str], None] = OrderedDict()

    def apply_soon(self, delivery_id: int) -> None:
        task = asyncio.get_running_loop().create_task(self.apply(delivery_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def apply(self, delivery_id: int) -> bool:
        """Apply one delivery; False if it failed (it stays pending for the next tick)."""
        try:
            result = await self.db.run(closing.apply_delivery, delivery_id=delivery_id)
        except DatabaseUnavailable as exc:
            log.warning("tracker delivery %d not applied yet: database unavailable: %s", delivery_id, exc)
            return False
        except Exception:
            log.exception("tracker delivery %d failed to apply", delivery_id)
            try:
                attempts = await self.db.run(links.count_attempt, delivery_id=delivery_id)
            except DatabaseUnavailable:
                return False
            if attempts >= MAX_ATTEMPTS:
                log.error("tracker delivery %d failed %d times: left unapplied", delivery_id, attempts)
            return False
        if result is None:
            return True
        if result.outcome is not None:
            tracker = result.outcomes[0][0]
            self.observe(tracker, result.outcome)
            if result.outcome == "unmatched":
                self._log_unmatched(tracker, [key for _, key, _ in result.outcomes])
        if result.closures:
            self.wake()
        remaining = result.steps
        try:
            while remaining:
                remaining = await self.db.run(closing.run_steps, delivery_id=delivery_id, policy=self.policy)
                self.wake()
                # A pause between steps: SQLite's busy handler is not fair, and a writer that
                # re-takes the lock at once would starve the next delivery's answer.
                await asyncio.sleep(STEP_PAUSE)
        except DatabaseUnavailable as exc:
            log.warning("tracker delivery %d: not all applied yet: database unavailable: %s", delivery_id, exc)
            return False
        return True

    def unmatched(self, tracker: str, events: list[IssueEvent]) -> None:
        """A delivery whose events name no linked issue, answered without being recorded
        (``closing.names_a_link``): counted and logged as an applied one would be."""
        self.observe(tracker, "unmatched")
        self._log_unmatched(tracker, [e.key for e in events])

    async def recover(self, *_args) -> int:
        """Apply what a stopped process recorded but did not apply. Returns how many were applied."""
        ids = await self.db.run(links.pending_deliveries, received_before=utcnow() - IN_FLIGHT, max_attempts=MAX_ATTEMPTS)
        done = 0
        for delivery_id in ids:
            done += await self.apply(delivery_id)
        if ids:
            log.info("applied %d of %d pending tracker deliveries", done, len(ids))
        return done

    def _log_unmatched(self, tracker: str, keys: list[str]) -> None:
        """One line per delivery, naming the keys not logged before (per process, the last 1,000
        keys): a webhook pointed at the wrong bot or a link with a typo shows up in the log without
        flooding it, whatever a body names."""
        new = [key for key in keys if (tracker, key) not in self._logged]
        if not new:
            return
        for key in new:
            self._logged[(tracker, key)] = None
        while len(self._logged) > 1000:
            self._logged.popitem(last=False)
        shown = ", ".join(new[:5]) + (f" and {len(new) - 5} more" if len(new) > 5 else "")
        log.warning("%s delivery for %s matches no linked report", tracker, shown)


def runner_for(deps: Deps) -> Deliveries:
    """The app's one ``Deliveries`` (``deps.once(runner_for)``): the webhook routes hand it what they
    record, the recovery job what a stopped process left; ``pf_tracker_events`` counts its outcomes."""
    events = Counter("pf_tracker_events", "Tracker webhook deliveries applied, by tracker and outcome "
                     "(applied, unchanged, unmatched: no linked report has any issue it names)",
                     ["tracker", "outcome"], registry=deps.metrics.registry)
    return Deliveries(db=deps.db, policy=deps.policy, observe=lambda t, o: events.labels(t, o).inc(), wake=deps.sender.wake)
