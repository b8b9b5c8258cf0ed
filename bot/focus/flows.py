"""The quarter's focus as the outbox and the scheduler see it: the announcement rendered when sent,
the job that keeps it up to date and posts the end-of-period report, and what the picker shows.
(Apart from ``bot.focus.service`` because the builders in ``bot.focus.blocks`` import that module.)"""

import json
from datetime import datetime

from sqlmodel import Session

from bot.focus import service as focus
from bot.focus.blocks import build_focus_post, build_focus_report
from bot.insight.service import FrictionScores
from bot.policy import Policy
from bot.runtime.outbox.sender import Hook
from storage import focus as store
from storage import outbox
from storage.models import OutboxMessage


class PostHook(Hook):
    """Outbox hook (``focus.POST_PURPOSE``): renders the announcement when sent and remembers where
    it was posted."""

    def __init__(self, policy: Policy):
        self.policy = policy

    def prepare(self, session: Session, message: OutboxMessage, payload: dict) -> tuple[str, dict] | None:
        current = focus.state(session=session, policy=self.policy, key=payload.get("period"))
        if current.period is None or current.period.published_at is None:
            return None
        post = build_focus_post(current, prefix=self.policy.reference_prefix)
        if current.period.post_ts:
            return "chat.update", {"channel": current.period.post_channel, "ts": current.period.post_ts, **post}
        if "channel" not in payload:
            return None  # an update for a post that was never made
        return "chat.postMessage", {"channel": payload["channel"], **post}

    def sent(self, session: Session, message: OutboxMessage, response: dict) -> None:
        period = store.get_period(session=session, key=json_period(message))
        if period is not None and "ts" in response and period.post_ts is None:
            period.post_channel, period.post_ts = response.get("channel"), response["ts"]
            session.add(period)


def json_period(message: OutboxMessage) -> str:
    return json.loads(message.payload).get("period", "")


def tick(*, session: Session, occurrence: datetime, policy: Policy) -> None:
    """The focus job: keep the announcement up to date (one update per distinct state) and, once
    a period has ended, post its report once."""
    current = focus.state(session=session, policy=policy, now=occurrence)
    if current.period is not None:
        focus.sync_post(session, current.period, current.fingerprint())
    ended = store.last_ended(session=session, at=occurrence)
    if ended is None:
        return
    key = f"focus:{ended.key}:report"
    if outbox.exists(session=session, dedupe_key=key):
        return
    result = focus.report(session=session, policy=policy, key=ended.key, now=occurrence)
    if result is not None:
        outbox.enqueue(session=session, dedupe_key=key, method="chat.postMessage",
                       payload={"channel": policy.closing.announce_channel, **build_focus_report(result, prefix=policy.reference_prefix)})


def picker(*, session: Session, policy: Policy) -> tuple[focus.FocusState, FrictionScores]:
    """What ``/platform-feedback focus`` shows: the current focus and the ranking to pick from."""
    return focus.state(session=session, policy=policy), focus.candidates(session=session, policy=policy)
