"""A run's life in the database: starting it (by hand or on schedule), queuing its DMs and
reminders through the outbox, closing it and queuing its results and chart."""

import base64
import logging
import random
from collections import Counter
from datetime import datetime, timedelta

from sqlmodel import Session, col, update

from bot import charts
from bot.policy import Policy, Survey
from bot.runtime.outbox.sender import Hook
from bot.surveys import timing
from bot.surveys.blocks import build_results, build_survey_dm, chart_comment
from bot.surveys.results import RunResults, results_for_run, run_survey, score_history, segment_map
from bot.surveys.sealing import Keys
from storage import outbox
from storage import surveys as store
from storage.models import OutboxMessage, OutboxStatus, as_utc, utcnow
from storage.surveys import NewRecipient, NewResponse, RunStatus, SurveyRun

log = logging.getLogger(__name__)

# Outbox purposes of a run's messages to people. Their sends are not counted on /metrics nor
# logged with an id (``OutboxSender.quiet``): how many reminders went, when, says how many, or
# who, had not answered. A reminder is rendered when sent (``ReminderHook``).
DM_PURPOSE = "survey_dm"
REMINDER_PURPOSE = "survey_reminder"
QUIET_PURPOSES = frozenset({DM_PURPOSE, REMINDER_PURPOSE})


class SurveyError(Exception):
    """A survey action cannot apply; ``str()`` is what the person is told."""


def job_name(survey: Survey) -> str:
    return f"survey:{survey.name}"


def results_channel(survey: Survey, policy: Policy) -> str | None:
    return survey.results_channel or policy.triage.channel


def hold_until(session: Session, keys: dict[str, datetime]) -> None:
    """Keep freshly queued messages back until their time (``not_before``), in the same transaction."""
    by_time: dict[datetime, list[str]] = {}
    for key, moment in keys.items():
        by_time.setdefault(moment, []).append(key)
    for moment, group in by_time.items():
        for i in range(0, len(group), 500):
            session.exec(
                update(OutboxMessage)
                .where(col(OutboxMessage.dedupe_key).in_(group[i : i + 500]), col(OutboxMessage.status) == OutboxStatus.pending)
                .values(not_before=moment)
                .execution_options(synchronize_session=False)
            )


# ------------------------------------------------------------------ transactions


def start_run(
    *,
    session: Session,
    keys: Keys,
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
        occurrence=occurrence, closes_at=timing.closing_time(now, survey), manual=manual,
        started_by=started_by, deliver_now=deliver_now,
    )
    if run is None:
        return None
    for earlier in live:
        if earlier.status == RunStatus.resolving:
            store.open_run(session=session, run_id=earlier.id)
        close_and_report(session=session, keys=keys, run_id=earlier.id, policy=policy, now=now)
    return run


def start_scheduled(*, session: Session, keys: Keys, occurrence: datetime, survey: Survey, policy: Policy) -> None:
    """The scheduled job's work, in its claim's transaction."""
    start_run(session=session, keys=keys, survey=survey, policy=policy, occurrence=occurrence)


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
    dm = _dm(run, run_survey(run), policy)
    hold: dict[str, datetime] = {}
    for recipient in added:
        key = store.dm_key(run_id, recipient.user_id)
        if outbox.enqueue(session=session, dedupe_key=key, method="chat.postMessage", purpose=DM_PURPOSE,
                          payload={"channel": recipient.user_id, **dm}):
            hold[key] = recipient.deliver_at
    hold_until(session, hold)
    return len(added)


def queue_reminders(*, session: Session, policy: Policy, now: datetime | None = None) -> int:
    """Queue the reminders that are due in every open run, at most two each (see
    ``timing.reminder_times``), for everyone who got the DM: who answered is not known in the
    clear, so the queue (and every version of its rows) is the same for those who did. The
    ``ReminderHook`` drops it at send time for someone who answered."""
    now = now or utcnow()
    queued = 0
    for run in store.live_runs(session=session):
        if run.status != RunStatus.open or as_utc(run.closes_at) <= now:
            continue
        survey = run_survey(run)
        closes_at = as_utc(run.closes_at)
        store.mark_delivered(session=session, run_id=run.id)
        for recipient in store.reminder_candidates(session=session, run_id=run.id):
            times = timing.reminder_times(as_utc(recipient.deliver_at), closes_at, remind_after_days=survey.remind_after_days,
                                         remind_before_close=survey.remind_before_close,
                                         tz=recipient.tz or survey.timezone)
            n = timing.due_reminder(times, recipient.reminders, now)
            if n is None:
                continue
            last_call = survey.remind_before_close and n == len(times) and closes_at - times[n - 1] <= timedelta(days=1) + timing.MIN_GAP
            outbox.enqueue(session=session, dedupe_key=store.dm_key(run.id, recipient.user_id, n), method="chat.postMessage",
                           purpose=REMINDER_PURPOSE,
                           payload={"channel": recipient.user_id, "run": run.id, "last_call": bool(last_call)})
            recipient.reminders = n
            session.add(recipient)
            queued += 1
    return queued


