"""The weekly "you said, we did" changelog message (Block Kit: at most 50 blocks, 3,000 characters
per section text: https://api.slack.com/reference/block-kit/blocks#section)."""

from datetime import datetime

from bot.intake.blocks import _text
from bot.references import format_ref
from bot.text import shorten, to_mrkdwn

MAX_FIXES = 40  # one line each; more are summed up in one closing line
SECTION_CHARS = 2900


def _issue(key: str, url: str | None) -> str:
    # A tracker's URL goes into <url|label> only when it cannot break out of it.
    safe = url and url.startswith(("https://", "http://")) and not any(c in url for c in "<>| \n")
    return f"<{url}|{to_mrkdwn(key)}>" if safe else to_mrkdwn(key)


def build_changelog(prefix: str, fixes: list, *, start: datetime, end: datetime) -> dict:
    """``fixes``: bot.changelog.service.Fix, most reporters first. Returns ``text`` and ``blocks``."""
    period = f"{start:%b %d} – {end:%b %d}"
    # Per fix only: a person who reported two fixes would be counted twice in a total.
    summary = f"{len(fixes)} fix{'es' if len(fixes) != 1 else ''} to what you reported"
    head = f":sparkles: *You said, we did* ({period}): {summary}."
    lines = []
    for fix in fixes[:MAX_FIXES]:
        refs = ", ".join(format_ref(prefix, pid) for pid, _ in fix.points[:5]) + (" …" if len(fix.points) > 5 else "")
        what = to_mrkdwn(shorten(fix.points[0][1], 120)) if fix.points else ""
        who = f"{fix.reporters} {'person' if fix.reporters == 1 else 'people'}"
        mark = " :dart: _this quarter's focus_" if fix.focus else ""
        lines.append(f"• {_issue(fix.key, fix.url)}: {what} — reported by *{who}* ({refs}){mark}")
    if len(fixes) > MAX_FIXES:
        lines.append(f"… and {len(fixes) - MAX_FIXES} more.")
    blocks = [{"type": "section", "text": _text(head, "mrkdwn")}]
    chunk = ""
    for line in lines or ["No linked issue was closed as fixed in this period."]:
        if chunk and len(chunk) + len(line) + 1 > SECTION_CHARS:
            blocks.append({"type": "section", "text": _text(chunk, "mrkdwn")})
            chunk = ""
        chunk = f"{chunk}\n{line}" if chunk else line
    blocks.append({"type": "section", "text": _text(chunk, "mrkdwn")})
    blocks.append({"type": "context", "elements": [_text("Thanks to everyone who reported these. `/platform-feedback` files the next one.", "mrkdwn")]})
    return {"text": f"You said, we did ({period}): {summary}.", "blocks": blocks}
