"""The closing-reference parsers as they were before issue #26 item 4: backtracking regular
expressions, kept only as the reference the linear parsers are checked against on ordinary
bodies (tests/trackers/test_linear_parsers.py). Never used by the bot."""

import re
from urllib.parse import urlsplit

from bot.trackers import github, gitlab

GITHUB_CLOSING = re.compile(
    r"(?<![\w/#-])(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\s*:?\s+"
    r"(?:(?P<repo>[\w.-]+/[\w.-]+)?#(?P<n>\d+)|(?P<url>https?://[^\s)<>\]]+/(?:issues|pull)/\d+))(?![\w])",
    re.IGNORECASE,
)
GITHUB_NOT_TEXT = re.compile(
    r"<!--.*?(?:-->|\Z)"
    r"|^[ ]{0,3}(?P<fence>`{3,}|~{3,}).*?(?:^[ ]{0,3}(?P=fence)[`~]*[ \t]*$|\Z)"
    r"|(?P<ticks>`+).+?(?<!`)(?P=ticks)(?!`)",
    re.DOTALL | re.MULTILINE,
)
_REF = r"(?:[\w.-]+(?:/[\w.-]+)*)?#\d+|https?://[^\s,]+/-/(?:issues|work_items)/\d+"
GITLAB_CLOSING = re.compile(
    r"\b(?:[Cc]los(?:e[sd]?|ing)|\b[Ff]ix(?:e[sd]|ing)?|\b[Rr]esolv(?:e[sd]?|ing)|\b[Ii]mplement(?:s|ed|ing)?)(?::?) +"
    r"(?:(?:issues? +)?(?:" + _REF + r")(?:(?: *,?\s+and +| *,? *)?)|[A-Z][A-Z0-9_]+-\d+)+"
)
GITLAB_ONE_REF = re.compile(r"(?P<url>https?://[^\s,]+/-/(?:issues|work_items)/\d+)|(?P<project>[\w.-]+(?:/[\w.-]+)*)?#(?P<n>\d+)")


def github_closing_references(body: str, repo: str, host: str = "github.com") -> list[str]:
    keys = []
    for m in GITHUB_CLOSING.finditer(GITHUB_NOT_TEXT.sub(" ", body[:65536])):
        if m["url"]:
            parts = urlsplit(m["url"])
            ref = github.parse_url(parts.netloc.lower(), parts.path, m["url"]) if parts.netloc.lower() == host else None
            if ref:
                keys.append(ref.key)
        else:
            keys.append(github.normalise(f"{m['repo'] or repo}#{m['n']}"))
    return list(dict.fromkeys(keys))


def gitlab_closing_references(text_: str, project: str, host: str | None = None) -> list[str]:
    keys = []
    namespace = project.rpartition("/")[0]
    for match in GITLAB_CLOSING.finditer(text_[:65536]):
        for ref in GITLAB_ONE_REF.finditer(match.group(0)):
            if ref["url"]:
                parts = urlsplit(ref["url"])
                netloc = parts.netloc.lower()
                found = gitlab.parse_url(netloc, parts.path, ref["url"]) if host is None or netloc == host else None
                if found and "#" in found.key:
                    keys.append(found.key)
            elif ref["project"] and "/" not in ref["project"]:
                keys.append(gitlab.normalise(f"{namespace}/{ref['project']}#{ref['n']}"))
            else:
                keys.append(gitlab.normalise(f"{ref['project'] or project}#{ref['n']}"))
    return list(dict.fromkeys(keys))
