"""Response-target messages: the warning and breach in the card's thread, the breach DM, and the
line a card or queue shows ("first response due in 2 h 10 m")."""

from datetime import datetime

from bot.ids import PointMetadata
from bot.intake.blocks import _text
from bot.targets.ids import ASK_BLOCK, ASK_INPUT, REPLY_BLOCK, REPLY_INPUT, TargetAction, TargetCallback  # noqa: F401  (re-exported)
from bot.targets.service import ClockState, Threshold, describe, human
from bot.text import link, mrkdwn


def slack_time(at: datetime) -> str:
    """``at`` as Slack shows a date to each reader in their own time zone, with a UTC fallback."""
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{at:%Y-%m-%d %H:%M} UTC>"


def due_line(states: tuple[ClockState, ...], now: datetime) -> str | None:
    """The card's line for its clocks at ``now``: "first response due in 2 h 10 m (today 14:30) ·
    resolution due in 3 d", "first response overdue by 1 d", "... paused (waiting for the
    reporter)", "first response met". None: no targets for this report. The icon says the worst:
    breached, warned, waiting, or on time."""
    if not states:
        return None
    parts, icon = [], ":stopwatch:"
    for state in states:
        text = describe(state, now)
        if not state.stopped and not state.paused and state.due_at is not None:
            text += f" ({slack_time(state.due_at)})"
        parts.append(text)
    running = [s for s in states if not s.stopped]
    if any(s.breached(now) for s in running):
        icon = ":rotating_light:"
    elif any(s.passed(Threshold.warning, now) for s in running):
        icon = ":hourglass_flowing_sand:"
    elif any(s.paused for s in running):
        icon = ":double_vertical_bar:"
    return f"{icon} " + " · ".join(parts)


def queue_mark(states: tuple[ClockState, ...], now: datetime) -> str | None:
    """What a queue row says about its clocks: the next one due, or that it waits for the reporter."""
    running = [s for s in states if not s.stopped]
    dues = sorted((s for s in running if s.due_at is not None), key=lambda s: s.due_at or now)
    if dues:
        first = dues[0]
        icon = ":rotating_light: *BREACHED*" if first.breached(now) else (":hourglass_flowing_sand:" if first.passed(Threshold.warning, now) else ":stopwatch:")
        return f"{icon} {describe(first, now)}"
    if any(s.paused for s in running):
        return ":double_vertical_bar: waiting for the reporter"
    return None



def build_target_alert(ref: str, text: str, state: ClockState, threshold: Threshold, now: datetime, *, owner: str | None,
                       escalate_group: str | None = None) -> dict:
    """The message for the card's thread. ``owner``: the assignee or host on duty (a Slack user id
    the policy or a host set, so mentioning it is ours, not a person's text)."""
    who = f"<@{owner}> " if owner else ""
    group = f" <!subteam^{escalate_group}>" if escalate_group else ""
    if threshold is Threshold.warning:
        head = f":hourglass_flowing_sand: {who}*{ref}*: {describe(state, now)} (target {human(state.target)} of business time)."
    else:
        head = f":rotating_light: {who}*{ref}*: {describe(state, now)}; the target was {human(state.target)} of business time.{group}"
    summary = f"{ref}: {describe(state, now)}"
    return {"text": summary, "blocks": [
        {"type": "section", "text": _text(head, "mrkdwn")},
        {"type": "context", "elements": [_text(mrkdwn(text, 200), "mrkdwn")]},
    ]}


def build_breach_dm(ref: str, text: str, state: ClockState, now: datetime, *, permalink: str | None) -> dict:
    where = f" {link(permalink, 'Open the card')}." if permalink else ""
    head = f":rotating_light: *{ref}* missed its target: {describe(state, now)}.{where}"
    return {"text": f"{ref}: {describe(state, now)}", "blocks": [
        {"type": "section", "text": _text(head, "mrkdwn")},
        {"type": "section", "text": _text(">" + mrkdwn(text, 280), "mrkdwn")},
    ]}


