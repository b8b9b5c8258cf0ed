"""Checks every Block Kit payload against Slack's limits: slack_sdk's models validate most of them
(``to_dict()`` runs their validators); the limits they skip are checked here."""

import json

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

MESSAGE_BLOCKS = 50  # "up to 50 blocks in each message, and 100 blocks in modals or Home tabs"
PLAIN_TEXT_INPUT_MAX = 3000
MESSAGE_TEXT_MAX = 40_000


class BlockKitError(AssertionError):
    pass


def _walk(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def _check_elements(blocks: list) -> None:
    for node in _walk(blocks):
        if node.get("type") == "plain_text_input":
            if not 0 <= node.get("max_length", PLAIN_TEXT_INPUT_MAX) <= PLAIN_TEXT_INPUT_MAX:
                raise BlockKitError(f"plain_text_input max_length over {PLAIN_TEXT_INPUT_MAX}")
            if len(node.get("initial_value", "")) > node.get("max_length", PLAIN_TEXT_INPUT_MAX):
                raise BlockKitError("plain_text_input initial_value longer than max_length")
        if node.get("type") == "plain_text" and not node.get("text"):
            raise BlockKitError("empty plain_text object")


def _blocks(value) -> list:
    return json.loads(value) if isinstance(value, str) else list(value or [])


def check_message(payload: dict) -> None:
    blocks = _blocks(payload.get("blocks"))
    if len(blocks) > MESSAGE_BLOCKS:
        raise BlockKitError(f"{len(blocks)} blocks in a message (limit {MESSAGE_BLOCKS})")
    if len(payload.get("text") or "") > MESSAGE_TEXT_MAX:
        raise BlockKitError("message text over 40,000 characters")
    if blocks and not payload.get("text"):
        raise BlockKitError("blocks without a text fallback (notifications and screen readers need one)")
    for raw in blocks:
        parsed = Block.parse(raw)
        if parsed is None:
            raise BlockKitError(f"unknown block: {raw!r:.200}")
        parsed.to_dict()  # runs slack_sdk's validators
    _check_elements(blocks)


def check_view(view) -> None:
    view = json.loads(view) if isinstance(view, str) else view
    View(**view).to_dict()  # title, blocks (1-100), private_metadata, callback_id limits...
    _check_elements(view.get("blocks", []))
