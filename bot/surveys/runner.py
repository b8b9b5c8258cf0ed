"""The runner: finds a run's audience (Slack reads through a narrow callable the caller passes
in) and queues its DMs; every few minutes resumes runs left resolving, queues due reminders and
closes runs whose time is up. Safe to run from any number of instances."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio.to_thread

from bot.policy import Survey
from bot.runtime.context import Deps
from bot.surveys import timing
from bot.surveys.results import run_survey
from bot.surveys.runs import SurveyError, close_and_report, queue_recipients, queue_reminders, start_run
from bot.surveys.sealing import Keys
from storage import surveys as store
from storage.database import DatabaseUnavailable
from storage.models import as_utc, utcnow
from storage.surveys import NewRecipient, SurveyRun

log = logging.getLogger(__name__)

LEASE_SECONDS = 300
TICK_MINUTES = 5
CHUNK = 500  # recipients added (and DMs queued) per transaction
LOOKUP_CHUNK = 100  # users.info calls between two lease renewals
USERS_LIST_ABOVE = 300  # a bigger audience is looked up with users.list (Tier 2, 200 a page) instead of users.info each

# ------------------------------------------------------------------ the runner: audience, reminders, closing


@dataclass(frozen=True)
class Person:
    user_id: str
    tz: str | None


class ReadError(Exception):
    """A Slack read failed for good; ``code`` is Slack's error code (e.g. ``channel_not_found``)."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


# ``read(method, **kwargs) -> response data``: a Web API read by the client's method name (e.g.
# "users_info"), waiting out rate limits itself; raises ReadError, or SurveyError when it cannot
# reach Slack at all (not installed). ``bot.surveys.slack_reads.slack_reads`` is the real one.
Read = Callable[..., Awaitable[dict]]


EXTERNAL = "people of other organisations (Slack Connect)"
GUESTS = "guests"


def not_ours(member: dict, team: str | None, enterprise: str | None) -> str | None:
    """Why a user object (users.info / users.list) is not one of the survey's own people, or None.

    A channel shared through Slack Connect lists the partner's members too (conversations.members
    gives ids only). Their user objects say so: ``is_stranger`` (true for an external member the app
    cannot see a profile of) or a ``team_id`` of another workspace; on Enterprise Grid a colleague's
    ``team_id`` may be a sibling workspace, and ``enterprise_user.enterprise_id`` names the org
    (https://docs.slack.dev/apis/slack-connect, "External members"; users.info). Guests
    (``is_restricted``: multi-channel, ``is_ultra_restricted``: single-channel) are contractors or
    partners invited in, not the developers an internal survey asks. All are left out and counted as
    such, never asked."""
    if member.get("is_stranger"):
        return EXTERNAL
    their_team = member.get("team_id")
    their_org = (member.get("enterprise_user") or {}).get("enterprise_id") if isinstance(member.get("enterprise_user"), dict) else None
    if team and their_team and their_team != team and not (enterprise and their_org == enterprise):
        return EXTERNAL
    if member.get("is_restricted") or member.get("is_ultra_restricted"):
        return GUESTS
    return None