class ReminderHook(Hook):
    """Renders a reminder when it is sent, or drops it: the run closed, or the person answered
    (their sealed answers hold an answer or a comment, found under their pseudonym). ``discreet``:
    the sender paces it before asking, and erases its row whatever happens, so sent and dropped
    leave the same rows behind (``bot.runtime.outbox.sender``)."""

    discreet = True

    def __init__(self, policy: Policy, keys: Keys):
        self.policy, self.keys = policy, keys

    def prepare(self, session: Session, message: OutboxMessage, payload: dict) -> tuple[str, dict] | None:
        run = store.get_run(session=session, run_id=run_id) if isinstance(run_id := payload.get("run"), int) else None
        user = payload.get("channel")
        if run is None or run.status != RunStatus.open or not run.secret or not isinstance(user, str):
            return None
        row = store.get_sealed(session=session, slot=self.keys.slot(run.id, run.secret, user))
        content = self.keys.open(run.id, run.secret, user, row.sealed) if row is not None else None
        if row is not None and (content is None or content.get("a") or content.get("c")):
            return None  # answered (or sealed under an earlier secret: answered too)
        return "chat.postMessage", {"channel": user, **_dm(run, run_survey(run), self.policy, reminder=1, last_call=bool(payload.get("last_call")))}

    def sent(self, session: Session, message: OutboxMessage, response: dict) -> None:
        pass


def _chart(session: Session, run: SurveyRun, results: RunResults) -> bytes | None:
    history = score_history(session=session, run=run)
    if not any(score is not None for _, score in history):
        return None
    name = results.score_name or "Score"
    return charts.line_chart(f"{results.survey.display_title}: {name}", [label for label, _ in history],
                             {name: [score for _, score in history]}, y_label=name)


def _unsealed(session: Session, keys: Keys, run: SurveyRun, secret: str) -> list[NewResponse]:
    """The run's sealed answers, opened: each recipient's pseudonym finds theirs. A set that
    cannot be opened (the bot's secret changed during the run) is lost, and said so in the log
    (a count, no name). ``secret``: the run's, which its pseudonyms derive from."""
    sealed = store.sealed_of_run(session=session, run_id=run.id)
    drafts, lost = [], 0
    for recipient in store.recipients_of(session=session, run_id=run.id):
        blob = sealed.pop(keys.slot(run.id, secret, recipient.user_id), None)
        if blob is None:
            continue
        content = keys.open(run.id, secret, recipient.user_id, blob)
        lost += content is None
        if content and (content.get("a") or content.get("c")):
            drafts.append(NewResponse(recipient.segment, None if run.anonymous else recipient.user_id, content.get("c"), content.get("a") or {}))
    lost += len(sealed)  # under a pseudonym from another secret
    if lost:
        log.warning("survey run %s: %s sealed answer sets could not be opened (the bot's secret changed during the run)", run.id, lost)
    return drafts


def close_and_report(*, session: Session, keys: Keys, run_id: int, policy: Policy, now: datetime | None = None) -> bool:
    """Close an open run and queue its results and chart for the results channel. Its sealed
    answers are opened and written as responses without names, in random order, in this one
    transaction; what linked them to people is erased (see ``storage.surveys.close_run``).
    False if it was not open."""
    run = store.lock_run(session=session, run_id=run_id)
    if run is None or run.status != RunStatus.open:
        return False
    survey = run_survey(run)
    store.mark_delivered(session=session, run_id=run_id)
    store.cancel_pending(session=session, run_id=run_id, reason="the survey closed")
    drafts = _unsealed(session, keys, run, run.secret) if run.secret else []
    mapping = segment_map(dict(Counter(d.segment for d in drafts)), survey.min_group)
    for draft in drafts:
        draft.segment = mapping.get(draft.segment)
    answered = len(drafts)
    if run.anonymous and answered < survey.min_group:
        drafts = []  # too few to show without giving someone away: only their number is kept
    random.SystemRandom().shuffle(drafts)
    closed = store.close_run(session=session, run=run, responses=drafts, answered=answered, now=now)
    channel = results_channel(survey, policy)
    if not channel:
        return True
    results = results_for_run(session=session, run=closed)
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


def overview(*, session: Session, user_id: str) -> tuple[dict[str, datetime], bool]:
    """For ``/platform-feedback surveys``: each survey with a live run -> when it closes (UTC),
    and whether ``user_id`` opted out of survey DMs."""
    live = {r.survey: as_utc(r.closes_at) for r in store.live_runs(session=session)}
    return live, bool(store.opted_out(session=session, user_ids={user_id}))


def latest_results(*, session: Session, survey: str) -> RunResults | None:
    """The results of the survey's latest run (open or closed); None if it has not run yet."""
    run = store.latest_run(session=session, survey=survey)
    return None if run is None else results_for_run(session=session, run=run)
