"""Block Kit of the moment-of-use question: the DM, its comment modal and what replaces the DM
once answered. Pure builders (dicts), people's text only through ``bot.text``."""

import json

from bot.text import fit, mrkdwn, to_mrkdwn
from bot.usage.ids import COMMENT_INPUT, FILE_CHOICE, FILE_VALUE, UsageAction, UsageBlock, UsageCallback
from bot.usage.policy import Capability

LABELS = {1: "1 · Bad", 2: "2", 3: "3 · OK", 4: "4", 5: "5 · Great"}
COMMENT_MAX = 2000


def _plain(t: str) -> dict:
    return {"type": "plain_text", "text": t, "emoji": True}


def _md(t: str) -> dict:
    return {"type": "mrkdwn", "text": fit(t)}


def question_text(cap: Capability) -> str:
    return cap.csat.question or f"How was {cap.display} just now?"


def _promise(min_group: int) -> str:
    return (f"Anonymous: the platform team sees each week's scores only once {min_group} or more people answered, "
            "and comments without names, after the week's answers are in.")


def build_question(cap: Capability, ask_id: int, min_group: int, *, chosen: int | None = None) -> dict:
    """The DM: the question, five buttons (``chosen`` highlighted), "What got in the way?" and who sees what."""
    buttons = []
    for score, label in LABELS.items():
        button = {"type": "button", "action_id": f"{UsageAction.score}:{score}", "text": _plain(label), "value": f"{ask_id}|{score}"}
        if score == chosen:
            button["style"] = "primary"
        buttons.append(button)
    buttons.append({"type": "button", "action_id": UsageAction.comment, "text": _plain("What got in the way?"), "value": str(ask_id)})
    note = ":white_check_mark: Thanks, noted. Press another to change it." if chosen else _promise(min_group)
    blocks = [
        {"type": "section", "text": _md(f"*{to_mrkdwn(question_text(cap))}*")},
        {"type": "actions", "block_id": UsageBlock.scores, "elements": buttons},
        {"type": "context", "elements": [_md(note)]},
    ]
    return {"text": mrkdwn(question_text(cap), 200), "blocks": blocks}


def build_comment_modal(cap: Capability, ask_id: int, *, low_score: bool, area_label: str | None) -> dict:
    """The comment modal. With ``low_score`` and an area, a choice to file it as a friction report
    in the person's own name (then it is not kept with the anonymous answer)."""
    blocks = [{
        "type": "input", "block_id": UsageBlock.comment, "optional": True, "label": _plain("What got in the way?"),
        "element": {"type": "plain_text_input", "action_id": COMMENT_INPUT, "multiline": True, "max_length": COMMENT_MAX},
    }]
    if low_score and area_label:
        blocks.append({
            "type": "input", "block_id": UsageBlock.file, "optional": True, "label": _plain("Report it too?"),
            "element": {"type": "checkboxes", "action_id": FILE_CHOICE, "options": [{
                "text": _plain(f"File it as a friction report in my name ({area_label[:40]})"), "value": FILE_VALUE}]},
            "hint": _plain("The platform team then sees it with your name and can follow up. It is not kept with the anonymous answer."),
        })
    blocks.append({"type": "context", "elements": [_md("Without the box ticked your comment is anonymous, like your score.")]})
    return {
        "type": "modal", "callback_id": UsageCallback.comment_modal, "private_metadata": json.dumps({"ask": ask_id}),
        "title": _plain(cap.display[:24]), "submit": _plain("Send"), "close": _plain("Cancel"), "blocks": blocks,
    }


def build_thanks(*, filed_ref: str | None = None, closed: bool = False) -> str:
    if closed:
        return "This question has closed: the week's answers are already counted. Thank you all the same."
    if filed_ref:
        return f"Thanks. Filed as {filed_ref} in your name; your score stays anonymous."
    return "Thanks, noted."


# ------------------------------------------------------------------ the dashboard's usage section


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f} %"


def _hours(d) -> str:
    if d is None:
        return "–"
    hours = d.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"


def dashboard_context(adoption, chart) -> dict | None:
    """What ``_usage.html`` shows: per capability (most used x least liked first) its latest week,
    its moment-of-use CSAT (closed windows at the minimum group only) and its area's friction, and a
    chart of weekly active users (``chart(title, labels, series, y_label=, id_prefix=)``, the
    dashboard's SVG line chart). None when the policy lists no capability."""
    from bot.usage.adoption import ranked

    if adoption is None or not adoption.capabilities:
        return None
    rows = []
    for c in ranked(adoption):
        w = c.latest
        rows.append({
            "name": c.label, "active": w.active, "active_4w": w.active_4w, "new": w.new, "returning": w.returning,
            "share": _rate(w.share), "ttf": _hours(w.time_to_first_use), "failure": _rate(w.failure_rate),
            "csat": f"{c.csat.average:.1f}" if c.csat.average is not None else "–",
            "csat_detail": (f"{len(c.csat.scored)} answers" if c.csat.scored else
                            f"{c.csat.answers} answers, under the minimum group" if c.csat.answers else "no answers yet"),
            "area": c.area_label or "–",
            "friction": f"{c.friction_score:.1f}" if c.friction_score is not None else "–", "points": c.friction_points,
        })
    labels = [w.strftime("%d %b") for w in adoption.weeks]
    svg = None
    if any(w.active for c in adoption.capabilities for w in c.weeks):
        svg = chart("Weekly active users per capability", labels, {c.label: [w.active for w in c.weeks] for c in adoption.capabilities},
                    y_label="people", id_prefix="usage")
    comments = [{"capability": next((c.label for c in adoption.capabilities if c.name == name), name), "score": score, "text": text[:500]}
                for name, score, text in adoption.comments[:20]]
    return {"rows": rows, "chart": svg, "audience": adoption.audience, "week": labels[-1] if labels else "", "comments": comments}


def digest_blocks(adoption) -> list[dict]:
    """The weekly digest's usage part: one line per capability, most used x least liked first."""
    from bot.usage.adoption import ranked

    if adoption is None or not adoption.capabilities:
        return []
    lines = []
    for c in ranked(adoption)[:10]:
        w = c.latest
        csat = f"CSAT {c.csat.average:.1f}" if c.csat.average is not None else "CSAT –"
        friction = f", {c.area_label} friction {c.friction_score:.1f}" if c.friction_score is not None else ""
        lines.append(f"• *{mrkdwn(c.label, 75)}*: {w.active} active this week ({w.active_4w} in 4 weeks), {w.new} new, "
                     f"failed {_rate(w.failure_rate)}; {csat}{friction}")
    return [{"type": "section", "text": _md("*Adoption and satisfaction* (most used × least liked first)\n" + "\n".join(lines))}]
