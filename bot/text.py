"""Text as people wrote it, and as Slack needs it.

We store what the person wrote (``&`` not ``&amp;``), so the CLI, CSV and dashboard show it as is.
Slack sends message and command text escaped; ``from_slack`` undoes that.

Everything a person or a tracker wrote is shown as text (``to_mrkdwn`` / ``mrkdwn``): Slack's
control sequences in it (``<!channel>``, ``<!subteam^S1>``, ``<@U1>``, ``<#C1>``, ``<url|label>``)
are turned into what they read as (``@channel``, ``@U1``, ``#name``, ``label (url)``) and then
escaped, so none of them is live; a link is shown with its real address; ``@channel``, ``@here``
and ``@everyone`` get a word joiner after the ``@`` so no client or option ever turns them into a
ping. Sources: Slack's "Formatting text for app surfaces" (escape ``&``, ``<``, ``>``; ``<!here>``
etc. are the special mentions; plain ``@channel`` is only linked with ``link_names``, which this bot
never sets) — see SLACK_FACTS.md §7.

Limits are checked on what is sent: ``mrkdwn(text, limit)`` and ``fit`` shorten the escaped text,
never cutting inside an entity (``&amp;``) or one of our own ``<…>`` tokens.
"""

import re

# <@U123>, <@U123|name>, <#C123|name>, <!here>, <!subteam^S123|@team>, <https://x|label>, <mailto:..>
# Anything else in angle brackets (XML, <tag>) is left as written and escaped.
_SLACK_TOKEN = re.compile(r"<([@#!]|(?=(?:https?|mailto):))([^<>|\s]+)(?:\|([^<>]*))?>", re.IGNORECASE)
# A special mention written out; case-insensitive like Slack's own matching.
_SPECIAL = re.compile(r"@(?=(?:channel|here|everyone|group)\b)", re.IGNORECASE)
WORD_JOINER = "\u2060"  # zero-width, unbreakable: "@\u2060channel" reads as @channel and is never one
SECTION_MAX = 3000  # "Maximum length for the text in this field is 3000 characters" (section text, Block Kit)


def from_slack(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def escape(text: str) -> str:
    """``&``, ``<`` and ``>`` as Slack's entities (the only three Slack asks to escape)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _readable(m: re.Match) -> str:
    sigil, target, label = m.group(1), m.group(2), m.group(3)
    if sigil == "!":  # <!here>, <!subteam^S1|@team>, <!date^…|fallback>
        return label if label else "@" + target.split("^")[-1]
    if sigil in ("@", "#"):
        return (label if label and label.startswith(sigil) else sigil + (label or target))
    if label and label.strip() and label.strip() != target:
        return f"{label} ({target})"  # a link shows where it goes, whatever its label says
    return target


def to_mrkdwn(text: str) -> str:
    """Person- or tracker-written ``text`` as inert mrkdwn: no mention, ping or disguised link."""
    readable = _SLACK_TOKEN.sub(_readable, text)
    return _SPECIAL.sub("@" + WORD_JOINER, escape(readable))


def mrkdwn(text: str, limit: int) -> str:
    """``to_mrkdwn(text)`` on one line, at most ``limit`` characters as sent (escaped)."""
    return shorten(to_mrkdwn(text), limit)


def link(url: str, label: str) -> str:
    """Our own link to ``url`` (an address we stored: a permalink, a tracker issue), its label inert."""
    safe = escape(url).replace("|", "%7C")
    return f"<{safe}|{to_mrkdwn(label)}>"


def _cut(text: str, limit: int) -> str:
    """``text[:limit]`` moved back so it ends neither inside an entity nor inside a ``<…>`` token."""
    cut = text[:limit]
    if cut.rfind("&") > cut.rfind(";"):
        cut = cut[: cut.rfind("&")]
    if cut.rfind("<") > cut.rfind(">"):
        cut = cut[: cut.rfind("<")]
    return cut


def shorten(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters, cut at a word where possible, never inside a
    ``<…>`` token or an ``&…;`` entity (so it is safe on escaped text)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rfind(" ")]
    return _cut(cut, limit - 1).rstrip() + "…"


def fit(text: str, limit: int = SECTION_MAX) -> str:
    """Composed mrkdwn (lines kept) at most ``limit`` characters: the last guard before sending."""
    if len(text) <= limit:
        return text
    return _cut(text, limit - 1).rstrip() + "…"
