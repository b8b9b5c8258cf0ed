"""Trackers: one module per tracker (github, gitlab, jira, linear), each with the interface of
``bot.trackers.base.TrackerModule``. Adding a tracker is adding a module and a line in MODULES.

Issue keys are normalised per tracker (GitHub/GitLab paths lower case, Jira/Linear keys upper
case) so a link and a delivery that spell a key differently still meet.
"""

from urllib.parse import urlsplit

from bot.trackers import github, gitlab, jira, linear
from bot.trackers.base import IssueEvent, IssueRef, Malformed, Outcome, Tracker, TrackerModule

MODULES: dict[Tracker, TrackerModule] = {m.TRACKER: m for m in (github, gitlab, jira, linear)}  # type: ignore[misc]
# Tried in this order: Linear owns its host; GitLab's "/-/" paths before GitHub's; Jira's /browse/.
_URL_ORDER = (linear, gitlab, github, jira)

__all__ = ["MODULES", "IssueEvent", "IssueRef", "Malformed", "Outcome", "Tracker", "normalise", "parse_issue_url"]


def normalise(tracker: Tracker | str, key: str) -> str:
    return MODULES[Tracker(tracker)].normalise(key)


def parse_issue_url(url: str) -> IssueRef | None:
    """The issue a URL points at, or None if it is not a tracker issue we know. Takes Slack's link
    markup as Slack sends what a person pasted: ``<url>`` and ``<url|label>``, with ``&``, ``<``
    and ``>`` escaped as ``&amp;``, ``&lt;`` and ``&gt;`` (in message and command text alike)."""
    url = url.strip()
    if url.startswith("<") and url.endswith(">"):
        url = url[1:-1].split("|", 1)[0].strip()
    url = url.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    if len(url) > 3000:
        return None
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    clean = f"{parts.scheme}://{parts.netloc}{parts.path}"
    if host == "linear.app":
        return linear.parse_url(host, parts.path, clean)
    for module in _URL_ORDER[1:]:
        if ref := module.parse_url(host, parts.path, clean):
            return ref
    return jira.parse_selected(parts.path, parts.query, f"{parts.scheme}://{parts.netloc}")
