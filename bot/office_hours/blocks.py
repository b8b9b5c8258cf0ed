"""Office-hours messages: the agenda, the host's DM and the summary. Pure builders returning dicts."""

from datetime import datetime

from bot.office_hours.ids import COVERED_BLOCK, NEW_BLOCK, OPEN_BLOCK, ROLLING_BLOCK
from bot.references import format_ref
from bot.text import fit, link, mrkdwn, shorten, to_mrkdwn
from storage.models import FrictionPoint, Status

MAX_BLOCKS = 50  # per message
SECTION_MAX = 3000  # characters of section text
MAX_ITEMS = 30  # questions listed per list; the rest are counted
MAX_URL = 300  # longer links are left out, so a line stays well under the section limit

HOW_TO_ASK = "Ask one with `/platform-feedback` and pick *A question for office hours*."


def _md(text: str) -> dict:
    return {"type": "mrkdwn", "text": fit(text)}


def _when(start: datetime) -> tuple[str, str]:
    """(mrkdwn shown in each reader's time zone, plain text in the session's)."""
    plain = f"{start:%a %d %b %H:%M} {start.tzname()}"
    return f"<!date^{int(start.timestamp())}^{{date_short_pretty}} at {{time}}|{plain}>", plain


def _link(url: str | None, label: str) -> str:
    return link(url, label) if url and len(url) <= MAX_URL else to_mrkdwn(label)


def _line(prefix: str, point: FrictionPoint) -> str:
    reporters = point.reporters
    who = f" · <@{reporters[0].user_id}>" + (f" +{len(reporters) - 1}" if len(reporters) > 1 else "") if reporters else ""
    return f"• *{_link(point.permalink, format_ref(prefix, point.id))}* {mrkdwn(point.text, 200)}{who}"


def _outcome(point: FrictionPoint) -> str:
    if point.status == Status.linked and point.links:
        return " → linked to " + ", ".join(_link(lnk.url, shorten(lnk.key, 60)) for lnk in point.links[:2])
    if point.status == Status.resolved:
        note = f": {mrkdwn(point.resolution_note, 150)}" if point.resolution_note else ""
        return f" → resolved{note}"
    return ""


def _sections(block_id: str, heading: str, lines: list[str], empty: str) -> list[dict]:
    """A heading and its lines, cut into sections under Slack's limit; long lists are counted."""
    shown = lines[:MAX_ITEMS] + ([f"…and {len(lines) - MAX_ITEMS} more."] if len(lines) > MAX_ITEMS else [])
    chunks, current = [], f"{heading} ({len(lines)})" if lines else f"{heading}\n{empty}"
    for line in shown:
        if len(current) + 1 + len(line) > SECTION_MAX:
            chunks.append(current)
            current = line
        else:
            current += "\n" + line
    chunks.append(current)
    return [{"type": "section", "block_id": f"{block_id}:{i}", "text": _md(c)} for i, c in enumerate(chunks)]


def _message(text: str, blocks: list[dict]) -> dict:
    return {"text": text, "blocks": blocks[:MAX_BLOCKS]}


def _counts(new: list, still_open: list) -> str:
    return f"{len(new)} new question{'s' * (len(new) != 1)}, {len(still_open)} still open"


def _agenda_lists(prefix: str, new: list[FrictionPoint], still_open: list[FrictionPoint]) -> list[dict]:
    return [
        *_sections(NEW_BLOCK, "*New since the last session*", [_line(prefix, p) for p in new], "None yet. " + HOW_TO_ASK),
        *(_sections(OPEN_BLOCK, "*Still open from earlier*", [_line(prefix, p) for p in still_open], "") if still_open else []),
    ]


def build_agenda(
    prefix: str, start: datetime, minutes: int, host: str | None, new: list[FrictionPoint], still_open: list[FrictionPoint]
) -> dict:
    """The post in the session's channel before it starts. ``start`` is local to the session."""
    when, plain = _when(start)
    facts = [f"{when}, {minutes} minutes"] + ([f"hosted by <@{host}>"] if host else [])
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Office hours agenda", "emoji": True}},
        {"type": "context", "elements": [_md(" · ".join(facts))]},
        *_agenda_lists(prefix, new, still_open),
        {"type": "context", "elements": [_md(f"Anything else? {HOW_TO_ASK}")]},
    ]
    return _message(f"Office hours agenda for {plain}: {_counts(new, still_open)}", blocks)


def build_host_dm(
    prefix: str, start: datetime, channel: str, new: list[FrictionPoint], still_open: list[FrictionPoint]
) -> dict:
    """The DM to the host on duty, sent with the agenda."""
    when, plain = _when(start)
    intro = f":wave: You're hosting office hours {when} in <#{channel}>. The agenda is posted there: {_counts(new, still_open)}."
    blocks = [{"type": "section", "text": _md(intro)}, *_agenda_lists(prefix, new, still_open)]
    return _message(f"You're hosting office hours {plain}: {_counts(new, still_open)}", blocks)


def build_summary(
    prefix: str, start: datetime, host: str | None, covered: list[FrictionPoint], rolling_over: list[FrictionPoint]
) -> dict:
    """The post in the session's channel after it ends."""
    when, plain = _when(start)
    facts = [when] + ([f"hosted by <@{host}>"] if host else [])
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Office hours summary", "emoji": True}},
        {"type": "context", "elements": [_md(" · ".join(facts))]},
        *_sections(COVERED_BLOCK, "*Covered*", [_line(prefix, p) + _outcome(p) for p in covered], "Nothing was resolved or linked."),
        *_sections(ROLLING_BLOCK, "*Rolling over to the next session*", [_line(prefix, p) for p in rolling_over], "Nothing: every question was answered."),
    ]
    text = f"Office hours summary for {plain}: {len(covered)} covered, {len(rolling_over)} rolling over"
    return _message(text, blocks)
