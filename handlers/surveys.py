"""Pulse surveys in Slack: scheduled and by-hand runs, the DMs (through the outbox, at each
person's delivery hour), answers by button and modal, reminders, closing with results and a chart,
hosts filing a comment as a data point, opt-out, and the CSAT follow-up after a resolve.

How a run stays exactly-once across restarts and instances:

- A scheduled run is a ``bot.runtime.scheduler`` job: its occurrence is claimed in ``scheduled_run`` and
  the ``survey_run`` row is written in the same transaction (unique on survey and occurrence).
- The run then "resolves": the audience is looked up in Slack and each person is added to
  ``survey_recipient`` with their DM queued in the outbox (dedupe key per run and person), in
  chunks, under a lease on the run. A crash leaves the run resolving; once the lease runs out the
  next tick (every few minutes, and at start-up) carries on where it stopped.
- Reminders (dedupe key per run, person and reminder) and closing (a row lock and the run's status)
  are likewise safe to run from any number of instances.
"""

import asyncio
import base64
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial

from apscheduler.triggers.interval import IntervalTrigger
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import Session, col, update

from bot.web import charts
from bot.operations import surveys as logic
from bot.blocks.intake import build_try_again
from bot.blocks.surveys import (
    COMMENT_BLOCK,
    TEXT_BLOCK,
    SurveyAction,
    SurveyCallback,
    SurveyMetadata,
    build_closed_notice,
    build_comment_modal,
    build_csat_dm,
    build_opt_out_answer,
    build_results,
    build_saved_view,
    build_survey_dm,
    build_surveys_list,
    chart_comment,
)
from bot.runtime.config import Policy, Survey
from bot.runtime.context import Deps
from bot.operations.intake import flatten_state, suggest_categories
from bot.runtime.scheduler import Job
from bot.blocks.text import from_slack
from bot.runtime.workspaces import NotInstalled
from bot.operations.filing import file_report
from storage import outbox
from storage import surveys as store
from storage.database import DatabaseUnavailable
from storage.friction import FrictionDraft
from storage.models import FrictionPoint, OutboxMessage, OutboxStatus, Source, Status, as_utc, utcnow
from storage.surveys import NewRecipient, RunStatus, SurveyRun

log = logging.getLogger(__name__)

CSAT_PURPOSE = "csat_followup"  # outbox purpose: the CSAT follow-up DM, rendered when sent
LEASE_SECONDS = 300
TICK_MINUTES = 5
CHUNK = 500  # recipients added (and DMs queued) per transaction
LOOKUP_CHUNK = 100  # users.info calls between two lease renewals
USERS_LIST_ABOVE = 300  # a bigger audience is looked up with users.list (Tier 2, 200 a page) instead of users.info each
MAX_RATE_WAIT = 60.0
NOT_A_HOST = "Only platform hosts can do that. Nothing was changed."
USAGE = ("Usage: `/platform-feedback survey send NAME [now]` starts a run (by default each person gets it at the "
         "survey's delivery hour in their own time zone); `/platform-feedback survey results NAME` shows the latest results. "
         "`/platform-feedback surveys` lists the surveys; `surveys off` / `surveys on` stops or restarts your survey DMs.")


class SurveyError(Exception):
    """A survey action cannot apply; ``str()`` is what the person is told."""


def job_name(survey: Survey) -> str:
    return f"survey:{survey.name}"


def results_channel(survey: Survey, policy: Policy) -> str | None:
    return survey.results_channel or policy.triage.channel


def _hold_until(session: Session, keys: dict[str, datetime]) -> None:
    """Keep freshly queued messages back until their time (``not_before``), in the same transaction."""
    by_time: dict[datetime, list[str]] = {}
    for key, moment in keys.items():
        by_time.setdefault(moment, []).append(key)
    for moment, group in by_time.items():
        for i in range(0, len(group), 500):
            session.exec(
                update(OutboxMessage)
                .where(col(OutboxMessage.dedupe_key).in_(group[i : i + 500]), OutboxMessage.status == OutboxStatus.pending)
                .values(not_before=moment)
                .execution_options(synchronize_session=False)
            )


