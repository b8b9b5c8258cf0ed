"""The weekly "you said, we did" post (``closing.announce: weekly``) and ``/platform-feedback changelog [weeks]``.

The post is a scheduled job, ``closing.changelog``, at the digest's slot (``insight.digest_weekday``
and ``digest_time`` in ``insight.timezone``), covering the 7 days before it.
"""

import dataclasses
from datetime import timedelta
from functools import partial

from apscheduler.triggers.cron import CronTrigger
from slack_bolt.async_app import AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.changelog.blocks import build_changelog
from bot.changelog.service import JOB, fixes, latest_slot, queue_changelog
from bot.runtime import access
from bot.runtime.context import Deps
from bot.runtime.scheduler import Job
from storage.database import DatabaseUnavailable
from storage.models import utcnow

MAX_WEEKS = 12


def register(app: AsyncApp, deps: Deps) -> None:
    policy = deps.policy

    async def changelog_command(user: str, args: str, respond: AsyncRespond, client: AsyncWebClient) -> None:
        arg = args.strip()
        if arg and not (arg.isdigit() and 1 <= int(arg) <= MAX_WEEKS):
            await respond(response_type="ephemeral", text=f"Usage: `/platform-feedback changelog [weeks]` (1 to {MAX_WEEKS}; default 1).")
            return
        end = utcnow()
        start = end - timedelta(weeks=int(arg or 1))
        try:
            found = await deps.db.run(fixes, start=start, end=end)
            reader = await access.reader(deps, user, [pid for fix in found for pid, _text in fix.points])
        except DatabaseUnavailable:
            await respond(response_type="ephemeral", text=":warning: I couldn't read the changelog just now (our database did not answer). "
                          "Please try again in a minute.")
            return
        found = [dataclasses.replace(fix, points=tuple((pid, reader.words(pid, text)) for pid, text in fix.points)) for fix in found]
        await respond(response_type="ephemeral", **build_changelog(policy.reference_prefix, found, start=start, end=end))

    deps.commands["changelog"] = changelog_command

    config = policy.insight
    if policy.closing.announce == "weekly" and policy.closing.announce_channel:
        hour, minute = (int(x) for x in config.digest_time.split(":"))
        trigger = CronTrigger(day_of_week=config.digest_weekday, hour=hour, minute=minute, timezone=config.timezone)
        deps.scheduler.add(Job(
            name=JOB, db=deps.db, work=partial(queue_changelog, policy=policy), after=deps.sender.wake,
            occurrence_at=partial(latest_slot, weekday=config.digest_weekday, hhmm=config.digest_time, zone=config.timezone),
        ), trigger)
