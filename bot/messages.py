"""What a person sees in a Slack message, as plain text: the one reader every intake uses (the
filing reaction, the message shortcut, the help channel).

Slack shows a message's ``blocks`` when it has any and uses ``text`` only as the notification
fallback ("If attachments or blocks are included, text will be used as fallback text for
notifications only", https://api.slack.com/methods/chat.postMessage); ``attachments`` are shown
beneath either, and files by name. Alerting tools post with ``text: ""`` and everything in
attachments or blocks (tests/fixtures/slack/NOTES.md, section 1). So: the blocks' text, else
``text``; then each attachment (pretext, author, title, text, fields, footer; ``fallback`` only
when it shows nothing else, since clients do not display it); then the files' names.

Slack markup becomes what the client displays: ``<@U1>`` -> ``@U1``, ``<#C1|general>`` ->
``#general``, ``<!here>`` -> ``@here``, ``<url|label>`` -> ``label (url)``, ``&amp;`` -> ``&``.
The result is plain text, never markup: nothing in it is a live mention or link until someone
escapes it for Slack again (``bot.text``).
"""

import re
from datetime import datetime, timezone

# <@U123>, <@U123|name>, <#C123|general>, <!here>, <!subteam^S1|@team>, <!date^1628633089^{date}|Aug 10>,
# <https://x|label>, <mailto:a@b|a>. Slack escapes a literal < > & in text as &lt; &gt; &amp;.
_TOKEN = re.compile(r"<([^<>]*)>")
_BULLET = "•"


def message_text(message: dict) -> str:
    """The text a person sees in ``message`` (a Slack message object as Events, conversations.history
    or a shortcut payload give it), plain, with lines separated by ``\\n``; "" when it shows nothing
    readable (an image alone, say). Never raises on a well-formed JSON object of any shape."""
    parts = [_blocks_text(message.get("blocks")) or _mrkdwn(message.get("text"))]
    parts += [_attachment_text(a) for a in _dicts(message.get("attachments"))]
    names = [str(f.get("name") or f.get("title") or "") for f in _dicts(message.get("files"))]
    if any(names):
        parts.append("Files: " + ", ".join(n for n in names if n))
    return "\n".join(p for p in (p.strip("\n") for p in parts) if p.strip())


# ------------------------------------------------------------------ markup


def _mrkdwn(text) -> str:
    """Slack's message markup (mrkdwn as stored in ``text``) as the text the client displays."""
    if not isinstance(text, str):
        return ""
    return _unescape(_TOKEN.sub(lambda m: _token(m.group(1)), text))