# ------------------------------------------------------------------ transactions


def start_run(
    *,
    session: Session,
    survey: Survey,
    policy: Policy,
    occurrence: datetime,
    manual: bool = False,
    started_by: str | None = None,
    deliver_now: bool = False,
    now: datetime | None = None,
) -> SurveyRun | None:
    """Create a run (in "resolving"). By hand, refused while one is live; on schedule, an earlier
    run still open is closed first (its results posted). None: this occurrence already has a run."""
    now = now or utcnow()
    store.lock_survey(session=session, survey=survey.name)
    live = store.live_runs(session=session, survey=survey.name)
    if manual and live:
        raise SurveyError(f"A run of {survey.name} is already open (until {as_utc(live[-1].closes_at):%Y-%m-%d %H:%M} UTC); "
                          f"`/platform-feedback survey results {survey.name}` shows how it is going.")
    run = store.create_run(
        session=session, survey=survey.name, definition=survey.model_dump_json(), anonymous=survey.anonymous,
        occurrence=occurrence, closes_at=now + timedelta(days=survey.close_after_days), manual=manual,
        started_by=started_by, deliver_now=deliver_now,
    )
    if run is None:
        return None
    for earlier in live:
        if earlier.status == RunStatus.resolving:
            store.open_run(session=session, run_id=earlier.id)
        close_and_report(session=session, run_id=earlier.id, policy=policy, now=now)
    return run


def start_scheduled(*, session: Session, occurrence: datetime, survey: Survey, policy: Policy) -> None:
    """The scheduled job's work, in its claim's transaction."""
    start_run(session=session, survey=survey, policy=policy, occurrence=occurrence)


def _dm(run: SurveyRun, survey: Survey, policy: Policy, *, reminder: int = 0, last_call: bool = False) -> dict:
    return build_survey_dm(run_id=run.id, survey=survey, closes_at=as_utc(run.closes_at), results_channel=results_channel(survey, policy),
                           reminder=reminder, last_call=last_call)


def queue_recipients(*, session: Session, run_id: int, people: list[NewRecipient], policy: Policy) -> int:
    """Add people to a resolving run and queue their DMs, each held until its delivery time. The
    DM is rendered now (the same for everyone), so the sender sends them side by side; what could
    make one wrong later (the run closing, the person opting out) takes it back (``cancel_pending``)."""
    run = store.get_run(session=session, run_id=run_id)
    if run is None or run.status != RunStatus.resolving:
        return 0
    added = store.add_recipients(session=session, run_id=run_id, people=people)
    dm = _dm(run, logic.run_survey(run), policy)
    hold: dict[str, datetime] = {}
    for recipient in added:
        key = store.dm_key(run_id, recipient.user_id)
        if outbox.enqueue(session=session, dedupe_key=key, method="chat.postMessage", payload={"channel": recipient.user_id, **dm}):
            hold[key] = recipient.deliver_at
    _hold_until(session, hold)
    return len(added)


def queue_reminders(*, session: Session, policy: Policy, now: datetime | None = None) -> int:
    """Queue the reminders that are due in every open run: only to people who got the DM and have
    not answered, at most two each (see ``bot.operations.surveys.reminder_times``). Someone who answers before
    it goes has it taken back."""
    now = now or utcnow()
    queued = 0
    for run in store.live_runs(session=session):
        if run.status != RunStatus.open or as_utc(run.closes_at) <= now:
            continue
        survey = logic.run_survey(run)
        closes_at = as_utc(run.closes_at)
        store.mark_delivered(session=session, run_id=run.id)
        messages = {last: _dm(run, survey, policy, reminder=1, last_call=last) for last in (False, True)}
        for recipient in store.reminder_candidates(session=session, run_id=run.id):
            times = logic.reminder_times(as_utc(recipient.deliver_at), closes_at, remind_after_days=survey.remind_after_days,
                                         remind_before_close=survey.remind_before_close)
            n = logic.due_reminder(times, recipient.reminders, now)
            if n is None:
                continue
            last_call = survey.remind_before_close and n == len(times) and closes_at - times[n - 1] <= timedelta(days=1) + logic.MIN_GAP
            outbox.enqueue(session=session, dedupe_key=store.dm_key(run.id, recipient.user_id, n), method="chat.postMessage",
                           payload={"channel": recipient.user_id, **messages[bool(last_call)]})
            recipient.reminders = n
            session.add(recipient)
            queued += 1
    return queued


