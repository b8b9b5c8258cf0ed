"""What the bot says in a help-channel thread: the reference (with a Resolve button), and "resolved"."""

from bot.help_channel.ids import REPLY_BLOCK, RESOLVE_ACTION  # noqa: F401  (re-exported)
from bot.intake.blocks import _text


def reply_block_id(point_id: int) -> str:
    return f"{REPLY_BLOCK}:{point_id}"


def build_help_reply(ref: str, point_id: int, resolve_reaction: str, *, open_: bool = True) -> dict:
    """The one reply under a new question. Once it is resolved (``open_`` False) it loses its button."""
    if open_:
        line = (
            f":wave: Logged as *{ref}*. A platform host will answer in this thread. "
            f"Sorted? Press *Resolve* or react to your message with :{resolve_reaction}:."
        )
    else:
        line = f":wave: Logged as *{ref}*."
    blocks: list[dict] = [{"type": "section", "text": _text(line, "mrkdwn")}]
    if open_:
        blocks.append(
            {
                "type": "actions",
                "block_id": reply_block_id(point_id),
                "elements": [
                    {
                        "type": "button",
                        "action_id": RESOLVE_ACTION,
                        "text": _text("Resolve"),
                        "value": str(point_id),
                        "style": "primary",
                    }
                ],
            }
        )
    return {"text": f"Logged as {ref}.", "blocks": blocks}


def build_resolved_reply(ref: str, actor: str) -> dict:
    """The one "resolved" post in the thread; it is also how the asker hears (no DM)."""
    line = f":white_check_mark: *{ref}* resolved by <@{actor}>."
    return {"text": f"{ref} resolved by <@{actor}>.", "blocks": [{"type": "section", "text": _text(line, "mrkdwn")}]}
