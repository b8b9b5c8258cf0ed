"""A ``FrictionDraft`` made in one place (issue #24): every intake surface (the command, the modal,
a reaction, the help channel, a DM, a survey comment) names what it collected, and the fields they
all share are filled the same way here: the reporter is whoever filed it unless the surface says
otherwise, the text is cut to ``max_text`` characters, and the categories the text suggests are
read from the whole text (``bot.intake.service.suggest_categories``)."""

from bot.intake.service import suggest_categories
from bot.policy import Taxonomy
from storage.friction import FrictionDraft
from storage.models import Source


def new_draft(
    *,
    taxonomy: Taxonomy,
    source: Source,
    intake_key: str,
    team_id: str,
    filed_by: str,
    text: str,
    reporter_id: str | None = None,
    max_text: int | None = 3000,
    **details,
) -> FrictionDraft:
    """The draft of a report ``filed_by`` someone from ``source``. ``intake_key``: what makes a
    second delivery of the same thing the same report. ``reporter_id``: who hit the friction
    (default ``filed_by``). ``max_text``: characters of ``text`` kept (None: all; the modal's input
    already has Slack's limit). ``details``: the other ``FrictionDraft`` fields the surface knows
    (categories, severity, channel and message, the Enterprise Grid org...)."""
    return FrictionDraft(
        team_id=team_id,
        filed_by=filed_by,
        reporter_id=filed_by if reporter_id is None else reporter_id,
        text=text if max_text is None else text[:max_text],
        source=source,
        intake_key=intake_key,
        auto_categories=suggest_categories(text, taxonomy),
        **details,
    )