class SurveyRunner:
    """Finds a run's audience in Slack and queues its DMs; every few minutes (``tick``) resumes
    runs left resolving, queues due reminders and closes runs whose time is up."""

    def __init__(self, deps: Deps, read: Read, keys: Keys):
        self.deps = deps
        self._call = read
        self.keys = keys
        self._lock = asyncio.Lock()
        self._unwiped = False  # a close's rewrite left old versions behind: the next tick rewrites again
        self._tasks: set[asyncio.Task] = set()
        self.left_out: dict[int, dict[str, int]] = {}  # run id -> why -> how many (``lookup``; read by ``resolve``)

    def _survey(self, name: str) -> Survey | None:
        return next((s for s in self.deps.policy.surveys if s.name == name), None)

    def kick(self) -> None:
        """Run a tick soon, in the background (after a run was created)."""
        task = asyncio.get_running_loop().create_task(self.tick())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self, survey: Survey, *, started_by: str | None, deliver_now: bool = False) -> SurveyRun:
        now = utcnow()
        run = await self.deps.db.run(start_run, keys=self.keys, survey=survey, policy=self.deps.policy, occurrence=now, manual=True,
                                     started_by=started_by, deliver_now=deliver_now, now=now)
        if run is None:
            raise SurveyError(f"{survey.name} was started a moment ago already.")
        return run

    async def tick(self, now: datetime | None = None) -> None:
        async with self._lock:
            db = self.deps.db
            try:
                for run_id in await db.run(store.runs_to_resolve, now=now):
                    await self.resolve(run_id)
                await db.run(queue_reminders, policy=self.deps.policy, now=now)
                closed = False
                for run_id in await db.run(store.runs_due_to_close, now=now):
                    closed |= await db.run(close_and_report, keys=self.keys, run_id=run_id, policy=self.deps.policy, now=now)
                if closed or self._unwiped:  # a rewrite that gave up (an older snapshot) is tried again
                    self._unwiped = not await anyio.to_thread.run_sync(store.wipe_files, db.engine)
            except DatabaseUnavailable as exc:
                log.warning("surveys: database unavailable: %s", exc)
            except Exception:
                log.exception("surveys: tick failed")
        self.deps.sender.wake()

    # ---------------------------------------------------------- resolving

    async def resolve(self, run_id: int) -> bool:
        """Find the audience of a resolving run and queue their DMs; False if another instance
        holds it or it is not resolving. Safe to repeat: who is already in is skipped."""
        db = self.deps.db
        run = await db.run(store.take_lease, run_id=run_id, seconds=LEASE_SECONDS)
        if run is None:
            return False
        survey = run_survey(run)
        members, errors = await self.audience(survey)
        known = await db.run(store.recipient_ids, run_id=run_id)
        out = await db.run(store.opted_out, user_ids=set(members))
        todo = [u for u in members if u not in known and u not in out]
        people = await self.lookup(todo, run_id)
        left_out = self.left_out.pop(run_id, {})
        if left_out:
            errors.append("left out: " + ", ".join(f"{n} {why}" for why, n in sorted(left_out.items())))
        started = as_utc(run.started_at)
        rows = [
            NewRecipient(p.user_id, p.tz or survey.timezone, members[p.user_id],
                         started if run.deliver_now else timing.delivery_time(started, p.tz, survey.delivery_hour, fallback=survey.timezone))
            for p in people
        ]
        for i in range(0, len(rows), CHUNK):
            await db.run(queue_recipients, run_id=run_id, people=rows[i : i + CHUNK], policy=self.deps.policy)
            await db.run(store.renew_lease, run_id=run_id, seconds=LEASE_SECONDS)
            self.deps.sender.wake()
        await db.run(store.open_run, run_id=run_id, error="; ".join(errors) or None)
        log.info("survey %s run %s: %s new recipients%s", run.survey, run_id, len(rows), f" ({'; '.join(errors)})" if errors else "")
        return True

    async def audience(self, survey: Survey) -> tuple[dict[str, str | None], list[str]]:
        """Everyone the survey asks -> their segment; and what could not be read."""
        errors: list[str] = []
        audience = survey.audience
        groups: dict[str, set[str]] = {}
        for group in dict.fromkeys([*audience.usergroups, *survey.segment_usergroups]):
            try:
                groups[group] = set((await self._call("usergroups_users_list", usergroup=group)).get("users") or [])
            except ReadError as exc:
                errors.append(f"user group {group}: {exc.code}")
        channels: dict[str, set[str]] = {}
        for channel in audience.channels:
            try:
                channels[channel] = await self._channel_members(channel)
            except ReadError as exc:
                errors.append(f"channel {channel}: {exc.code}")
        everyone: dict[str, None] = {}
        for channel in audience.channels:
            everyone.update(dict.fromkeys(sorted(channels.get(channel, ()))))
        for group in audience.usergroups:
            everyone.update(dict.fromkeys(sorted(groups.get(group, ()))))
        if audience.active_days:
            since = utcnow() - timedelta(days=audience.active_days)
            everyone.update(dict.fromkeys(sorted(await self.deps.db.run(store.active_users, since=since))))
        segment_groups = list(dict.fromkeys([*audience.usergroups, *survey.segment_usergroups]))

        def segment(user: str) -> str | None:
            group = next((g for g in segment_groups if user in groups.get(g, ())), None)
            if group:
                return f"usergroup:{group}"
            channel = next((c for c in audience.channels if user in channels.get(c, ())), None)
            return f"channel:{channel}" if channel else None

        return {u: segment(u) for u in everyone if isinstance(u, str) and u[:1] in ("U", "W")}, errors

    async def _channel_members(self, channel: str) -> set[str]:
        members: set[str] = set()
        cursor = None
        while True:
            page = await self._call("conversations_members", channel=channel, limit=1000, **({"cursor": cursor} if cursor else {}))
            members.update(page.get("members") or [])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return members

    async def lookup(self, user_ids: list[str], run_id: int) -> list[Person]:
        """Each person's time zone (users.info, or users.list for a big audience); bots, apps and
        deactivated accounts are left out. Someone Slack cannot find is left out too."""
        if not user_ids:
            return []
        if len(user_ids) > USERS_LIST_ABOVE:
            found = await self._users_list(set(user_ids))
            await self.deps.db.run(store.renew_lease, run_id=run_id, seconds=LEASE_SECONDS)
            missing = [u for u in user_ids if u not in found]
        else:
            found, missing = {}, list(user_ids)
        semaphore = asyncio.Semaphore(4)

        async def info(user: str) -> None:
            async with semaphore:
                try:
                    found[user] = (await self._call("users_info", user=user)).get("user") or {}
                except ReadError as exc:
                    log.info("survey: %s left out (%s)", user, exc.code)

        for i in range(0, len(missing), LOOKUP_CHUNK):
            await asyncio.gather(*(info(u) for u in missing[i : i + LOOKUP_CHUNK]))
            await self.deps.db.run(store.renew_lease, run_id=run_id, seconds=LEASE_SECONDS)
        home = await self._home()
        people, left_out = [], self.left_out.setdefault(run_id, {})
        for user in user_ids:
            member = found.get(user)
            if not member or member.get("deleted") or member.get("is_bot") or member.get("is_app_user") or user == "USLACKBOT":
                continue
            why = not_ours(member, *home)
            if why:
                left_out[why] = left_out.get(why, 0) + 1
                continue
            people.append(Person(user, member.get("tz") if isinstance(member.get("tz"), str) else None))
        if left_out:
            log.info("survey run %s: left out %s", run_id, left_out)
        return people

    async def _home(self) -> tuple[str | None, str | None]:
        """The workspace (and Enterprise Grid org) the survey is sent from: auth.test of its installation."""
        try:
            data = await self._call("auth_test")
        except ReadError:
            return None, None
        return data.get("team_id"), data.get("enterprise_id")

    async def _users_list(self, wanted: set[str]) -> dict[str, dict]:
        found: dict[str, dict] = {}
        cursor = None
        while True:
            page = await self._call("users_list", limit=200, **({"cursor": cursor} if cursor else {}))
            for member in page.get("members") or []:
                if isinstance(member, dict) and member.get("id") in wanted:
                    found[member["id"]] = member
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return found