def _token(inner: str) -> str:
    target, _, label = inner.partition("|")
    label = _unescape(label)
    if target.startswith("@"):
        return "@" + (label.lstrip("@") or target[1:])
    if target.startswith("#"):
        return "#" + (label or target[1:])
    if target.startswith("!"):
        command = target[1:]
        if command.startswith("subteam^"):
            return "@" + (label.lstrip("@") or command.split("^", 1)[1])
        if command.startswith("date^"):
            return label or _date(command.split("^")[1])
        return label or "@" + command  # here, channel, everyone
    url = _unescape(target)
    if url.startswith("mailto:") and label:
        return label
    return f"{label} ({url})" if label and label != url else url


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _date(timestamp) -> str:
    try:
        return datetime.fromtimestamp(int(timestamp), timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    except (TypeError, ValueError, OverflowError, OSError):
        return str(timestamp)


def _text_object(obj) -> str:
    """A Block Kit text object: mrkdwn is markup, plain_text is shown as written."""
    if not isinstance(obj, dict):
        return ""
    text = obj.get("text")
    if not isinstance(text, str):
        return ""
    return _mrkdwn(text) if obj.get("type") == "mrkdwn" else text


def _dicts(value) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


# ------------------------------------------------------------------ blocks


def _blocks_text(blocks) -> str:
    return "\n".join(t for t in (_block_text(b) for b in _dicts(blocks)) if t.strip())


def _block_text(block: dict) -> str:
    kind = block.get("type")
    if kind == "rich_text":
        return _rich_containers(block.get("elements"))
    if kind in ("header", "markdown"):
        return _text_object(block.get("text")) if kind == "header" else str(block.get("text") or "")
    if kind == "section":
        lines = [_text_object(block.get("text"))] + [_text_object(f) for f in _dicts(block.get("fields"))]
        return "\n".join(ln for ln in lines if ln)
    if kind == "context":
        return " ".join(t for t in (_text_object(e) for e in _dicts(block.get("elements"))) if t)
    if kind in ("image", "video"):
        return _text_object(block.get("title"))
    return ""  # dividers, actions (buttons), inputs: not content a person wrote


def _rich_containers(containers) -> str:
    lines = []
    for container in _dicts(containers):
        kind = container.get("type")
        if kind == "rich_text_list":
            lines.append(_rich_list(container))
        elif kind == "rich_text_quote":
            text = _rich_elements(container.get("elements"))
            lines.append("\n".join("> " + line for line in text.split("\n")))
        else:  # rich_text_section, rich_text_preformatted: their text as written
            lines.append(_rich_elements(container.get("elements")))
    return "\n".join(line.strip("\n") for line in lines if line.strip())


def _rich_list(container: dict) -> str:
    indent = "  " * _int(container.get("indent"))
    ordered = container.get("style") == "ordered"
    start = _int(container.get("offset")) + 1
    items = []
    for number, item in enumerate(_dicts(container.get("elements")), start):
        mark = f"{number}." if ordered else _BULLET
        items.append(f"{indent}{mark} {_rich_elements(item.get('elements')).strip()}")
    return "\n".join(items)


def _int(value) -> int:
    return value if isinstance(value, int) and 0 <= value < 20 else 0


def _rich_elements(elements) -> str:
    """Elements carry their own spaces (Slack sends ``{"type": "text", "text": " "}``): joined as is."""
    return "".join(_rich_element(e) for e in _dicts(elements))


def _rich_element(element: dict) -> str:
    kind = element.get("type")
    if kind == "text":
        # Unescaped as ``text`` is: whichever way a client sends it, "&amp;" is never what was typed.
        return _unescape(str(element.get("text") or ""))
    if kind == "link":
        url, label = str(element.get("url") or ""), str(element.get("text") or "")
        return f"{label} ({url})" if label and label != url else url
    if kind == "user":
        return "@" + str(element.get("user_id") or "")
    if kind == "usergroup":
        return "@" + str(element.get("usergroup_id") or "")
    if kind == "channel":
        return "#" + str(element.get("channel_id") or "")
    if kind == "broadcast":
        return "@" + str(element.get("range") or "")
    if kind == "emoji":
        return f":{element.get('name') or ''}:"
    if kind == "date":
        return str(element.get("fallback") or _date(element.get("timestamp")))
    if kind == "color":
        return str(element.get("value") or "")
    if kind == "team":
        return "@" + str(element.get("team_id") or "")
    return ""


# ------------------------------------------------------------------ attachments


def _attachment_text(attachment: dict) -> str:
    """In the order the client shows them (NOTES.md, section 1: pretext above, then author, title,
    text, fields, footer); ``fallback`` only when nothing else shows."""
    fields = [
        f"{_plain(f.get('title'))}: {_mrkdwn(f.get('value'))}".strip(": ")
        for f in _dicts(attachment.get("fields"))
    ]
    lines = [
        _mrkdwn(attachment.get("pretext")),
        _mrkdwn(attachment.get("author_name")),
        _mrkdwn(attachment.get("title")),
        _mrkdwn(attachment.get("text")),
        *fields,
        _blocks_text(attachment.get("blocks")),
        _mrkdwn(attachment.get("footer")),
    ]
    shown = "\n".join(ln for ln in lines if ln.strip())
    return shown or _mrkdwn(attachment.get("fallback"))


def _plain(value) -> str:
    return value if isinstance(value, str) else ""
