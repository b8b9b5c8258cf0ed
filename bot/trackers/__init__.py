"""Trackers: one module per tracker (github, gitlab, jira, linear), each with the interface of
``bot.trackers.base.TrackerModule``. Adding a tracker is adding a module and a line in MODULES.

Issue keys are normalised per tracker (GitHub/GitLab paths lower case, Jira/Linear keys upper
case) so a link and a delivery that spell a key differently still meet.

Which tracker a pasted URL is on is decided by its host first (``configure_hosts``): github.com
and the host of ``GITHUB_API_URL`` (GitHub Enterprise: https://HOST/api/v3) are GitHub;
gitlab.com and the host of ``GITLAB_API_URL`` (self-managed: https://HOST[/root]/api/v4) are
GitLab, whose older URL forms without ``/-/`` (``/group/project/issues/1``, the form GitHub also
uses) are then GitLab's, and whose relative URL root (``/root``) is not part of the path; the host
of ``JIRA_BASE_URL`` and ``*.atlassian.net`` are Jira; linear.app is Linear. A URL on another host
(or on one several settings name) is read by its path alone, as before: GitLab's ``/-/`` and
``merge_requests`` forms, then GitHub's, then Jira's.
"""

from dataclasses import dataclass
from urllib.parse import urlsplit

from bot.trackers import github, gitlab, jira, linear
from bot.trackers.base import Events, IssueEvent, IssueRef, Malformed, Outcome, Tracker, TrackerModule

MODULES: dict[Tracker, TrackerModule] = {m.TRACKER: m for m in (github, gitlab, jira, linear)}
# Tried in this order: Linear owns its host; GitLab's "/-/" paths before GitHub's; Jira's /browse/.
_URL_ORDER = (linear, gitlab, github, jira)

__all__ = ["MODULES", "IssueEvent", "IssueRef", "Malformed", "Outcome", "Tracker", "configure_hosts", "normalise", "parse_issue_url",
           "read_delivery"]


@dataclass(frozen=True)
class Hosts:
    github: frozenset[str] = frozenset({"github.com", "www.github.com"})
    gitlab: frozenset[str] = frozenset({"gitlab.com", "www.gitlab.com"})
    gitlab_roots: tuple[str, ...] = ()  # relative URL roots of self-managed GitLab ("/gitlab")
    jira: frozenset[str] = frozenset()


_hosts = Hosts()


def configure_hosts(settings) -> Hosts:
    """The tracker hosts this deployment names in its settings (see the module docstring)."""
    global _hosts

    def split(url: str | None) -> tuple[str, str]:
        try:
            parts = urlsplit(url or "")
            return (parts.hostname or "").lower(), parts.path
        except ValueError:
            return "", ""

    github_host, _ = split(getattr(settings, "github_api_url", None))
    gitlab_host, gitlab_path = split(getattr(settings, "gitlab_api_url", None))
    jira_host, _ = split(getattr(settings, "jira_base_url", None))
    root = gitlab_path.rstrip("/").removesuffix("/api/v4").rstrip("/")
    defaults = Hosts()
    _hosts = Hosts(
        github=defaults.github | ({"github.com" if github_host == "api.github.com" else github_host} - {""}),
        gitlab=defaults.gitlab | ({gitlab_host} - {""}),
        gitlab_roots=(root,) if root else (),
        jira=frozenset({jira_host} - {""}),
    )
    return _hosts


def _without_root(path: str) -> str:
    for root in _hosts.gitlab_roots:
        if path.startswith(root + "/"):
            return path[len(root):]
    return path


def read_delivery(tracker: Tracker | str, body: bytes, headers: dict[str, str], policy) -> Events:
    """``MODULES[tracker].read(body, headers, policy)``, by the tracker's name: a module-level
    function of a light module, so a worker process can run it (``bot.closing.webhooks``). Raises
    what the module's ``read`` raises (``Malformed`` and the rest, see there)."""
    return MODULES[Tracker(tracker)].read(body, headers, policy)


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
    owners = [name for name, hosts in (("gitlab", _hosts.gitlab), ("github", _hosts.github), ("jira", _hosts.jira)) if host in hosts]
    if host.endswith(".atlassian.net"):
        owners.append("jira")
    gitlab_path = _without_root(parts.path) if "gitlab" in owners else parts.path
    if owners == ["gitlab"]:
        return gitlab.parse_url(host, gitlab_path, clean) or gitlab.parse_old_url(host, gitlab_path, clean)
    if owners == ["github"]:
        return github.parse_url(host, parts.path, clean)
    if owners == ["jira"]:
        return jira.parse_url(host, parts.path, clean) or jira.parse_selected(parts.path, parts.query, f"{parts.scheme}://{parts.netloc}")
    # A host no setting names, or that several name (one test server for all): read by the path.
    if ref := gitlab.parse_url(host, gitlab_path, clean) or gitlab.parse_old_url(host, gitlab_path, clean, merge_requests_only=True):
        return ref
    for module in _URL_ORDER[2:]:
        if ref := module.parse_url(host, parts.path, clean):
            return ref
    return jira.parse_selected(parts.path, parts.query, f"{parts.scheme}://{parts.netloc}")
