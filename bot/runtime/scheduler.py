"""Scheduled work on APScheduler 3.x. Jobs are added by the surfaces that own them.

A job is a named function wrapped once by ``Scheduler.add``. Each run is one transaction that first
claims its occurrence in ``scheduled_run`` (unique on job and occurrence) and then does the work,
typically queuing outbox messages: however many bot instances fire for an occurrence, one claims
it and the others do nothing; if the work fails, the claim is rolled back with it. ``run`` runs any
job now from code (tests, a CLI) for a given occurrence.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from sqlmodel import Session, select

from storage.database import Database, DatabaseUnavailable, insert_unique
from storage.models import ScheduledRun, utcnow

log = logging.getLogger(__name__)

# work(session=..., occurrence=...) runs inside the claim's transaction.
Work = Callable[..., object]


def claim(*, session: Session, job: str, occurrence: datetime) -> ScheduledRun | None:
    """Record that this occurrence runs here; None if another run (or instance) already has it.
    On PostgreSQL a concurrent claim waits on the unique index until the first one commits."""
    run = ScheduledRun(job=job, occurrence=occurrence)
    return run if insert_unique(session, run) else None


def _claim_and_work(*, session: Session, job: str, occurrence: datetime, work: Work, finish: bool = True) -> bool:
    run = claim(session=session, job=job, occurrence=occurrence)
    if run is None:
        return False
    work(session=session, occurrence=occurrence)
    if finish:
        run.finished_at = utcnow()
        session.add(run)
    return True


def _finish(*, session: Session, job: str, occurrence: datetime) -> None:
    run = session.exec(select(ScheduledRun).where(ScheduledRun.job == job, ScheduledRun.occurrence == occurrence)).first()
    if run is not None:
        run.finished_at = utcnow()
        session.add(run)


@dataclass(frozen=True)
class Job:
    name: str  # ScheduledRun.job: at most 64 characters
    db: Database
    work: Work
    occurrence_at: Callable[[datetime], datetime]  # which occurrence a firing at this time stands for
    after: Callable[[], None] | None = None  # called when a run did the work (e.g. wake the sender)
    # Async work that cannot sit in one transaction (HTTP calls): awaited with the occurrence once
    # the claim has committed, so it still runs once per occurrence. If it fails, the occurrence
    # stays claimed but unfinished (finished_at null) and is not run again.
    then: Callable[[datetime], Awaitable[object]] | None = None


class Scheduler:
    # Told of every scheduled firing: (job name, "ran" | "skipped" | "failed"); /metrics counts them.
    observer: Callable[[str, str], None] | None = None

    def __init__(self):
        self.aps = AsyncIOScheduler(timezone="UTC")
        self.jobs: dict[str, Job] = {}

    def add(self, job: Job, trigger: BaseTrigger, *, misfire_grace_seconds: int = 1800) -> None:
        if len(job.name) > 64:
            raise ValueError(f"job name over 64 characters: {job.name}")
        self.jobs[job.name] = job
        self.aps.add_job(
            partial(self._fire, job.name), trigger, id=job.name, name=job.name, replace_existing=True,
            coalesce=True, misfire_grace_time=misfire_grace_seconds,
        )

    async def run(self, name: str, occurrence: datetime | None = None) -> bool:
        """Run job ``name`` for ``occurrence`` (default: the one due now). True if this call did
        the work, False if the occurrence had already been run. Errors propagate."""
        job = self.jobs[name]
        occurrence = occurrence or job.occurrence_at(utcnow())
        ran = await job.db.run(_claim_and_work, job=name, occurrence=occurrence, work=job.work, finish=job.then is None)
        if ran and job.then:
            await job.then(occurrence)
            await job.db.run(_finish, job=name, occurrence=occurrence)
        if ran and job.after:
            job.after()
        return ran

    async def _fire(self, name: str) -> None:
        """What APScheduler calls: the job owns its errors, and the next occurrence runs regardless."""
        outcome = "failed"
        try:
            ran = await self.run(name)
            outcome = "ran" if ran else "skipped"
        except DatabaseUnavailable as exc:
            log.warning("scheduled job %s skipped: database unavailable: %s", name, exc)
        except Exception:
            log.exception("scheduled job %s failed", name)
        else:
            log.info("scheduled job %s %s", name, "ran" if ran else "already ran elsewhere")
        if self.observer:
            self.observer(name, outcome)

    def start(self) -> None:
        if not self.aps.running:
            self.aps.start()

    def stop(self) -> None:
        if self.aps.running:
            self.aps.shutdown(wait=False)
