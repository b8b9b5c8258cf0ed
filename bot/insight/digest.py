"""The weekly digest and ``top`` as operations: plain functions on a session, no Slack in here.
(Apart from ``bot.insight.service`` because the insight blocks import that module.)"""

import base64
from collections.abc import Sequence
from datetime import datetime, timezone

from sqlmodel import Session

from bot import charts
from bot.insight import service as insight
from bot.insight.blocks import build_digest, category_label
from bot.policy import Policy
from bot.targets import compliance
from bot.usage import adoption
from bot.usage.blocks import digest_blocks
from storage import outbox

JOB = "insight.digest"


def top(*, session: Session, days: int, policy: Policy | None = None) -> tuple[insight.FrictionScores, insight.LoopHealth, "compliance.Compliance | None"]:
    """``/platform-feedback top``: friction scores, loop health and response-target compliance
    (None when targets are off) over the last ``days`` days."""
    targets = compliance.compliance(session=session, policy=policy, days=days) if policy is not None else None
    return insight.friction_scores(session=session, days=days), insight.loop_health(session=session, days=days), targets


def queue_digest(*, session: Session, occurrence: datetime, policy: Policy) -> None:
    """The weekly digest for ``occurrence`` (aware datetime): its post and, when any area has a score,
    its chart (PNG, base64, sent as ``files.uploadV2``), both queued with keys derived from the
    occurrence, so a second run for the same week queues nothing."""
    config = policy.insight
    days = config.window_days
    scores = insight.friction_scores(session=session, days=days, now=occurrence)
    health = insight.loop_health(session=session, days=days, now=occurrence, weeks=config.chart_weeks)
    key = f"{JOB}:{occurrence.astimezone(timezone.utc).isoformat()}"
    digest = build_digest(policy.taxonomy, scores, health, compliance.compliance(session=session, policy=policy, days=days, now=occurrence))
    if policy.usage.capabilities:  # adoption beside friction (bot.usage)
        digest["blocks"] += digest_blocks(adoption.measure(session=session, policy=policy, now=occurrence, weeks=config.chart_weeks))
    outbox.enqueue(session=session, dedupe_key=f"{key}:post", method="chat.postMessage", payload={"channel": config.digest_channel, **digest})
    weekly = insight.weekly_category_scores(session=session, weeks=config.chart_weeks, now=occurrence)
    if not weekly.categories:
        return
    labels = [f"{w:%b %d}" for w in weekly.weeks]
    series: dict[str, Sequence[float | None]] = {category_label(policy.taxonomy, c): values for c, values in weekly.categories.items()}
    png = charts.line_chart("Friction score by area, per week", labels, series, y_label="score")
    day = f"{occurrence:%Y-%m-%d}"
    outbox.enqueue(
        session=session, dedupe_key=f"{key}:chart", method="files.uploadV2",
        payload={
            "channel": config.digest_channel,
            "filename": f"friction-{day}.png",
            "title": f"Friction by area, {len(weekly.weeks)} weeks to {day}",
            "initial_comment": f"Top areas over the last {len(weekly.weeks)} weeks (score per week).",
            "content_b64": base64.b64encode(png).decode("ascii"),
        },
    )
