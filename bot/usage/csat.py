"""The moment-of-use question: "how was <capability> just now?" (1-5, and optionally what got in
the way), DMed right after a use, anonymous under the pulse surveys' rules (docs/surveys.md,
"Survey anonymity"; docs/usage.md).

Who is asked, decided when an event is settled (``bot.usage.settling``):
- the capability has ``csat.enabled`` and the use is sampled: one in ``sample_every``, chosen by
  a hash of the event's id (so a retried event is chosen or not the same way, and nobody can make
  a use likelier to be asked than another);
- the person was not asked (any capability) in the last ``usage.csat.cap_days``, has no pulse
  survey run open (or being sent) that asks them, and did not opt out of surveys;
- the DM goes at once, or when the quiet hours (``usage.csat.quiet_hours``, the person's local
  time from ``users.info``'s ``tz``) end: it waits in the outbox (``not_before``).

Anonymity: the answers of one capability's questions asked in one ISO week form a *window*. While
it is open (until ``answer_days`` after the week), a person's answer is sealed under a pseudonym
with ``bot.surveys.sealing.Keys`` (AES-GCM under a key derived from the bot's secret and
the window's random nonce, never stored; the slot is HMAC(window key, user id)); answering writes
no row that names the person. At close the answers are written without people, without times and
in random order, and only when at least ``min_group`` answered (else only the count); the sealed
rows and the nonce are erased and, as for surveys, the files rewritten
(``storage.survey_answers``' ``VACUUM FULL`` / WAL checkpoint). Nothing is shown of an open window.
"""

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone

from sqlalchemy import text
from sqlmodel import Session

from bot.runtime.outbox import Hook
from bot.surveys.runs import hold_until
from bot.surveys.sealing import Keys
from bot.surveys.timing import zone
from bot.usage.policy import UsagePolicy
from bot.usage.weeks import week_start
from storage import outbox, survey_answers
from storage import surveys as survey_store
from storage import usage as store
from storage.models import UsageAsk, UsageEvent, UsageWindow

log = logging.getLogger(__name__)

PURPOSE = "usage_csat"  # outbox purpose: the DM, rendered when sent
WIPED_TABLES = ("usage_sealed", "usage_window")
LOW_SCORE = 2  # at or below: the DM offers to file what got in the way as a friction report


def sampled(key: str, every: int) -> bool:
    """One event in ``every``, by a hash of its id (uniform; the same answer for the same id)."""
    return every <= 1 or int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % every == 0


def after_quiet(now: datetime, tz: str | None, quiet: str | None) -> datetime:
    """``now``, or the end of the quiet hours ``quiet`` ("19:00-09:00", local time in ``tz``, IANA;
    UTC when unknown) if ``now`` falls inside them. A range may wrap midnight."""
    if not quiet:
        return now
    start_s, end_s = quiet.split("-")
    start, end = time.fromisoformat(start_s), time.fromisoformat(end_s)
    local_zone = zone(tz)
    local = now.astimezone(local_zone)
    t = local.time().replace(tzinfo=None)
    inside = (start <= t < end) if start < end else (t >= start or t < end)
    if not inside or start == end:
        return now
    day = local.date() if t < end else local.date() + timedelta(days=1)
    wake = datetime.combine(day, end, tzinfo=local_zone)
    return wake.astimezone(timezone.utc)


def _slot_nonce(window: UsageWindow) -> str:
    # The window key is a survey-run key with a nonce of its own kind: never equal to a run's.
    return f"usage-window:{window.secret}"


@dataclass(frozen=True)
class Candidate:
    """An event whose person may be asked (before their time zone is known)."""

    event_id: int
    user_id: str
    capability: str


def may_ask(event, policy: UsagePolicy) -> bool:
    """Whether this use (a ``UsageEvent`` or ``bot.usage.events.UsageIn``: its ``capability`` and
    ``key``) is sampled for the question at all (no database: most uses are not)."""
    cap = policy.capability(event.capability)
    return cap is not None and cap.csat.enabled and sampled(event.key, cap.csat.sample_every)


def candidate(*, session: Session, event: UsageEvent, user_id: str, policy: UsagePolicy, now: datetime) -> Candidate | None:
    """Whether this use should be followed by the question (sampling and caps; see the module docstring)."""
    if not may_ask(event, policy):
        return None
    last = store.last_asked(session=session, user_id=user_id)
    if last is not None and now - last < timedelta(days=policy.csat.cap_days):
        return None
    if store.in_open_survey(session=session, user_id=user_id) or survey_store.opted_out(session=session, user_ids={user_id}):
        return None
    return Candidate(event.id, user_id, event.capability)


