"""The CSAT follow-up: "did this solve your problem?" after a host resolves a report."""

from collections.abc import Callable
from datetime import timedelta
from functools import partial

from sqlmodel import Session

from bot.policy import Policy
from bot.references import format_ref
from bot.runtime.outbox.sender import Hook
from bot.surveys.blocks import build_csat_dm
from bot.surveys.runs import hold_until
from storage import outbox
from storage import surveys as store
from storage.models import FrictionPoint, OutboxMessage, Status, utcnow

CSAT_PURPOSE = "csat_followup"  # outbox purpose: the CSAT follow-up DM, rendered when sent

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
    hold_until(session, hold)


def csat_followup_hook(policy: Policy) -> Callable | None:
    """What ``bot.triage.listeners`` calls in a resolve's transaction, or None when the follow-up is off."""
    return partial(ask_csat, policy=policy) if policy.csat_followup.enabled else None


def answer_csat(*, session: Session, followup_id: int, user_id: str, score: int) -> tuple[store.CsatFollowup, FrictionPoint] | None:
    followup = store.answer_followup(session=session, followup_id=followup_id, user_id=user_id, score=score)
    if followup is None:
        return None
    point = session.get(FrictionPoint, followup.friction_point_id)
    assert point is not None  # a follow-up's report (its foreign key)
    return followup, point


# ------------------------------------------------------------------ outbox hook (rendered when sent)


class CsatHook(Hook):
    def __init__(self, policy: Policy):
        self.policy = policy

    def prepare(self, session: Session, message: OutboxMessage, payload: dict) -> tuple[str, dict] | None:
        followup = store.get_followup(session=session, followup_id=fid) if isinstance(fid := payload.get("followup"), int) else None
        if followup is None or followup.score is not None:
            return None
        point = session.get(FrictionPoint, followup.friction_point_id)
        if point is None or point.status != Status.resolved:
            return None  # reopened (or merged) since: the question no longer fits
        ref = format_ref(self.policy.reference_prefix, point.id)
        dm = build_csat_dm(ref, point.text, self.policy.csat_followup.question, followup.id, note=point.resolution_note)
        return "chat.postMessage", {"channel": followup.user_id, **dm}

    def sent(self, session: Session, message: OutboxMessage, response: dict) -> None:
        pass
