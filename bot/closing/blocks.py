"""Closure notices ("you reported this, it's fixed"), the answers to them, and "you said, we did"."""

from typing import Protocol

from bot.closing.ids import COMMENT_BLOCK, FEEDBACK_BLOCK, ClosingAction, ClosingCallback, NoticeMetadata
from bot.intake.blocks import _text
from bot.references import format_ref
from bot.text import link, mrkdwn, to_mrkdwn
from storage.models import FrictionPoint


class NoticeFacts(Protocol):
    """What a closure notice's DM shows of it: a stored ``ClosureNotice``, or the row as bulk-written
    (``bot.closing.service.Notice``)."""

    @property
    def id(self) -> int: ...

    @property
    def key(self) -> str: ...

    @property
    def outcome(self) -> str: ...


def _issue_link(key: str, url: str | None) -> str:
    return link(url, key) if url else to_mrkdwn(key)


def build_closure_notice(
    ref: str, point: FrictionPoint, notice: NoticeFacts, url: str | None, title: str | None, *, not_planned_message: str
) -> dict:
    said = f"On {point.created_at:%b %d} you reported *{ref}*:\n>{mrkdwn(point.text, 280)}"
    issue = _issue_link(notice.key, url) + (f" ({mrkdwn(title, 120)})" if title else "")
    if notice.outcome == "fixed":
        head = f":tada: *You reported this, and it's fixed.* {issue} was closed as done."
        text = f"You reported {ref}, and it's fixed: {mrkdwn(notice.key, 100)} was closed as done."
        buttons = [
            {"type": "button", "action_id": ClosingAction.works, "text": _text("Works for me"), "value": str(notice.id), "style": "primary"},
            {"type": "button", "action_id": ClosingAction.broken, "text": _text("Still broken"), "value": str(notice.id)},
        ]
    else:
        head = f"*About your report {ref}:* {to_mrkdwn(not_planned_message)}\nThe issue was {issue}."
        text = f"About your report {ref}: {mrkdwn(not_planned_message, 200)}"
        buttons = [{"type": "button", "action_id": ClosingAction.broken, "text": _text("It still gets in my way"), "value": str(notice.id)}]
    blocks = [
        {"type": "section", "text": _text(head, "mrkdwn")},
        {"type": "section", "text": _text(said, "mrkdwn")},
        {"type": "actions", "block_id": FEEDBACK_BLOCK, "elements": buttons},
    ]
    return {"text": text, "blocks": blocks}


def build_feedback_thanks(works: bool, ref: str) -> dict:
    msg = (
        f":white_check_mark: Thanks for confirming {ref} is fixed."
        if works
        else f":arrows_counterclockwise: Thanks. {ref} is back in the platform team's queue; a host will follow up."
    )
    return {"text": msg, "blocks": [{"type": "section", "text": _text(msg, "mrkdwn")}]}


def build_still_broken_modal(notice_id: int, ref: str) -> dict:
    return {
        "type": "modal",
        "callback_id": ClosingCallback.still_broken,
        "title": _text("Still broken"),
        "submit": _text("Send"),
        "close": _text("Cancel"),
        "private_metadata": NoticeMetadata(notice_id=notice_id).dump(),
        "blocks": [
            {"type": "section", "text": _text(f"What still goes wrong with *{ref}*? The host on it will see this.", "mrkdwn")},
            {
                "type": "input",
                "block_id": COMMENT_BLOCK,
                "label": _text("What happens now"),
                "element": {"type": "plain_text_input", "action_id": ClosingAction.comment, "multiline": True, "max_length": 2000},
            },
        ],
    }


def build_still_broken_alert(ref: str, point: FrictionPoint, user: str, comment: str | None) -> dict:
    who = f"<@{point.assignee}> " if point.assignee else ""
    msg = f":rotating_light: {who}<@{user}> says *{ref}* is still broken"
    msg += f":\n>{mrkdwn(comment, 1500)}" if comment else "."
    return {"text": f"{ref} is still broken", "blocks": [{"type": "section", "text": _text(msg, "mrkdwn")}]}


def build_issue_deleted_alert(ref: str, point: FrictionPoint, tracker: str, key: str, *, back: bool) -> dict:
    """In the card's thread: the linked issue is gone (deleted in its tracker). ``back``: the report
    went back to the queue (it had no other link)."""
    who = f"<@{point.assignee}> " if point.assignee else ""
    then = "It is back in the queue, unlinked: link it again or resolve it." if back else "Its other links and status stay as they are."
    name = {"github": "GitHub", "gitlab": "GitLab", "jira": "Jira", "linear": "Linear"}.get(tracker, tracker)
    msg = f":wastebasket: {who}{mrkdwn(key, 100)}, linked to *{ref}*, was deleted in {mrkdwn(name, 20)}. {then}"
    return {"text": f"The issue linked to {ref} was deleted", "blocks": [{"type": "section", "text": _text(msg, "mrkdwn")}]}


def build_announcement(prefix: str, key: str, url: str | None, title: str | None, points: list[FrictionPoint], reporters: int) -> dict:
    refs = ", ".join(format_ref(prefix, p.id) for p in points[:20])
    what = mrkdwn(title, 150) if title else mrkdwn(points[0].text, 150)
    people = f"{reporters} {'person' if reporters == 1 else 'people'}"
    msg = f":sparkles: *You said, we did.* {what} — fixed in {_issue_link(key, url)}.\nReported by {people} ({refs})."
    return {"text": f"You said, we did: {mrkdwn(key, 100)} is fixed ({people} reported it).", "blocks": [{"type": "section", "text": _text(msg, "mrkdwn")}]}
