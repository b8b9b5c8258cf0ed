"""Triage as the bot runs it: a change applied together with the reporters' DMs it calls for, and
the triage card rendered when the outbox sends it. Plain functions on a session; no Slack in here.
(Apart from ``bot.triage.service`` because the card's builders import that module.)"""

from collections.abc import Callable
from datetime import datetime
from functools import partial

import anyio.to_thread
from sqlmodel import Session

from bot.insight import service as insight
from bot.policy import Policy
from bot.progress.stage import stage_mrkdwn, started_points
from bot.references import format_ref
from bot.runtime import cpu
from bot.runtime.outbox.sender import Hook
from bot.targets import alerts as target_alerts
from bot.targets.blocks import due_line
from bot.triage.blocks import build_card, build_reporter_notice
from bot.triage.service import Applied, Change
from storage import friction, outbox
from storage.models import FrictionPoint, OutboxMessage, utcnow


def apply_and_notify(*, session: Session, action: Callable, prefix: str, on_resolved: Callable | None = None, **kwargs) -> Applied:
    """Apply one triage change and, in the same transaction, queue the reporters' DMs
    (``Applied.queued`` says whether anything may have been queued).
    ``on_resolved(session=, applied=)`` runs in that transaction after a resolve (the CSAT follow-up).
    Raises ``TriageError`` (nothing written) when the change cannot apply."""
    result = action(session=session, prefix=prefix, **kwargs)
    applied = result[0] if isinstance(result, tuple) else result
    if on_resolved is not None and applied.change == Change.resolved:
        on_resolved(session=session, applied=applied)
        applied.queued = True  # it may have queued a follow-up
    point, ref = applied.point, format_ref(prefix, applied.point.id)
    notice = build_reporter_notice(ref, point, applied.change, applied.entry.actor, picked_up=applied.picked_up)
    if notice is None:
        return applied
    applied.queued = True
    # One DM per change that matters: "picked up" once ever, a link once per issue, a closure once per closure.
    once = {
        Change.linked: f"linked:{point.id}:{applied.entry.new}",
        Change.resolved: f"closed:{applied.entry.id}",
        Change.declined: f"closed:{applied.entry.id}",
    }.get(applied.change, f"picked-up:{point.id}")
    queue_notices(session=session, point=point, notice=notice, once=once, skip={applied.entry.actor})
    return applied


def apply_and_render(*, session: Session, policy: Policy, action: Callable, on_resolved: Callable | None = None,
                     **kwargs) -> tuple[Applied, dict | None]:
    """``apply_and_notify``, then the point's card as the change left it (Block Kit ``{text, blocks}``;
    None when its card is not posted yet), rendered in the same transaction rather than loaded again
    in another. Raises ``TriageError`` as ``apply_and_notify`` does."""
    applied = apply_and_notify(session=session, action=action, prefix=policy.reference_prefix, on_resolved=on_resolved, **kwargs)
    point = applied.point
    return applied, (render_card(session=session, policy=policy, point=point) if point.card_ts else None)


def queue_notices(*, session: Session, point: FrictionPoint, notice: dict, once: str, skip: set[str]) -> None:
    """Queue ``notice`` as one DM to each of ``point``'s reporters but ``skip``, through their own
    workspace, once per ``once`` key and person."""
    for reporter in point.reporters:
        if reporter.user_id in skip:
            continue
        outbox.enqueue(
            session=session,
            dedupe_key=f"notice:{once}:{reporter.user_id}",
            method="chat.postMessage",
            payload={"channel": reporter.user_id, **notice},
            friction_point_id=point.id,
            workspace=reporter.workspace,
        )


def render_card(*, session: Session, policy: Policy, point: FrictionPoint, now: datetime | None = None) -> dict:
    """The card as it stands at ``now`` (Block Kit ``{text, blocks}``): an older open report it
    resembles offered as a one-click merge (the suggestion kept by ``insight.keep_duplicate``, never
    scored here: this runs inside write transactions), and what its response targets say is due and when."""
    duplicate = insight.card_duplicate(session=session, point=point, threshold=policy.insight.duplicate_threshold, compute=False)
    prefix = policy.reference_prefix
    due = None
    if policy.targets.enabled:
        now = now or utcnow()
        due = due_line(target_alerts.clocks_of(session=session, point=point, policy=policy, now=now).states, now)
    started = point.id in started_points(session=session, point_ids=[point.id])
    return build_card(format_ref(prefix, point.id), point, policy.taxonomy, prefix, duplicate=duplicate, due=due,
                      stage=stage_mrkdwn(point, started), create_issue=bool(policy.issues.projects))


def load_card(*, session: Session, policy: Policy, point_id: int) -> tuple[FrictionPoint | None, dict | None]:
    """The point and its card as it stands; no card when the point is gone or its card not posted yet."""
    point = friction.get_point(session=session, point_id=point_id)
    return point, (render_card(session=session, policy=policy, point=point) if point is not None and point.card_ts else None)


class CardHook(Hook):
    """Outbox hook (``CARD_PURPOSE``): renders a card at send time and remembers where it was posted."""

    def __init__(self, policy: Policy):
        self.policy = policy

    async def ready(self, db, message: OutboxMessage) -> None:
        """Before ``prepare``'s transaction: the point's duplicate suggestion scored and kept as
        ``insight.keep_duplicate`` does, in three steps: a read-only transaction and a short write
        in worker threads, and between them, outside any transaction, the scoring in the
        low-priority thread (``bot.runtime.cpu``), so a new card's check of 500 open reports holds
        neither SQLite's write lock, nor the event loop, nor the CPU the acks need."""
        threshold = self.policy.insight.duplicate_threshold
        if message.friction_point_id is None or threshold <= 0:
            return
        read = await anyio.to_thread.run_sync(partial(db.read, insight.to_score, point_id=message.friction_point_id, threshold=threshold))
        if read is None:
            return
        scoring = await anyio.to_thread.run_sync(insight.Scoring.prepare, *read)  # Python: a thread at the process's priority
        # Only the GIL-free C++ scoring at low priority: a low-priority thread holding the GIL
        # (or a lock) would make the serving thread wait for it.
        scores = await cpu.low_priority(scoring.scores)
        best = await anyio.to_thread.run_sync(scoring.pick, scores)
        await anyio.to_thread.run_sync(partial(db.transact, insight.keep_scored, point_id=message.friction_point_id, text=scoring.text, best=best))

    def prepare(self, session: Session, message: OutboxMessage, payload: dict) -> tuple[str, dict] | None:
        if message.friction_point_id is None:
            return None  # a card is always queued with its report's id
        point = friction.get_point(session=session, point_id=message.friction_point_id)
        if point is None:
            return None
        card = render_card(session=session, policy=self.policy, point=point)
        if point.card_ts:
            return "chat.update", {"channel": point.card_channel, "ts": point.card_ts, **card}
        if "channel" not in payload:
            return None  # an update for a card that was never posted
        return "chat.postMessage", {"channel": payload["channel"], **card}

    def sent(self, session: Session, message: OutboxMessage, response: dict) -> None:
        if "ts" not in response or "channel" not in response or message.friction_point_id is None:
            return
        friction.set_card(session=session, point_id=message.friction_point_id, channel=response["channel"], ts=response["ts"])
