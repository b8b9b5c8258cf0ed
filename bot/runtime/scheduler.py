"""Scheduled work on APScheduler 3.x. Jobs are added by the surfaces that own them, every one
through ``Scheduler.add``, so ``Scheduler.jobs`` is the whole list (``platform-feedback jobs``).

A job is a named function wrapped once by ``Scheduler.add``. Each run is one transaction that first
claims its occurrence in ``scheduled_run`` (unique on job and occurrence) and then does the work,
typically queuing outbox messages: however many bot instances fire for an occurrence, one claims
it and the others do nothing; if the work fails, the claim is rolled back with it. ``run`` runs any
job now from code (tests, a CLI) for a given occurrence.

Catching up: APScheduler only fires what falls due while it runs, so at start and then every
``CATCH_UP_SECONDS`` each job works out its most recent due time from its own trigger (cron or
interval, in the trigger's time zone) and, if that occurrence was not claimed, runs it now while it
is still useful (``Job.useful_until``; by default until the next one is due) or logs it as skipped
with the reason. A job that has never run anywhere (new, or a fresh database) does not run its past
occurrence at first start: that one is claimed as "before this job existed" and not run, so
installing the bot or adding a survey sends nothing for times already gone.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.cron.expressions import WEEKDAYS
from apscheduler.triggers.interval import IntervalTrigger
from sqlmodel import Session, select

from storage.database import Database, DatabaseUnavailable, insert_unique
from storage.models import ScheduledRun, utcnow

log = logging.getLogger(__name__)

# work(session=..., occurrence=...) runs inside the claim's transaction.
Work = Callable[..., object]
CATCH_UP_SECONDS = 60
CATCH_UP_JOB = "scheduler.catch_up"
# A firing this recent is APScheduler's own to run; catch-up takes it on a later tick if it was
# missed, rather than racing the firing for the claim.
CATCH_UP_GRACE = timedelta(seconds=30)
# Look-back windows for a trigger's latest firing: the first that holds one is walked fire by fire,
# so a frequent trigger is found in a short window and a yearly one still within two years.
_WINDOWS = tuple(timedelta(seconds=s) for s in (120, 3600, 86400, 8 * 86400, 32 * 86400, 367 * 86400, 733 * 86400))


# Interval jobs count their slots from one fixed instant, so every instance fires for the same ones.
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def interval_slot(minutes: int, *, early: timedelta = timedelta()) -> Callable[[datetime], datetime]:
    """``occurrence_at`` for a job every ``minutes``: the start of the slot a firing at ``now``
    stands for (UTC, from ``EPOCH``); a firing up to ``early`` before a slot counts for it."""
    period = timedelta(minutes=minutes)
    return lambda now: EPOCH + (now + early - EPOCH) // period * period


def interval_trigger(minutes: int) -> IntervalTrigger:
    """APScheduler's trigger for those slots."""
    return IntervalTrigger(minutes=minutes, start_date=EPOCH, timezone=timezone.utc)


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


def _state(*, session: Session, job: str, occurrence: datetime) -> str:
    """"claimed" if this occurrence has a claim, "new" if the job has no claim at all, else "due"."""
    if session.exec(select(ScheduledRun.id).where(ScheduledRun.job == job, ScheduledRun.occurrence == occurrence)).first():
        return "claimed"
    return "due" if session.exec(select(ScheduledRun.id).where(ScheduledRun.job == job).limit(1)).first() else "new"


def _mark_before_first_start(*, session: Session, job: str, occurrence: datetime) -> bool:
    """Claim ``occurrence`` as done without running it, unless the job has any claim by now."""
    if session.exec(select(ScheduledRun.id).where(ScheduledRun.job == job).limit(1)).first():
        return False
    run = claim(session=session, job=job, occurrence=occurrence)
    if run is not None:
        run.finished_at = run.started_at
        session.add(run)
    return run is not None


def latest_fire(trigger: BaseTrigger, now: datetime) -> datetime | None:
    """The latest time ``trigger`` fires at or before ``now`` (UTC), None if it never has within
    two years. Asks the trigger itself (APScheduler 3's ``get_next_fire_time``), so time zones and
    daylight-saving changes fall where APScheduler puts them."""
    for window in _WINDOWS:
        at = trigger.get_next_fire_time(None, now - window)
        if at is None or at > now:
            continue
        latest = at
        while at is not None and at <= now:
            latest, at = at, trigger.get_next_fire_time(at, at + timedelta(microseconds=1))
        return latest.astimezone(timezone.utc)
    return None


