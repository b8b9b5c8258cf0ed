"""The create-issue form's prefill for one report (``bot.issue_create.service.draft`` makes it,
``bot.issue_create.blocks`` renders it): a data type apart from both, so the form's builders need
not import the operations that call the trackers."""

from dataclasses import dataclass, field

from bot.issue_create import markup
from bot.issue_create.policy import Project


@dataclass(frozen=True)
class Draft:
    """The modal's prefill for one report: ``description`` is the reporter's words (editable),
    ``facts`` what the bot adds around them, ``default`` the project of its area."""

    point_id: int
    ref: str
    title: str
    description: str
    facts: markup.Facts
    projects: list[Project]
    default: Project | None
    linked: list[str] = field(default_factory=list)  # issues it is linked to already
