"""Text as people wrote it, and as Slack needs it.

We store what the person wrote (``&`` not ``&amp;``), so the CLI, CSV and dashboard show it as is.
Slack sends message and command text escaped; ``from_slack`` undoes that. ``to_mrkdwn`` escapes
for display but keeps Slack's own tokens (mentions, channel links, URLs) working.
"""

import re

# <@U123>, <@U123|name>, <#C123|name>, <!here>, <!subteam^S123>, <https://x|label>, <mailto:...>
_SLACK_TOKEN = re.compile(r"<(?:[@#!][^<>\s]+|(?:https?|mailto):[^<>\s]+)>")


def from_slack(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(text: str) -> str:
    out, last = [], 0
    for m in _SLACK_TOKEN.finditer(text):
        out.append(_escape(text[last : m.start()]))
        out.append(m.group(0))
        last = m.end()
    out.append(_escape(text[last:]))
    return "".join(out)


def shorten(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a word where possible, never inside a token."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rfind(" ")]
    if cut.rfind("<") > cut.rfind(">"):  # do not leave half a <@U123> behind
        cut = cut[: cut.rfind("<")]
    return cut.rstrip() + "…"
