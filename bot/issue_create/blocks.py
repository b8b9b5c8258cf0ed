"""Block Kit for creating an issue from a card: the button, the modal, its "creating" and result
views. Pure functions returning dicts; people's words shown through ``bot.text``."""

from typing import TYPE_CHECKING

from pydantic import BaseModel

from bot.issue_create.ids import TRACKER_NAMES as NAMES
from bot.issue_create.ids import IssueAction, IssueBlock, IssueCallback
from bot.text import link, mrkdwn, to_mrkdwn

if TYPE_CHECKING:
    from bot.issue_create.draft import Draft

MAX_DESCRIPTION = 3000  # plain_text_input's documented max_length (SLACK_FACTS.md §7)


class IssueMetadata(BaseModel):
    """The modal's ``private_metadata``: the report it creates an issue for."""

    point_id: int

    def dump(self) -> str:
        return self.model_dump_json()

    @classmethod
    def load(cls, raw: str) -> "IssueMetadata":
        return cls.model_validate_json(raw or "{}")


def _text(text: str, kind: str = "plain_text") -> dict:
    return {"type": kind, "text": text}


def build_create_button(point_id: int) -> dict:
    """The card's and App Home's "Create issue" button (host-only: the listener checks)."""
    return {"type": "button", "action_id": IssueAction.open, "text": _text("Create issue"), "value": str(point_id)}


def project_label(tracker: str, project: str) -> str:
    return f"{NAMES[tracker]} · {project}"[:75]


def _option(tracker: str, project: str) -> dict:
    return {"text": _text(project_label(tracker, project)), "value": f"{tracker}:{project}"[:150]}


def build_issue_modal(d: "Draft", *, problem: str | None = None, title: str | None = None, description: str | None = None,
                      labels: str | None = None, project: str | None = None) -> dict:
    """The form, prefilled from the report (or, after a failed attempt, from what the host sent,
    with ``problem`` on top). ``project``: the ``tracker:project`` chosen."""
    options = [_option(p.tracker, p.project) for p in d.projects][:100]
    chosen = project or (d.default.ident if d.default else None)
    select: dict = {"type": "static_select", "action_id": IssueAction.project, "options": options}
    initial = next((o for o in options if o["value"] == chosen), None)
    if initial:
        select["initial_option"] = initial
    default_labels = ", ".join(d.default.labels) if d.default else ""
    facts = [f"*{d.ref}*", f"Severity {to_mrkdwn(d.facts.severity)}", f"{d.facts.people} {'person' if d.facts.people == 1 else 'people'}"]
    if d.facts.area:
        facts.append("Area " + to_mrkdwn(", ".join(d.facts.area)))
    if d.facts.minutes_lost:
        facts.append(f"{d.facts.minutes_lost} min lost")
    if d.facts.duplicates:
        facts.append(f"{len(d.facts.duplicates)} merged duplicate(s)")
    blocks: list[dict] = []
    if problem:
        blocks.append({"type": "section", "block_id": IssueBlock.problem, "text": _text(f":warning: {to_mrkdwn(problem)}", "mrkdwn")})
    if d.linked:
        blocks.append({"type": "context", "elements": [_text("Already linked to " + to_mrkdwn(", ".join(d.linked)), "mrkdwn")]})
    blocks += [
        {"type": "context", "elements": [_text(" · ".join(facts), "mrkdwn")]},
        {"type": "input", "block_id": IssueBlock.project, "label": _text("Tracker and project"), "element": select},
        {"type": "input", "block_id": IssueBlock.issue_title, "label": _text("Title"),
         "element": {"type": "plain_text_input", "action_id": IssueAction.issue_title, "max_length": 255,
                     "initial_value": (title if title is not None else d.title)[:255]}},
        {"type": "input", "block_id": IssueBlock.description, "label": _text("What got in the way"),
         "hint": _text("Goes into the issue as text. The bot adds area, severity, time lost, how many people, "
                       "links to the Slack messages and merged duplicates."),
         "element": {"type": "plain_text_input", "action_id": IssueAction.description, "multiline": True, "max_length": MAX_DESCRIPTION,
                     "initial_value": (description if description is not None else d.description)[:MAX_DESCRIPTION]}},
        {"type": "input", "block_id": IssueBlock.labels, "label": _text("Labels"), "optional": True,
         "hint": _text("Comma-separated."),
         "element": {"type": "plain_text_input", "action_id": IssueAction.labels, "max_length": 500,
                     **({"initial_value": labels if labels is not None else default_labels} if (labels or default_labels) else {})}},
    ]
    return {"type": "modal", "callback_id": IssueCallback.modal, "title": _text("Create issue"), "submit": _text("Create"),
            "close": _text("Cancel"), "private_metadata": IssueMetadata(point_id=d.point_id).dump(), "blocks": blocks}


def build_working_view(ref: str, tracker: str, project: str) -> dict:
    """Shown at once on submit (the ack), while the tracker is asked."""
    return {"type": "modal", "title": _text("Create issue"), "close": _text("Close"),
            "blocks": [{"type": "section", "text": _text(
                f":hourglass_flowing_sand: Creating {ref}'s issue in {to_mrkdwn(project_label(tracker, project))}…\n"
                "You can close this: the card shows the issue once it exists.", "mrkdwn")}]}


def build_done_view(ref: str, key: str, url: str, message: str) -> dict:
    return {"type": "modal", "title": _text("Create issue"), "close": _text("Close"),
            "blocks": [{"type": "section", "text": _text(f":white_check_mark: {to_mrkdwn(message)} {ref} → {link(url, key)}", "mrkdwn")}]}


def build_note_view(message: str) -> dict:
    """A one-line answer in the modal (another host is creating it; the report cannot get one)."""
    return {"type": "modal", "title": _text("Create issue"), "close": _text("Close"),
            "blocks": [{"type": "section", "text": _text(mrkdwn(message, 2900), "mrkdwn")}]}