@dataclass(frozen=True)
class Job:
    name: str  # ScheduledRun.job: at most 64 characters
    db: Database
    work: Work | None  # None only for an ``each_instance`` job
    occurrence_at: Callable[[datetime], datetime]  # which occurrence a firing at this time stands for
    after: Callable[[], None] | None = None  # called when a run did the work (e.g. wake the sender)
    # Async work that cannot sit in one transaction (HTTP calls): awaited with the occurrence once
    # the claim has committed, so it still runs once per occurrence. If it fails, the occurrence
    # stays claimed but unfinished (finished_at null) and is not run again.
    then: Callable[[datetime], Awaitable[object]] | None = None
    # The instant after which an occurrence missed while no scheduler ran is no longer worth
    # running late (an agenda after its session ended), and a short reason for the log. None: it
    # stays useful until the job's next firing supersedes it.
    useful_until: Callable[[datetime], tuple[datetime, str]] | None = None
    # Instead of ``work``: a job that claims nothing (no scheduled_run row, no catch-up) and that
    # every instance awaits at every firing, for work safe to repeat and to run on several
    # instances at once (surveys.tick, usage.tick).
    each_instance: Callable[[], Awaitable[object]] | None = None

    def __post_init__(self):
        if (self.work is None) == (self.each_instance is None):
            raise ValueError(f"job {self.name}: give either work or each_instance")


def in_words(trigger: BaseTrigger) -> str:
    """When ``trigger`` fires, for people: "every minute", "every 15 minutes", "daily 09:00
    Europe/Berlin", "weekly tue 13:00 Europe/Berlin"; any other cron as its fields."""
    if isinstance(trigger, IntervalTrigger):
        seconds = int(trigger.interval.total_seconds())
        for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
            if seconds % size == 0:
                n = seconds // size
                return f"every {unit}" if n == 1 else f"every {n} {unit}s"
        return f"every {seconds} seconds"
    if isinstance(trigger, CronTrigger):
        fields = {f.name: str(f) for f in trigger.fields}
        zone = str(trigger.timezone)
        plain = fields["year"] == fields["month"] == fields["day"] == fields["week"] == "*" and fields["second"] == "0"
        if plain and fields["hour"].isdigit() and fields["minute"].isdigit():
            at = f"{int(fields['hour']):02d}:{int(fields['minute']):02d} {zone}"
            days = fields["day_of_week"]
            days = ",".join(WEEKDAYS[int(d)] if d.isdigit() and int(d) < 7 else d for d in days.split(","))  # APScheduler's 0 is Monday
            return f"daily {at}" if days == "*" else f"weekly {days} {at}"
        named = " ".join(f"{k}={v}" for k, v in fields.items() if v != "*" and not (k == "second" and v == "0"))
        return f"cron {named} {zone}"
    return str(trigger)


