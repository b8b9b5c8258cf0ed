"""Block Kit of the moment-of-use question: the DM, its comment modal and what replaces the DM
once answered. Pure builders (dicts), people's text only through ``bot.blocks.text``."""

import json

from bot.blocks.text import fit, mrkdwn, to_mrkdwn
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