def _chart(session: Session, run: SurveyRun, results: logic.RunResults) -> bytes | None:
    history = logic.score_history(session=session, run=run)
    if not any(score is not None for _, score in history):
        return None
    name = results.score_name or "Score"
    return charts.line_chart(f"{results.survey.display_title}: {name}", [label for label, _ in history],
                             {name: [score for _, score in history]}, y_label=name)


def close_and_report(*, session: Session, run_id: int, policy: Policy, now: datetime | None = None) -> bool:
    """Close an open run (erasing what linked answers to people, see ``storage.surveys``) and queue
    its results and chart for the results channel. False if it was not open."""
    run = store.get_run(session=session, run_id=run_id)
    if run is None or run.status != RunStatus.open:
        return False
    survey = logic.run_survey(run)
    store.mark_delivered(session=session, run_id=run_id)
    store.cancel_pending(session=session, run_id=run_id, reason="the survey closed")
    mapping = logic.segment_map(store.segment_counts(session=session, run_id=run_id), survey.min_group)
    closed = store.close_run(session=session, run_id=run_id, segment_map=mapping, min_group=survey.min_group, now=now)
    if closed is None:
        return False
    channel = results_channel(survey, policy)
    if not channel:
        return True
    results = logic.results_for_run(session=session, run=closed)
    post = build_results(results, command=f"/platform-feedback survey results {survey.name}")
    outbox.enqueue(session=session, dedupe_key=f"survey:{run_id}:results", method="chat.postMessage", payload={"channel": channel, **post})
    png = None if results.withheld else _chart(session, closed, results)
    if png:
        day = as_utc(closed.started_at).strftime("%Y-%m-%d")
        outbox.enqueue(
            session=session, dedupe_key=f"survey:{run_id}:chart", method="files.uploadV2",
            payload={"channel": channel, "filename": f"{survey.name}-{day}.png", "title": f"{survey.display_title} ({day})",
                     "initial_comment": chart_comment(results), "content_b64": base64.b64encode(png).decode("ascii")},
        )
    return True


def results_of_run(*, session: Session, run_id: int) -> logic.RunResults:
    return logic.results_for_run(session=session, run=store.get_run(session=session, run_id=run_id))


@dataclass
class Answering:
    status: str  # saved | closed | not_yours | invalid
    run: SurveyRun | None = None
    survey: Survey | None = None
    chosen: dict[str, str] | None = None
    texts: dict[str, str] | None = None
    comment: str | None = None
    recipient: store.SurveyRecipient | None = None


def _is_open(run: SurveyRun, now: datetime) -> bool:
    return run.status != RunStatus.closed and run.secret is not None and as_utc(run.closes_at) > now


def _current(session: Session, run: SurveyRun, survey: Survey, user_id: str) -> tuple[dict[str, str], dict[str, str], str | None]:
    response = store.find_response(session=session, run_id=run.id, respondent_key=logic.respondent_key(run.secret, user_id))
    if response is None:
        return {}, {}, None
    answers = store.answers_of(session=session, response_id=response.id)
    chosen = {q.id: v for q in survey.questions if (v := logic.selected(q, answers.get(q.id))) is not None}
    texts = {q.id: answers[q.id].text for q in survey.questions if q.kind == "text" and q.id in answers and answers[q.id].text}
    return chosen, texts, response.comment


def _answering(session: Session, run_id: int, user_id: str, now: datetime, lock: bool) -> Answering:
    run = store.get_run(session=session, run_id=run_id)
    if run is None:
        return Answering("invalid")
    if not _is_open(run, now):
        return Answering("closed", run)
    recipient = store.get_recipient(session=session, run_id=run_id, user_id=user_id, lock=lock)
    if recipient is None:
        return Answering("not_yours", run)
    return Answering("saved", run, logic.run_survey(run), recipient=recipient)