class Scheduler:
    # Told of every scheduled firing: (job name, "ran" | "skipped" | "failed" | "missed"); /metrics
    # counts them. "missed": an occurrence found unclaimed after its use (logged with the reason).
    observer: Callable[[str, str], None] | None = None

    def __init__(self, clock: Callable[[], datetime] = utcnow):
        self.aps = AsyncIOScheduler(timezone="UTC")
        self.jobs: dict[str, Job] = {}
        self.triggers: dict[str, BaseTrigger] = {}
        # Jobs a feature would run but does not with these settings: {name: why, in one line}.
        self.off: dict[str, str] = {}
        self.clock = clock
        self._settled: dict[str, datetime] = {}  # per job, the latest occurrence known claimed or missed

    def add(self, job: Job, trigger: BaseTrigger, *, misfire_grace_seconds: int | None = 1800, at_start: bool = False) -> None:
        """Schedule ``job`` on ``trigger``. ``misfire_grace_seconds``: how late (seconds) a firing
        may still run, None: however late. ``at_start``: also fire once as soon as the scheduler
        starts (then on the trigger)."""
        if len(job.name) > 64:
            raise ValueError(f"job name over 64 characters: {job.name}")
        self.jobs[job.name] = job
        self.triggers[job.name] = trigger
        first = {"next_run_time": datetime.now(timezone.utc)} if at_start else {}
        self.aps.add_job(
            partial(self._fire, job.name), trigger, id=job.name, name=job.name, replace_existing=True,
            coalesce=True, max_instances=1, misfire_grace_time=misfire_grace_seconds, **first,
        )

    async def run(self, name: str, occurrence: datetime | None = None) -> bool:
        """Run job ``name`` for ``occurrence`` (default: the one due now). True if this call did
        the work, False if the occurrence had already been run. Errors propagate."""
        job = self.jobs[name]
        if job.each_instance is not None:
            await job.each_instance()
            if job.after:
                job.after()
            return True
        occurrence = occurrence or job.occurrence_at(self.clock())
        ran = await job.db.work(_claim_and_work, job=name, occurrence=occurrence, work=job.work, finish=job.then is None)
        if ran and job.then:
            await job.then(occurrence)
            await job.db.work(_finish, job=name, occurrence=occurrence)
        if ran and job.after:
            job.after()
        return ran

    async def _fire(self, name: str, occurrence: datetime | None = None) -> str:
        """What APScheduler calls: the job owns its errors, and the next occurrence runs regardless.
        Returns the outcome told to the observer."""
        outcome = "failed"
        try:
            ran = await self.run(name, occurrence)
            outcome = "ran" if ran else "skipped"
        except DatabaseUnavailable as exc:
            log.warning("scheduled job %s skipped: database unavailable: %s", name, exc)
        except Exception:
            log.exception("scheduled job %s failed", name)
        else:
            log.info("scheduled job %s %s", name, "ran" if ran else "already ran elsewhere")
        if self.observer:
            self.observer(name, outcome)
        return outcome

    async def catch_up(self) -> dict[str, str]:
        """For every job, its most recent due occurrence (at ``clock()``): run it if nobody has and
        it is still useful, else log why not. Returns {job: what happened} for the jobs it looked
        at: "ran", "claimed" (already run), "first start", "missed: <reason>", "unavailable",
        "failed"; a job with nothing due yet, or due in the last CATCH_UP_GRACE, is left out."""
        now = self.clock()
        done: dict[str, str] = {}
        for name, job in list(self.jobs.items()):
            if job.each_instance is not None:  # claims nothing: it runs at start and then on its trigger
                continue
            fired = latest_fire(self.triggers[name], now)
            if fired is None or now - fired < CATCH_UP_GRACE:
                continue
            occurrence = job.occurrence_at(fired)
            if self._settled.get(name) == occurrence:
                continue
            try:
                done[name] = await self._catch_up_one(name, job, occurrence, fired, now)
            except DatabaseUnavailable as exc:
                log.warning("catch-up of %s postponed: database unavailable: %s", name, exc)
                done[name] = "unavailable"
            except Exception:
                log.exception("catch-up of %s failed", name)
                done[name] = "failed"
        return done

    async def _catch_up_one(self, name: str, job: Job, occurrence: datetime, fired: datetime, now: datetime) -> str:
        state = await job.db.work(_state, job=name, occurrence=occurrence)
        if state == "new":
            if await job.db.work(_mark_before_first_start, job=name, occurrence=occurrence):
                log.info("scheduled job %s: first start; its occurrence %s came before it and is not run", name, occurrence.isoformat())
            self._settled[name] = occurrence
            return "first start"
        if state == "claimed":
            self._settled[name] = occurrence
            return "claimed"
        until, reason = self._useful_until(name, job, occurrence, fired)
        if now >= until:
            self._settled[name] = occurrence
            log.warning("scheduled job %s: occurrence %s missed while the bot was down, skipped: %s", name, occurrence.isoformat(), reason)
            if self.observer:
                self.observer(name, "missed")
            return f"missed: {reason}"
        log.info("scheduled job %s: occurrence %s was missed while the bot was down; running it now", name, occurrence.isoformat())
        outcome = await self._fire(name, occurrence)
        if outcome != "failed":  # a failed one is tried again on the next tick
            self._settled[name] = occurrence
        return {"skipped": "claimed"}.get(outcome, outcome)

    def _useful_until(self, name: str, job: Job, occurrence: datetime, fired: datetime) -> tuple[datetime, str]:
        if job.useful_until is not None:
            return job.useful_until(occurrence)
        following = self.triggers[name].get_next_fire_time(fired, fired + timedelta(microseconds=1))
        if following is None:
            return datetime.max.replace(tzinfo=timezone.utc), "no later occurrence"
        return following.astimezone(timezone.utc), f"the next occurrence ({following.isoformat()}) replaces it"

    def start(self) -> None:
        if not self.aps.running:
            # First at once, then on every tick: a restart across a due time runs what it missed.
            self.aps.add_job(
                self.catch_up, IntervalTrigger(seconds=CATCH_UP_SECONDS), id=CATCH_UP_JOB, name=CATCH_UP_JOB,
                replace_existing=True, coalesce=True, max_instances=1, next_run_time=datetime.now(timezone.utc),
                misfire_grace_time=None,  # the start-up pass runs however late the loop gets to it
            )
            self.aps.start()

    def stop(self) -> None:
        if self.aps.running:
            self.aps.shutdown(wait=False)
