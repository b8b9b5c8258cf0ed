"""Friction insight in Slack: ``/platform-feedback top [days]`` and the weekly digest.

The digest is a scheduled job (``insight.digest``, weekly at ``insight.digest_weekday`` and
``digest_time`` in ``insight.timezone``). A run claims its occurrence and, in the same transaction,
queues the digest post and its chart (``files.uploadV2`` through the outbox, a base64 PNG), both
with dedupe keys derived from the occurrence: one digest per week, however many instances run.
"""

from datetime import datetime, timedelta, timezone
from functools import partial

from apscheduler.triggers.cron import CronTrigger
from slack_bolt.async_app import AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.insight.blocks import build_top
from bot.insight.digest import JOB, queue_digest, top
from bot.policy import Insight
from bot.runtime import access
from bot.runtime.context import Deps
from bot.runtime.scheduler import Job
from storage.database import DatabaseUnavailable

EARLY_TOLERANCE = timedelta(seconds=60)  # a firing this early still counts for the coming occurrence


def digest_trigger(config: Insight) -> CronTrigger:
    hour, minute = (int(x) for x in config.digest_time.split(":"))
    return CronTrigger(day_of_week=config.digest_weekday, hour=hour, minute=minute, timezone=config.timezone)


def latest_occurrence(trigger: CronTrigger, now: datetime) -> datetime:
    """The latest time ``trigger`` fires at or before ``now`` (plus a little tolerance), in UTC:
    the occurrence a firing at ``now`` stands for. Asks the trigger itself, so daylight-saving
    changes fall where APScheduler puts them."""
    now = now + EARLY_TOLERANCE
    at = trigger.get_next_fire_time(None, now - timedelta(days=8))
    latest = at
    while at is not None and at <= now:
        latest, at = at, trigger.get_next_fire_time(at, at + timedelta(seconds=1))
    return latest.astimezone(timezone.utc)


# ------------------------------------------------------------------ Slack


def register(app: AsyncApp, deps: Deps) -> None:
    policy = deps.policy

    async def top_command(user: str, args: str, respond: AsyncRespond, client: AsyncWebClient) -> None:
        arg = args.strip().removeprefix("--days").strip()
        if arg and not (arg.isdigit() and 1 <= int(arg) <= 365):
            await respond(response_type="ephemeral", text="Usage: `/platform-feedback top [days]` (1 to 365; default "
                          f"{policy.insight.window_days}).")
            return
        days = int(arg) if arg else policy.insight.window_days
        try:
            scores, health, targets = await deps.db.run(top, days=days, policy=policy)
        except DatabaseUnavailable:
            await respond(response_type="ephemeral", text=":warning: I couldn't read the numbers just now (our database did not answer). "
                          "Please try again in a minute.")
            return
        show_points = (await access.reader(deps, user)).host  # a list of others' words: hosts only (bot.runtime.access)
        await respond(response_type="ephemeral", **build_top(policy.reference_prefix, policy.taxonomy, scores, health, show_points=show_points,
                                                                targets=targets))

    deps.commands["top"] = top_command

    config = policy.insight
    if config.digest_channel:
        trigger = digest_trigger(config)
        job = Job(
            name=JOB, db=deps.db, work=partial(queue_digest, policy=policy),
            occurrence_at=partial(latest_occurrence, trigger), after=deps.sender.wake,
        )
        deps.scheduler.add(job, trigger)