def record_answer(*, session: Session, run_id: int, user_id: str, question_id: str, raw: str, now: datetime | None = None) -> Answering:
    """One button: the person's answer to one question, replacing any earlier one."""
    state = _answering(session, run_id, user_id, now or utcnow(), lock=True)
    if state.status != "saved":
        return state
    question = next((q for q in state.survey.questions if q.id == question_id), None)
    value = logic.read_button(question, raw) if question else None
    if value is None:
        return Answering("invalid", state.run)
    store.save_answers(
        session=session, run_id=run_id, respondent_key=logic.respondent_key(state.run.secret, user_id),
        user_id=None if state.run.anonymous else user_id, segment=state.recipient.segment, answers={question_id: value},
    )
    state.recipient.answered = True
    session.add(state.recipient)
    store.cancel_pending(session=session, run_id=run_id, user_id=user_id, reminders_only=True, reason="answered")
    state.chosen, state.texts, state.comment = _current(session, state.run, state.survey, user_id)
    return state


def set_opt_out(*, session: Session, user_id: str, out: bool) -> bool:
    """``surveys off``: also takes back the DMs and reminders of runs under way that were not sent yet."""
    changed = store.set_opt_out(session=session, user_id=user_id, out=out)
    if out:
        for run_id in store.pending_runs_of(session=session, user_id=user_id):
            store.cancel_pending(session=session, run_id=run_id, user_id=user_id, reason="opted out")
    return changed


def record_texts(*, session: Session, run_id: int, user_id: str, texts: dict[str, str], comment: str | None, now: datetime | None = None) -> Answering:
    """The modal: free-text answers and the comment (empty clears them)."""
    state = _answering(session, run_id, user_id, now or utcnow(), lock=True)
    if state.status != "saved":
        return state
    known = {q.id for q in state.survey.questions if q.kind == "text"}
    answers = {qid: {"text": text or None} for qid, text in texts.items() if qid in known}
    store.save_answers(
        session=session, run_id=run_id, respondent_key=logic.respondent_key(state.run.secret, user_id),
        user_id=None if state.run.anonymous else user_id, segment=state.recipient.segment, answers=answers,
        comment=comment or None, set_comment=True,
    )
    if any(v["text"] for v in answers.values()) or comment:
        state.recipient.answered = True
        session.add(state.recipient)
        store.cancel_pending(session=session, run_id=run_id, user_id=user_id, reminders_only=True, reason="answered")
    state.chosen, state.texts, state.comment = _current(session, state.run, state.survey, user_id)
    return state


def current_answers(*, session: Session, run_id: int, user_id: str, now: datetime | None = None) -> Answering:
    state = _answering(session, run_id, user_id, now or utcnow(), lock=False)
    if state.status == "saved":
        state.chosen, state.texts, state.comment = _current(session, state.run, state.survey, user_id)
    return state


def file_comment(*, session: Session, response_id: str, question_id: str | None, host: str, team_id: str, policy: Policy) -> str:
    """A host files a survey comment as a friction data point (once: the same click again finds it).
    The respondent is its reporter only when the survey was not anonymous."""
    response = store.get_response(session=session, response_id=response_id)
    if response is None:
        raise SurveyError("That comment no longer exists.")
    run = store.get_run(session=session, run_id=response.run_id)
    if question_id:
        answer = store.answers_of(session=session, response_id=response_id).get(question_id)
        text = answer.text if answer else None
    else:
        text = response.comment
    if not text:
        raise SurveyError("That comment is empty now (it was changed).")
    reporter = response.user_id if (not run.anonymous and response.user_id) else host
    draft = FrictionDraft(
        team_id=team_id, filed_by=host, reporter_id=reporter, text=text[:3000], source=Source.survey,
        intake_key=f"survey:{response_id}:{question_id or 'comment'}",
        auto_categories=suggest_categories(text, policy.taxonomy),
    )
    filed = file_report(session=session, draft=draft, prefix=policy.reference_prefix, triage_channel=policy.triage.channel)
    ref = f"{policy.reference_prefix}-{filed.point.id}"
    return f"Filed {ref} from that comment." if filed.created else f"That comment is already {ref}."


