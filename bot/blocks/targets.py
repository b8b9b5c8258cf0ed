"""Response-target messages: the warning and breach in the card's thread, the breach DM, and the
line a card or queue shows ("first response due in 2 h 10 m")."""

from datetime import datetime

from bot.blocks.intake import _text
from bot.blocks.text import link, mrkdwn
from bot.operations.targets import ClockState, Threshold, describe, human



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
    """A host's question to the reporter, with a Reply button (``Action.target_reply``)."""
    from bot.blocks.ids import Action

    head = f"<@{host}> has a question about your report *{ref}*:\n>{mrkdwn(question, 2500)}"
    return {"text": f"A question about your report {ref}", "blocks": [
        {"type": "section", "text": _text(head, "mrkdwn")},
        {"type": "actions", "elements": [
            {"type": "button", "action_id": Action.target_reply, "text": _text("Reply"), "value": str(point_id), "style": "primary"},
        ]},
    ]}


def build_reply_modal(ref: str, point_id: int) -> dict:
    from bot.blocks.ids import Callback

    return {
        "type": "modal", "callback_id": Callback.target_reply, "private_metadata": str(point_id),
        "title": _text("Reply"), "submit": _text("Send"), "close": _text("Cancel"),
        "blocks": [{"type": "input", "block_id": REPLY_BLOCK, "label": _text(f"Your answer about {ref}"),
                    "element": {"type": "plain_text_input", "action_id": REPLY_INPUT, "multiline": True, "max_length": 2900}}],
    }


REPLY_BLOCK, REPLY_INPUT = "target_reply", "target_reply_input"


def build_reporter_answer(ref: str, user: str, answer: str) -> dict:
    head = f"<@{user}> answered about *{ref}*; its clocks run again:\n>{mrkdwn(answer, 2500)}"
    return {"text": f"The reporter answered about {ref}", "blocks": [{"type": "section", "text": _text(head, "mrkdwn")}]}
