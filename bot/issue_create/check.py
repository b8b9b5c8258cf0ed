"""``platform-feedback check``'s lines for the policy's ``issues.projects``: for each project, the
tracker API's own answer on whether the token can create issues there (GitHub Get a repository:
issues on and access; GitLab Get a single project: issues on and a member's access level; Jira
Get my permissions: CREATE_ISSUES; Linear: the team is visible), one line each. A tracker whose
token is not set is one ✗ line per project saying which setting to set."""

import httpx

from bot.issue_create.service import NAMES, TIMEOUT, TOKENS, USER_AGENT, configured
from bot.trackers import MODULES, Tracker


async def project_lines(settings, policy, http: httpx.AsyncClient | None = None) -> list[tuple[str, str]]:
    """(level, text) per project: level \"ok\" or \"block\" (``bot.runtime.check.Line``'s)."""
    projects = policy.issues.projects
    if not projects:
        return []
    own = http is None
    http = http or httpx.AsyncClient(headers={"User-Agent": USER_AGENT}, timeout=TIMEOUT)
    lines = []
    try:
        for p in projects:
            what = f"issues.projects {NAMES[p.tracker]} {p.project}"
            if not configured(settings, p.tracker):
                lines.append(("block", f"{what}: set {TOKENS[p.tracker]} to create issues there"))
                continue
            module = MODULES[Tracker(p.tracker)]
            request = module.access_request(settings, p.project)
            try:
                response = await http.request(request.method, request.url, headers=request.headers, json=request.json)
                answer = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                lines.append(("block", f"{what}: no answer from {NAMES[p.tracker]} ({type(exc).__name__}): check its URL setting"))
                continue
            ok, said = module.can_create(response.status_code, answer)
            lines.append(("ok" if ok else "block", f"{what}: {said}"))
    finally:
        if own:
            await http.aclose()
    return lines
