"""The reporters' progress DMs: "the platform team started on FB-12", and the day's relayed
updates. People's and trackers' words are shown as text (``bot.text``)."""

from bot.progress.ids import STARTED_BLOCK, UPDATES_BLOCK
from bot.text import link, mrkdwn
from storage.models import FrictionPoint


def _text(text: str, kind: str = "mrkdwn") -> dict:
    return {"type": kind, "text": text}


def _issue(key: str, url: str | None) -> str:
    return link(url, key) if url and url.startswith(("https://", "http://")) else mrkdwn(key, 100)


def build_started_notice(ref: str, point: FrictionPoint, key: str, url: str | None) -> dict:
    """The one DM per reporter and issue when work on it starts."""
    return {
        "text": f"The platform team started on {ref} ({mrkdwn(key, 100)}).",
        "blocks": [
            {"type": "section", "block_id": STARTED_BLOCK,
             "text": _text(f":hammer_and_wrench: *The platform team started on {ref}* ({_issue(key, url)}).")},
            {"type": "context", "elements": [_text(f"You reported: {mrkdwn(point.text, 200)}")]},
        ],
    }


def build_updates_digest(ref: str, point: FrictionPoint, updates: list[str], link_: tuple[str, str] | None) -> dict:
    """One DM with every update relayed for ``ref`` since the last one (at most one a day)."""
    head = f":speech_balloon: *An update on {ref}*" + (f" ({_issue(*link_)})" if link_ else "")
    shown = updates[-10:]
    lines = "\n".join(f"• {mrkdwn(u, 2400 // len(shown))}" for u in shown)
    more = len(updates) - len(shown)
    blocks = [
        {"type": "section", "block_id": UPDATES_BLOCK, "text": _text(f"{head}\n{lines}")},
        {"type": "context", "elements": [_text(f"You reported: {mrkdwn(point.text, 200)}"
                                               + (f" · {more} earlier update(s) not shown" if more else ""))]},
    ]
    return {"text": f"An update on {ref}", "blocks": blocks}