# ------------------------------------------------------------------ CSAT follow-up (after a host resolves)


def ask_csat(*, session: Session, applied, policy: Policy) -> None:
    """Queue "did this solve your problem?" for each reporter of a report a host just resolved,
    ``delay_minutes`` later (it is dropped if the report was reopened meanwhile)."""
    config = policy.csat_followup
    if not config.enabled:
        return
    point, entry = applied.point, applied.entry
    hold = {}
    for reporter in point.reporters:
        if reporter.user_id == entry.actor:
            continue
        followup = store.add_followup(session=session, point_id=point.id, change_id=entry.id, user_id=reporter.user_id)
        if followup is None:
            continue
        key = f"csat:{followup.id}"
        if outbox.enqueue(session=session, dedupe_key=key, method="chat.postMessage", purpose=CSAT_PURPOSE,
                          payload={"channel": reporter.user_id, "followup": followup.id}, friction_point_id=point.id,
                          workspace=reporter.workspace):
            hold[key] = utcnow() + timedelta(minutes=config.delay_minutes)
    _hold_until(session, hold)


def csat_followup_hook(policy: Policy) -> Callable | None:
    """What ``handlers.triage`` calls in a resolve's transaction, or None when the follow-up is off."""
    return partial(ask_csat, policy=policy) if policy.csat_followup.enabled else None


def answer_csat(*, session: Session, followup_id: int, user_id: str, score: int) -> tuple[store.CsatFollowup, FrictionPoint] | None:
    followup = store.answer_followup(session=session, followup_id=followup_id, user_id=user_id, score=score)
    if followup is None:
        return None
    return followup, session.get(FrictionPoint, followup.friction_point_id)


# ------------------------------------------------------------------ outbox hook (rendered when sent)


class CsatHook:
    def __init__(self, policy: Policy):
        self.policy = policy

    def prepare(self, session: Session, message: OutboxMessage, payload: dict) -> tuple[str, dict] | None:
        followup = store.get_followup(session=session, followup_id=payload.get("followup")) if isinstance(payload.get("followup"), int) else None
        if followup is None or followup.score is not None:
            return None
        point = session.get(FrictionPoint, followup.friction_point_id)
        if point is None or point.status != Status.resolved:
            return None  # reopened (or merged) since: the question no longer fits
        ref = f"{self.policy.reference_prefix}-{point.id}"
        dm = build_csat_dm(ref, point.text, self.policy.csat_followup.question, followup.id, note=point.resolution_note)
        return "chat.postMessage", {"channel": followup.user_id, **dm}

    def sent(self, session: Session, message: OutboxMessage, response: dict) -> None:
        pass


# ------------------------------------------------------------------ the runner: audience, reminders, closing


@dataclass(frozen=True)
class Person:
    user_id: str
    tz: str | None