def ask(*, session: Session, event: UsageEvent, user_id: str, policy: UsagePolicy, tz: str | None, now: datetime) -> UsageAsk | None:
    """In the event's settling transaction: check again (another event of theirs may have been
    asked meanwhile), then record the ask and queue the DM for after the quiet hours. On PostgreSQL
    the check holds a transaction lock per person (``pg_advisory_xact_lock``), so two processes
    settling two uses of one person at once (``serve --workers``, several hosts) cannot both pass
    the per-person cap: the second waits for the first's commit and then sees its ask."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": f"usage-ask:{user_id}"})
    if candidate(session=session, event=event, user_id=user_id, policy=policy, now=now) is None:
        return None
    deliver = after_quiet(now, tz, policy.csat.quiet_hours)
    start = week_start(deliver)
    window = store.window(session=session, capability=event.capability, week_start=start,
                          closes_at=start + timedelta(days=7 + policy.csat.answer_days), secret=secrets.token_hex(16))
    if window.status != "open":
        return None
    made = store.add_ask(session=session, event_id=event.id, window_id=window.id, user_id=user_id, capability=event.capability,
                         asked_at=now, deliver_at=deliver)
    if made is None:
        return None
    key = f"usage-csat:{made.id}"
    outbox.enqueue(session=session, dedupe_key=key, method="chat.postMessage", purpose=PURPOSE,
                   payload={"channel": user_id, "ask": made.id}, fresh=True)
    session.flush()
    hold_until(session, {key: deliver})
    return made


# ------------------------------------------------------------------ answering


@dataclass(frozen=True)
class Answered:
    status: str  # "ok" | "closed" | "unknown"
    capability: str = ""
    score: int | None = None
    comment: str | None = None
    ask_id: int = 0


def record(*, session: Session, keys: Keys, ask_id: int, user_id: str, score: int | None = None,
           comment: str | None = None, comment_given: bool = False) -> Answered:
    """The person's answer to the question of ``ask_id`` (the user id from Slack's signed request,
    never from the button): a score, and/or (``comment_given``) the comment, replacing what they
    sealed before in that window. "unknown": not their question, or no such question."""
    question = store.get_ask(session=session, ask_id=ask_id)
    if question is None or question.user_id != user_id or (score is not None and not 1 <= score <= 5):
        return Answered("unknown")
    window = store.get_window(session=session, window_id=question.window_id)
    if window is None or window.status != "open" or not window.secret:
        return Answered("closed", question.capability)
    nonce, slot = _slot_nonce(window), keys.slot(window.id, _slot_nonce(window), user_id)
    content = {}
    for sealed in store.sealed_of(session=session, window_id=window.id):  # at most one is theirs
        if sealed.slot == slot:
            content = keys.open(window.id, nonce, user_id, sealed.sealed) or {}
            break
    if score is not None:
        content["s"] = score
    if comment_given:
        content["c"] = comment or None
    if "s" not in content:
        return Answered("unknown")
    store.seal_answer(session=session, window_id=window.id, slot=slot, sealed=keys.seal(window.id, nonce, user_id, content))
    return Answered("ok", question.capability, content["s"], content.get("c"), ask_id)


def close_due(*, session: Session, keys: Keys, policy: UsagePolicy, now: datetime) -> list[int]:
    """Close every window whose time is up (each locked, so two instances close it once): the
    answers written without people when at least ``min_group`` answered. Returns the closed ids
    (call ``wipe`` after the transaction committed)."""
    closed = []
    for window_id in store.windows_due(session=session, now=now):
        window = store.get_window(session=session, window_id=window_id, lock=True)
        if window is None or window.status != "open":
            continue
        answers = []
        if window.secret:
            nonce = _slot_nonce(window)
            by_slot = {s.slot: s.sealed for s in store.sealed_of(session=session, window_id=window.id)}
            for user_id in {a.user_id for a in _asks(session, window.id)}:
                blob = by_slot.get(keys.slot(window.id, nonce, user_id))
                content = keys.open(window.id, nonce, user_id, blob) if blob else None
                if content and isinstance(content.get("s"), int):
                    answers.append((int(content["s"]), content.get("c") or None))
        store.close_window(session=session, window=window, answers=answers, keep=len(answers) >= policy.csat.min_group)
        closed.append(window_id)
    if closed:
        log.info("usage CSAT: closed %d window(s)", len(closed))
    return closed


def _asks(session: Session, window_id: int) -> list[UsageAsk]:
    from sqlmodel import select

    return list(session.scalars(select(UsageAsk).where(UsageAsk.window_id == window_id)).all())


def wipe(engine) -> bool:
    """After closes committed: the erased sealed answers and nonces out of the database's files
    (``storage.survey_answers.wipe_files``' way, for this feature's tables)."""
    if engine.dialect.name == "postgresql":
        import time as clock

        deadline = clock.monotonic() + survey_answers.REWRITE_SECONDS
        return all([survey_answers._rewrite(engine, table, deadline, clock.sleep) for table in WIPED_TABLES])
    return survey_answers.wipe_files(engine)


# ------------------------------------------------------------------ outbox hook (rendered when sent)


class AskHook(Hook):
    """Renders the DM when it is due (``bot.usage.blocks.build_question``); drops it if the window
    closed meanwhile. (Not ``discreet``: the ask row already says who is asked; answering is what
    must leave no trace, and it writes no row that names anyone.)"""

    def __init__(self, policy: UsagePolicy):
        self.policy = policy

    def prepare(self, session: Session, message, payload: dict) -> tuple[str, dict] | None:
        from bot.usage.blocks import build_question

        ask_id = payload.get("ask")
        question = store.get_ask(session=session, ask_id=ask_id) if isinstance(ask_id, int) else None
        if question is None:
            return None
        window = store.get_window(session=session, window_id=question.window_id)
        cap = self.policy.capability(question.capability)
        if window is None or window.status != "open" or cap is None:
            return None
        return "chat.postMessage", {"channel": question.user_id, **build_question(cap, question.id, self.policy.csat.min_group)}

    def sent(self, session: Session, message, response: dict) -> None:
        pass
