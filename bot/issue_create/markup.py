"""The issue's text in the tracker's own markup: GitHub, GitLab and Linear read Markdown, Jira (REST
v2) reads wiki markup. People's words (the report, the host's edited description) go in as text:
a Markdown fenced code block longer than any backtick run in them, or a Jira ``{noformat}`` block
whose closing word they cannot write, so no mention (``@user``, ``[~accountid:…]``), no HTML, no
link and no markup in them is live. The facts around them (area, severity, links to Slack) are
ours and are formatted, with the few values from elsewhere (area labels, permalinks) escaped.

The marker (``pf-`` and 16 hex digits, random per intent) ends the body: an HTML comment in GitHub
and GitLab (not shown), a last small line in Linear and Jira. Reconciling looks for it verbatim.
Sources: CommonMark spec 0.31 §4.5 (a fence closes only with at least as many backticks; its
content is literal), §6.1 (backslash escapes); Atlassian "Text formatting notation help"
({noformat}, {color}); GitHub "Basic writing and formatting syntax" (HTML comments hidden).
"""

import re
from dataclasses import dataclass, field

MARKDOWN_TRACKERS = ("github", "gitlab", "linear")
MAX_BODY = 60_000  # characters; GitHub's issue body limit is 65,536


@dataclass(frozen=True)
class Facts:
    """What the bot knows of a report, for the issue body. ``links``: (label, Slack permalink)."""

    ref: str
    area: list[str] = field(default_factory=list)
    severity: str = ""
    minutes_lost: int | None = None
    people: int = 1
    links: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # refs of merged duplicates


def literal_markdown(text: str) -> str:
    """``text`` as a fenced block: a fence of backticks longer than any run in ``text``."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def inline_markdown(text: str) -> str:
    """A short value of ours (an area label) inline: punctuation backslash-escaped, ``@`` and
    ``#`` given a zero-width joiner so nothing mentions or references."""
    escaped = re.sub(r"([\\`*_{}\[\]()<>#+\-.!|~])", r"\\\1", text.replace("\n", " "))
    return escaped.replace("@", "@\u2060")


def literal_jira(text: str) -> str:
    """``text`` as a ``{noformat}`` block; the word that would close it is broken."""
    return "{noformat}\n" + re.sub(r"\{noformat\}", "{ noformat}", text, flags=re.IGNORECASE) + "\n{noformat}"


def inline_jira(text: str) -> str:
    return re.sub(r"([\\*_{}\[\]()#+\-^~|!?])", r"\\\1", text.replace("\n", " "))


def _url(url: str) -> str | None:
    """A permalink fit to be a link target: http(s), no space, quote or bracket (they would end it)."""
    return url if re.fullmatch(r"https?://[^\s<>()\[\]\"'|{}]+", url or "") else None


def body(tracker: str, description: str, facts: Facts, marker: str) -> str:
    """The issue body: the description as text, the facts, the marker last."""
    jira = tracker == "jira"
    lit, inline = (literal_jira, inline_jira) if jira else (literal_markdown, inline_markdown)
    bold = (lambda s: f"*{s}*") if jira else (lambda s: f"**{s}**")
    lines = [bold(f"Reported in Slack as {facts.ref}") + (f" by {facts.people} people" if facts.people > 1 else ""), "",
             "What got in the way:", lit(description.strip() or "(no description)"), ""]
    rows = []
    if facts.area:
        rows.append(("Area", ", ".join(inline(a) for a in facts.area)))
    if facts.severity:
        rows.append(("Severity", inline(facts.severity)))
    if facts.minutes_lost:
        rows.append(("Time lost", f"{facts.minutes_lost} min per occurrence"))
    rows.append(("People who hit it", str(facts.people)))
    slack = [(label, url) for label, url in ((lb, _url(u)) for lb, u in facts.links) if url]  # labels are our refs
    if slack:
        rows.append(("Slack", ", ".join(f"[{label}|{url}]" if jira else f"[{label}]({url})" for label, url in slack)))
    if facts.duplicates:
        rows.append(("Merged duplicates", ", ".join(facts.duplicates)))  # our refs (FB-12): nothing to escape
    lines += [f"* {bold(name)}: {value}" if jira else f"- {bold(name)}: {value}" for name, value in rows]
    lines.append("")
    if tracker in ("github", "gitlab"):
        lines.append(f"<!-- platform-feedback {marker} -->")
    elif jira:
        lines.append(f"{{color:#97a0af}}Filed from Slack by platform-feedback · {marker}{{color}}")
    else:
        lines.append(f"_Filed from Slack by platform-feedback · {marker}_")
    text = "\n".join(lines)
    if len(text) <= MAX_BODY:
        return text
    # Too long (a report is at most 3,000 characters, so only a flood of links does this): keep the marker.
    return text[: MAX_BODY - 200] + "\n…\n" + lines[-1]


def title(text: str) -> str:
    """A one-line title of at most 255 characters (Jira's summary limit, the smallest)."""
    return " ".join(text.split())[:255]
