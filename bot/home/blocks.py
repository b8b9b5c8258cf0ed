"""The App Home tab."""

from bot.intake.blocks import build_reports_list
from storage.models import FrictionPoint


def build_home(prefix: str, reaction: str, points: list[FrictionPoint], started: frozenset[int] | set[int] = frozenset()) -> dict:
    how = (
        "*Something in the platform got in your way?* Tell us: it takes ten seconds.\n"
        "• Type `/platform-feedback` in any channel for a short form, or add one line after it.\n"
        f"• On any message: the *Report platform friction* shortcut, or react with :{reaction}:."
    )
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "Platform feedback"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": how}},
        {"type": "divider"},
        *build_reports_list(prefix, points, heading="Your reports", started=started),
    ]
    return {"type": "home", "blocks": blocks}