def build_question_dm(ref: str, point_id: int, host: str, question: str) -> dict:
    """A host's question to the reporter, with a Reply button (``TargetAction.reply``)."""
    head = (f"<@{host}> has a question about your report *{ref}*:\n>{mrkdwn(question, 2500)}\n"
            "Answer with the button, or just reply here.")
    return {"text": f"A question about your report {ref}", "blocks": [
        {"type": "section", "text": _text(head, "mrkdwn")},
        {"type": "actions", "elements": [
            {"type": "button", "action_id": TargetAction.reply, "text": _text("Reply"), "value": str(point_id), "style": "primary"},
        ]},
    ]}


def build_reply_modal(ref: str, point_id: int) -> dict:
    return {
        "type": "modal", "callback_id": TargetCallback.reply, "private_metadata": PointMetadata(point_id=point_id).dump(),
        "title": _text("Reply"), "submit": _text("Send"), "close": _text("Cancel"),
        "blocks": [{"type": "input", "block_id": REPLY_BLOCK, "label": _text(f"Your answer about {ref}"),
                    "element": {"type": "plain_text_input", "action_id": REPLY_INPUT, "multiline": True, "max_length": 2900}}],
    }




def build_ask_modal(ref: str, point_id: int) -> dict:
    """The card's "Ask the reporter": the host's question (``TargetCallback.ask``, metadata the point id)."""
    return {
        "type": "modal", "callback_id": TargetCallback.ask, "private_metadata": PointMetadata(point_id=point_id).dump(),
        "title": _text("Ask the reporter"), "submit": _text("Ask"), "close": _text("Cancel"),
        "blocks": [
            {"type": "section", "text": _text(f"*{ref}*: the reporter gets your question by DM; its response-target clocks "
                                              "pause until they answer.", "mrkdwn")},
            {"type": "input", "block_id": ASK_BLOCK, "label": _text("Your question"),
             "element": {"type": "plain_text_input", "action_id": ASK_INPUT, "multiline": True, "max_length": 2500}},
        ],
    }


def build_answer_received(ref: str) -> dict:
    text = f":white_check_mark: Thanks: your answer about *{ref}* went to the platform team."
    return {"text": f"Your answer about {ref} went to the platform team.", "blocks": [{"type": "section", "text": _text(text, "mrkdwn")}]}


def build_reporter_answer(ref: str, user: str, answer: str) -> dict:
    head = f"<@{user}> answered about *{ref}*; its clocks run again:\n>{mrkdwn(answer, 2500)}"
    return {"text": f"The reporter answered about {ref}", "blocks": [{"type": "section", "text": _text(head, "mrkdwn")}]}


# ------------------------------------------------------------------ compliance (top, digest)


def rate_text(percent: float | None, previous: float | None) -> str:
    """``92% (+4 pts)``, ``92% (was –)``, ``–`` when nothing was measured."""
    if percent is None:
        return "–"
    if previous is None:
        return f"{percent:.0f}% (new)"
    change = percent - previous
    return f"{percent:.0f}% ({'=' if abs(change) < 0.5 else f'{change:+.0f} pts'})"


def build_compliance_blocks(c, label) -> list[dict]:
    """Target compliance for ``/platform-feedback top`` and the digest (``c``: a
    ``compliance.Compliance``; ``label(category)`` names an area). Two blocks."""
    fields = [
        _text(f"*First response on target*\n{rate_text(c.first_response.percent, c.previous_first_response.percent)}"
              f" of {c.first_response.measured}", "mrkdwn"),
        _text(f"*Resolution on target*\n{rate_text(c.resolution.percent, c.previous_resolution.percent)}"
              f" of {c.resolution.measured}", "mrkdwn"),
    ]
    if c.breaches:
        by_severity = ", ".join(f"{k} {v}" for k, v in sorted(c.breaches_by_severity.items(), key=lambda kv: -kv[1]))
        by_area = ", ".join(f"{'no area' if k is None else mrkdwn(label(k), 80)} {v}" for k, v in sorted(c.breaches_by_area.items(), key=lambda kv: -kv[1])[:6])
        fields.append(_text(f"*Breaches: {c.breaches}*\nby severity: {by_severity}\nby area: {by_area}", "mrkdwn"))
    else:
        fields.append(_text("*Breaches*\nnone", "mrkdwn"))
    return [
        {"type": "section", "text": _text("*Response targets* (business time; trend vs the window before)", "mrkdwn"), "fields": fields},
    ]
