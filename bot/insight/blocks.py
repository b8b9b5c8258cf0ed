"""Friction insight in Block Kit: ``/platform-feedback top`` and the weekly digest. Also the plain
words both share with the CLI report (labels, trends, durations)."""

from bot.insight.service import FrictionScores, LoopHealth, LoopNumbers, PointScore
from bot.intake.blocks import _text
from bot.policy import Taxonomy
from bot.references import format_ref
from bot.text import mrkdwn, to_mrkdwn
from bot.triage.blocks import _duration as duration
from storage.insight import UNTAGGED

FORMULA = "Score = reporters × severity weight (low 1, medium 2, high 4, blocker 8) + hours lost ÷ 8, summed per area."


def category_label(taxonomy: Taxonomy, category: str) -> str:
    return "Untagged" if category == UNTAGGED else taxonomy.label(category)


def trend(current: float, previous: float, *, new: bool | None = None) -> str:
    """Plain words: ``+3.5``, ``-2.0``, ``new``, ``=``. ``new``: whether the thing was first reported
    in the current window (a data point); None (an area): new when it had no score before."""
    if new if new is not None else (previous == 0 and current > 0):
        return "new"
    change = current - previous
    return "=" if abs(change) < 0.05 else f"{change:+.1f}"


def point_trend(point: PointScore) -> str:
    """An open point's trend: ``new`` only if first reported in this window; otherwise its score's
    change against the window before (an older point quiet then and busy now shows ``+``, not ``new``)."""
    return trend(point.score, point.previous, new=point.new)


def rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _trend_mrkdwn(current: float, previous: float, new: bool | None = None) -> str:
    words = trend(current, previous, new=new)
    if words in ("new", "="):
        return words
    return (":small_red_triangle: " if current > previous else ":small_red_triangle_down: ") + words


def _category_lines(taxonomy: Taxonomy, scores: FrictionScores, limit: int) -> str:
    shown = [c for c in scores.categories if c.score > 0][:limit]
    if not shown:
        return "_No friction reported in this window._"
    lines = []
    for i, c in enumerate(shown, 1):
        hours = f", {c.hours_lost:.1f} h lost" if c.hours_lost else ""
        lines.append(
            f"{i}. *{to_mrkdwn(category_label(taxonomy, c.category))}*: {c.score:.1f} ({_trend_mrkdwn(c.score, c.previous)})"
            f" · {c.points} report{'s' if c.points != 1 else ''}, {c.reporters} reporter{'s' if c.reporters != 1 else ''}{hours}"
        )
    return "\n".join(lines)


def _loop_fields(health: LoopHealth) -> list[dict]:
    now, before = health.current, health.previous

    def field(title: str, value: str, was: str) -> dict:
        return _text(f"*{title}*\n{value} (was {was})", "mrkdwn")

    weekly_active = health.weeks[-1].active_reporters if health.weeks else 0
    weekly_before = health.weeks[-2].active_reporters if len(health.weeks) > 1 else 0
    return [
        field("Reports per week", f"{now.reports_per_week:.1f}", f"{before.reports_per_week:.1f}"),
        field("Active reporters this week", str(weekly_active), str(weekly_before)),
        field("Median first response", duration(now.median_first_response), duration(before.median_first_response)),
        field("Median time to resolve", duration(now.median_resolution), duration(before.median_resolution)),
        field("Closed-loop rate", f"{rate(now.closed_loop_rate)} of {now.resolved} resolved", rate(before.closed_loop_rate)),
    ]


def _days(numbers: LoopNumbers) -> int:
    return round(numbers.window.days)


def build_top(prefix: str, taxonomy: Taxonomy, scores: FrictionScores, health: LoopHealth, *, show_points: bool, targets=None) -> dict:
    """The ephemeral answer to ``/platform-feedback top``; open reports' words only for hosts.
    ``targets``: response-target compliance (``compliance.Compliance``), None when targets are off."""
    days = _days(health.current)
    blocks: list[dict] = [
        {"type": "header", "text": _text(f"Top friction, last {days} days")},
        {"type": "section", "text": _text(_category_lines(taxonomy, scores, 8), "mrkdwn")},
    ]
    if show_points and scores.open_points:
        lines = [
            f"*{format_ref(prefix, p.point_id)}* · {p.score:.1f} ({_trend_mrkdwn(p.score, p.previous, p.new)}) · "
            f"{p.reporters} reporter{'s' if p.reporters != 1 else ''}\n>{mrkdwn(p.text, 150)}"
            for p in scores.open_points[:8]
        ]
        blocks.append({"type": "section", "text": _text("*Top open reports*\n" + "\n".join(lines), "mrkdwn")})
    blocks += [
        {"type": "section", "text": _text("*Closing the loop*", "mrkdwn"), "fields": _loop_fields(health)},
        *_targets(taxonomy, targets),
        {"type": "context", "elements": [_text(f"{FORMULA} Trends compare with the {days} days before.", "mrkdwn")]},
    ]
    top = next((c for c in scores.categories if c.score > 0), None)
    text = f"Top friction, last {days} days" + (f": {to_mrkdwn(category_label(taxonomy, top.category))} leads" if top else "")
    return {"text": text, "blocks": blocks}


def _targets(taxonomy: Taxonomy, targets) -> list[dict]:
    from bot.targets.blocks import build_compliance_blocks

    return build_compliance_blocks(targets, lambda c: category_label(taxonomy, c)) if targets is not None else []


def build_digest(taxonomy: Taxonomy, scores: FrictionScores, health: LoopHealth, targets=None) -> dict:
    """The weekly digest post: top areas with their trend, the loop numbers and, with response
    targets, their compliance (no report texts)."""
    days = _days(health.current)
    blocks = [
        {"type": "header", "text": _text("Weekly friction digest")},
        {"type": "section", "text": _text(f"*Top areas, last {days} days*\n" + _category_lines(taxonomy, scores, 5), "mrkdwn")},
        {"type": "section", "text": _text("*Closing the loop*", "mrkdwn"), "fields": _loop_fields(health)},
        *_targets(taxonomy, targets),
        {"type": "context", "elements": [_text(f"{FORMULA} Trends compare with the {days} days before.", "mrkdwn")]},
    ]
    return {"text": f"Weekly friction digest: {health.current.reports} reports in the last {days} days", "blocks": blocks}