class SurveyRunner:
    """Finds a run's audience in Slack and queues its DMs; every few minutes (``tick``) resumes
    runs left resolving, queues due reminders and closes runs whose time is up."""

    def __init__(self, deps: Deps):
        self.deps = deps
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()

    def _survey(self, name: str) -> Survey | None:
        return next((s for s in self.deps.policy.surveys if s.name == name), None)

    def kick(self) -> None:
        """Run a tick soon, in the background (after a run was created)."""
        task = asyncio.get_running_loop().create_task(self.tick())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self, survey: Survey, *, started_by: str | None, deliver_now: bool = False) -> SurveyRun:
        now = utcnow()
        run = await self.deps.db.run(start_run, survey=survey, policy=self.deps.policy, occurrence=now, manual=True,
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
                for run_id in await db.run(store.runs_due_to_close, now=now):
                    await db.run(close_and_report, run_id=run_id, policy=self.deps.policy, now=now)
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
        survey = logic.run_survey(run)
        members, errors = await self.audience(survey)
        known = await db.run(store.recipient_ids, run_id=run_id)
        out = await db.run(store.opted_out, user_ids=set(members))
        todo = [u for u in members if u not in known and u not in out]
        people = await self.lookup(todo, run_id)
        started = as_utc(run.started_at)
        rows = [
            NewRecipient(p.user_id, p.tz or survey.timezone, members[p.user_id],
                         started if run.deliver_now else logic.delivery_time(started, p.tz, survey.delivery_hour, fallback=survey.timezone))
            for p in people
        ]
        for i in range(0, len(rows), CHUNK):
            await db.run(queue_recipients, run_id=run_id, people=rows[i : i + CHUNK], policy=self.deps.policy)
            await db.run(store.renew_lease, run_id=run_id, seconds=LEASE_SECONDS)
            self.deps.sender.wake()
        await db.run(store.open_run, run_id=run_id, error="; ".join(errors) or None)
        log.info("survey %s run %s: %s new recipients%s", run.survey, run_id, len(rows), f" ({'; '.join(errors)})" if errors else "")
        return True

    async def _call(self, method: str, **kwargs) -> dict:
        """A Web API read in the team policy's workspace (``method``: the client's method name),
        waiting out 429s (Retry-After) rather than failing the run."""
        try:
            client = await self.deps.workspaces.client()
        except NotInstalled as exc:
            raise SurveyError(str(exc)) from None
        for _ in range(8):
            try:
                return (await getattr(client, method)(**kwargs)).data
            except SlackApiError as exc:
                if exc.response.status_code != 429:
                    raise
                headers = exc.response.headers or {}
                try:
                    wait = float(headers.get("Retry-After", headers.get("retry-after", 1)))
                except (TypeError, ValueError):
                    wait = 1.0
                await asyncio.sleep(min(max(wait, 0.0), MAX_RATE_WAIT))
        raise SurveyError("Slack kept answering 429 (rate limited)")

    async def audience(self, survey: Survey) -> tuple[dict[str, str | None], list[str]]:
        """Everyone the survey asks -> their segment; and what could not be read."""
        errors: list[str] = []
        audience = survey.audience
        groups: dict[str, set[str]] = {}
        for group in dict.fromkeys([*audience.usergroups, *survey.segment_usergroups]):
            try:
                groups[group] = set((await self._call("usergroups_users_list", usergroup=group)).get("users") or [])
            except SlackApiError as exc:
                errors.append(f"user group {group}: {exc.response.get('error')}")
        channels: dict[str, set[str]] = {}
        for channel in audience.channels:
            try:
                channels[channel] = await self._channel_members(channel)
            except SlackApiError as exc:
                errors.append(f"channel {channel}: {exc.response.get('error')}")
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
                except SlackApiError as exc:
                    log.info("survey: %s left out (%s)", user, exc.response.get("error"))

        for i in range(0, len(missing), LOOKUP_CHUNK):
            await asyncio.gather(*(info(u) for u in missing[i : i + LOOKUP_CHUNK]))
            await self.deps.db.run(store.renew_lease, run_id=run_id, seconds=LEASE_SECONDS)
        people = []
        for user in user_ids:
            member = found.get(user)
            if not member or member.get("deleted") or member.get("is_bot") or member.get("is_app_user") or user == "USLACKBOT":
                continue
            people.append(Person(user, member.get("tz") if isinstance(member.get("tz"), str) else None))
        return people

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


# ------------------------------------------------------------------ Slack


def _parts(value: object, n: int) -> list[str] | None:
    parts = value.split("|") if isinstance(value, str) else []
    return parts if len(parts) == n else None


def register(app: AsyncApp, deps: Deps) -> None:
    policy = deps.policy
    runner = SurveyRunner(deps)
    deps.sender.hooks[CSAT_PURPOSE] = CsatHook(policy)
    by_name = {s.name: s for s in policy.surveys}

    for survey in policy.surveys:
        if survey.schedule:
            trigger = logic.trigger_for(survey)
            job = Job(
                name=job_name(survey),
                db=deps.db,
                work=partial(start_scheduled, survey=survey, policy=policy),
                occurrence_at=lambda now, trigger=trigger: logic.latest_fire(trigger, now) or now,
                after=runner.kick,
            )
            deps.scheduler.add(job, trigger)
    if policy.surveys:
        # Not a claimed job: everything a tick does is safe to repeat and to run from several instances.
        deps.scheduler.aps.add_job(runner.tick, IntervalTrigger(minutes=TICK_MINUTES), id="surveys.tick", name="surveys.tick",
                                   replace_existing=True, coalesce=True, max_instances=1, next_run_time=datetime.now(timezone.utc))

    async def tell(respond: AsyncRespond, message: dict | str) -> None:
        message = {"text": message} if isinstance(message, str) else message
        await respond(response_type="ephemeral", replace_original=False, **message)

    # ---------------------------------------------------------- answering

    @app.action(re.compile(rf"^{SurveyAction.answer}:"))
    async def on_answer(ack: AsyncAck, body: dict, action: dict, respond: AsyncRespond):
        await ack()
        parts = _parts(action.get("value"), 3)
        if not parts or not parts[0].isdigit():
            return
        run_id, question_id, raw = int(parts[0]), parts[1], parts[2]
        try:
            state = await deps.db.run(record_answer, run_id=run_id, user_id=body["user"]["id"], question_id=question_id, raw=raw)
        except DatabaseUnavailable:
            await tell(respond, build_try_again("your answer"))
            return
        if state.status == "closed":
            await tell(respond, build_closed_notice())
        elif state.status == "saved":
            dm = build_survey_dm(run_id=run_id, survey=state.survey, closes_at=as_utc(state.run.closes_at),
                                 results_channel=results_channel(state.survey, policy), chosen=state.chosen, texts=state.texts,
                                 comment=state.comment, saved=True)
            await respond(replace_original=True, **dm)

    @app.action(SurveyAction.comment)
    async def on_comment_button(ack: AsyncAck, body: dict, action: dict, client: AsyncWebClient, respond: AsyncRespond):
        await ack()
        value = action.get("value")
        if not isinstance(value, str) or not value.isdigit():
            return
        try:
            state = await deps.db.run(current_answers, run_id=int(value), user_id=body["user"]["id"])
        except DatabaseUnavailable:
            await tell(respond, build_try_again("your comment"))
            return
        if state.status == "closed":
            await tell(respond, build_closed_notice())
        elif state.status == "saved":
            view = build_comment_modal(state.run.id, state.survey, texts=state.texts, comment=state.comment)
            await client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.view(SurveyCallback.comment_modal)
    async def on_comment_submitted(ack: AsyncAck, body: dict, view: dict, client: AsyncWebClient):
        try:
            run_id = SurveyMetadata.load(view.get("private_metadata")).run_id
        except ValueError:
            await ack(response_action="errors", errors={COMMENT_BLOCK: "This form is out of date. Please open it again."})
            return
        state_values = flatten_state(view.get("state", {}).get("values"))
        texts = {block.split(":", 1)[1]: from_slack(str(v or "")).strip()[:2000]
                 for block, v in state_values.items() if block.startswith(f"{TEXT_BLOCK}:")}
        comment = from_slack(str(state_values.get(COMMENT_BLOCK) or "")).strip()[:2000]
        user = body["user"]["id"]
        try:
            state = await deps.db.run(record_texts, run_id=run_id, user_id=user, texts=texts, comment=comment)
        except DatabaseUnavailable:
            await ack(response_action="errors", errors={COMMENT_BLOCK: "We couldn't save this just now. Please press Save again in a minute."})
            return
        if state.status == "closed":
            await ack(response_action="errors", errors={COMMENT_BLOCK: build_closed_notice()["text"]})
            return
        if state.status != "saved":
            await ack(response_action="errors", errors={COMMENT_BLOCK: "This survey is not one you were asked to answer."})
            return
        await ack(response_action="update", view=build_saved_view())

    @app.action(re.compile(rf"^{SurveyAction.csat}:"))
    async def on_csat(ack: AsyncAck, body: dict, action: dict, respond: AsyncRespond):
        await ack()
        parts = _parts(action.get("value"), 2)
        if not parts or not parts[0].isdigit() or parts[1] not in {"1", "2", "3", "4", "5"}:
            return
        try:
            answered = await deps.db.run(answer_csat, followup_id=int(parts[0]), user_id=body["user"]["id"], score=int(parts[1]))
        except DatabaseUnavailable:
            await tell(respond, build_try_again("your answer"))
            return
        if answered is None:
            return
        followup, point = answered
        ref = f"{policy.reference_prefix}-{point.id}"
        await respond(replace_original=True, **build_csat_dm(ref, point.text, policy.csat_followup.question, followup.id,
                                                             chosen=followup.score, note=point.resolution_note))

    # ---------------------------------------------------------- hosts

    @app.action(SurveyAction.file_comment)
    async def on_file_comment(ack: AsyncAck, body: dict, action: dict, respond: AsyncRespond):
        await ack()
        user = body["user"]["id"]
        if not await deps.hosts.is_host(user):
            await tell(respond, NOT_A_HOST)
            return
        parts = _parts(action.get("value"), 2)
        if not parts:
            return
        team = (body.get("team") or {}).get("id") or body["user"].get("team_id") or ""
        try:
            message = await deps.db.run(file_comment, response_id=parts[0], question_id=parts[1] or None, host=user, team_id=team, policy=policy)
        except SurveyError as exc:
            message = str(exc)
        except DatabaseUnavailable:
            message = build_try_again("that data point")["text"]
        deps.sender.wake()
        await tell(respond, message)

    async def surveys_command(user: str, args: str, respond: AsyncRespond, client: AsyncWebClient) -> None:
        word = args.strip().lower()
        try:
            if word in ("off", "on"):
                await deps.db.run(set_opt_out, user_id=user, out=word == "off")
                await tell(respond, build_opt_out_answer(word == "off"))
                return
            if word not in ("", "list"):
                await tell(respond, USAGE)
                return
            live = await deps.db.run(store.live_runs)
            out = bool(await deps.db.run(store.opted_out, user_ids={user}))
        except DatabaseUnavailable:
            await tell(respond, build_try_again("that"))
            return
        now = utcnow()
        await tell(respond, build_surveys_list(
            policy.surveys, live={r.survey: as_utc(r.closes_at) for r in live},
            next_runs={s.name: logic.next_fire(s, now) for s in policy.surveys}, opted_out=out,
        ))

    async def survey_command(user: str, args: str, respond: AsyncRespond, client: AsyncWebClient) -> None:
        words = args.split()
        if len(words) < 2 or words[0].lower() not in ("send", "results") or (words[0].lower() == "send" and len(words) > 3):
            await tell(respond, USAGE)
            return
        if not await deps.hosts.is_host(user):
            await tell(respond, NOT_A_HOST)
            return
        survey = by_name.get(words[1])
        if survey is None:
            await tell(respond, f"There is no survey named `{words[1][:40]}`; `/platform-feedback surveys` lists them.")
            return
        try:
            if words[0].lower() == "send":
                now = len(words) == 3 and words[2].lower() == "now"
                run = await runner.start(survey, started_by=user, deliver_now=now)
                when = "now" if now else f"at {survey.delivery_hour:02d}:00 in each person's own time zone"
                await tell(respond, f"Started {survey.name} (run {run.id}). I'm finding who to ask; the DMs go out {when}.")
                runner.kick()
                return
            run = await deps.db.run(store.latest_run, survey=survey.name)
            if run is None:
                await tell(respond, f"{survey.name} has not run yet.")
                return
            results = await deps.db.run(results_of_run, run_id=run.id)
        except SurveyError as exc:
            await tell(respond, str(exc))
            return
        except DatabaseUnavailable:
            await tell(respond, build_try_again("that"))
            return
        await tell(respond, build_results(results))

    deps.commands["surveys"] = surveys_command
    deps.commands["survey"] = survey_command
