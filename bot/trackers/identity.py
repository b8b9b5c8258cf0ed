"""Identity at link time: when a host links a report to an issue of a tracker whose API token is
set, the issue's stable ids (GitHub issue id and repository id, GitLab issue id and project id,
Jira issue id, Linear issue UUID and team id) are asked of the tracker's API after the ack, and
stored on the link, so the first delivery already matches by identity (a transfer, rename or move
made before it is followed). Without a token, the first delivery or poll that names the issue
fills them in (``bot.closing.service``).

The requests are each tracker module's (``identity_request``/``identity_event``), sent one after
the other with a timeout; a 429 (or GitHub's 403 with ``Retry-After`` / a spent rate limit) is
waited out when the tracker asks for at most ``MAX_WAIT`` seconds, and a timeout, a transport
error or a 5xx is tried again, ``TRIES`` times in all. Whatever still fails is logged and left to
the first delivery. Tokens travel only in headers; nothing here logs a header or a body.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import httpx

from bot.trackers import MODULES, IssueEvent, Tracker
from bot.trackers.base import PollRequest
from bot.trackers.polling import ours
from bot.trackers.rate_limits import rate_limit_wait

log = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(10.0)  # per request (seconds)
TRIES = 3
MAX_WAIT = 60.0  # seconds: a longer Retry-After is not waited for (the first delivery fills the ids)
BACKOFF = 1.0  # seconds before the second try after a timeout or 5xx, doubling
USER_AGENT = "platform-feedback (issue identity)"

# Store a ``moved`` event's ids on the links with its key: closing.apply_issue_event(session=, event=).
Apply = Callable[..., object]


class Identities:
    def __init__(self, *, settings, db, apply: Apply, http: httpx.AsyncClient | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.settings, self.db, self.apply, self.http, self.sleep = settings, db, apply, http, sleep
        self._tasks: set[asyncio.Task] = set()

    def configured(self, tracker: Tracker) -> bool:
        return MODULES[tracker].poll_configured(self.settings)

    def soon(self, tracker: Tracker, key: str, url: str) -> None:
        """Learn the issue's identity in the background (call after the ack). Only for a link on
        the tracker instance the token is for (``url``'s host): another host is never sent it."""
        if not self.configured(tracker) or not ours(self.settings, tracker, [url]):
            return
        task = asyncio.get_running_loop().create_task(self.learn(tracker, key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def learn(self, tracker: Tracker, key: str) -> IssueEvent | None:
        """Ask, then store what the tracker said; the event stored, or None."""
        try:
            event = await self.fetch(tracker, key)
            if event is not None:
                await self.db.work(self.apply, event=event)
            return event
        except Exception:  # noqa: BLE001 - a background task: the first delivery fills the ids instead
            log.exception("%s %s: identity not stored", tracker, key)
            return None

    async def fetch(self, tracker: Tracker, key: str) -> IssueEvent | None:
        module = MODULES[tracker]
        if self.http is not None:
            return await self._fetch(self.http, module, tracker, key)
        async with httpx.AsyncClient(timeout=TIMEOUT, headers={"User-Agent": USER_AGENT}) as http:
            return await self._fetch(http, module, tracker, key)

    async def _fetch(self, http: httpx.AsyncClient, module, tracker: Tracker, key: str) -> IssueEvent | None:
        answers: list[dict] = []
        while (request := module.identity_request(self.settings, key, answers)) is not None:
            response = await self._send(http, tracker, key, request)
            if response is None:
                return None
            try:
                data = response.json()
            except ValueError:
                log.warning("%s %s: unreadable identity answer", tracker, key)
                return None
            if not isinstance(data, dict):
                return None
            answers.append(data)
        event = module.identity_event(key, answers, self.settings)
        if event is None:
            log.info("%s %s: the API does not show this issue to the token; its identity waits for a delivery", tracker, key)
        return event

    async def _send(self, http: httpx.AsyncClient, tracker: Tracker, key: str, request: PollRequest) -> httpx.Response | None:
        """The 200 answer, or None (logged) once it cannot be had within TRIES."""
        backoff = BACKOFF
        for attempt in range(1, TRIES + 1):
            last = attempt == TRIES
            try:
                response = await http.request(request.method, request.url, headers=request.headers, json=request.json,
                                              timeout=TIMEOUT, follow_redirects=True)
            except httpx.HTTPError as exc:
                log.warning("%s %s: identity request failed (%s)%s", tracker, key, type(exc).__name__, "" if last else "; trying again")
                if not last:
                    await self.sleep(backoff)
                    backoff *= 2
                continue
            wait = rate_limit_wait(response, time.time())
            if wait is not None:
                wait = wait or BACKOFF  # limited without saying how long
                if wait > MAX_WAIT or last:
                    log.warning("%s %s: rate limited (%.0f s); its identity waits for a delivery", tracker, key, wait)
                    return None
                await self.sleep(wait)
                continue
            if response.status_code >= 500 and not last:
                await self.sleep(backoff)
                backoff *= 2
                continue
            if response.status_code != 200:
                log.info("%s %s: identity request answered HTTP %d", tracker, key, response.status_code)
                return None
            return response
        return None
