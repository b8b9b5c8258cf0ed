"""Reading from Slack's Web API in listeners and jobs: reads wait out a 429 (within bounds), and the
two reads every intake makes (the reacted message, its permalink).

Writes are not retried here: they go through the outbox sender, which pauses a method for the whole
process on a 429 and keeps the message in the database meanwhile (``bot.runtime.outbox``).
"""

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from storage import friction
from storage.database import Database, DatabaseUnavailable

log = logging.getLogger(__name__)

# A method is a read when its last name part is one of these (conversations.history, users.info,
# usergroups.users.list, chat.getPermalink, users.lookupByEmail, auth.test...).
READ_VERBS = frozenset({"history", "replies", "info", "list", "members", "getPermalink", "lookupByEmail", "test"})
READ_RETRIES = 2
# Longest Retry-After a read waits out, in seconds. Every read the bot makes runs after the ack (an
# event, an action, a job), so nobody's 3-second clock is running; past this the caller gives up
# and does what it can without the answer. Slack's Tier 3 methods ask for about a minute at most.
READ_MAX_WAIT = 10


# When the caller must answer by a time (a view submission is answered within Slack's 3 s), the
# monotonic time by which a read must be done; None: the caller has acked and can wait.
_deadline: ContextVar[float | None] = ContextVar("read_deadline", default=None)


@contextmanager
def read_deadline(seconds: float) -> Iterator[None]:
    """Within this block, a read waits out a 429 only if it can still finish within ``seconds``."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def is_read(url: str) -> bool:
    """``https://slack.com/api/conversations.history?x=1`` -> True."""
    method = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return method.rsplit(".", 1)[-1] in READ_VERBS


class ReadRateLimitRetryHandler(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's own 429 handler (it sleeps ``Retry-After`` plus up to 1 s of jitter), for reads
    only, and only when ``Retry-After`` is at most ``max_wait`` seconds and the wait ends before the
    caller's ``read_deadline``."""

    def __init__(self, max_retry_count: int = READ_RETRIES, max_wait: float = READ_MAX_WAIT):
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    async def _can_retry_async(
        self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None, error: Exception | None = None
    ) -> bool:
        if response is None or response.status_code != 429 or not is_read(request.url):
            return False
        header = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), None)
        if isinstance(header, list):  # sent more than once: the first; none at all: not a wait to honour
            if not header:
                return False
            header = header[0]
        try:
            wait = int(header) if header is not None else 1
        except (TypeError, ValueError):
            return False  # slack_sdk's handler would fail on it; let the 429 reach the caller
        deadline = _deadline.get()
        return wait <= self.max_wait and (deadline is None or time.monotonic() + wait + 1 <= deadline)


def with_read_retries(client: AsyncWebClient) -> AsyncWebClient:
    """Add the read retry handler to ``client`` (once), keeping its others (slack_sdk's default
    connection-error retry). Bolt copies the app client's handlers into each request's client."""
    if not any(isinstance(h, ReadRateLimitRetryHandler) for h in client.retry_handlers):
        client.retry_handlers.append(ReadRateLimitRetryHandler())
    return client


# Slack's answers that say "not now" rather than "never" (https://api.slack.com/methods/conversations.history, Errors).
TRANSIENT_ERRORS = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"})


@dataclass(frozen=True)
class Unread:
    """Why a message could not be read: Slack's error code (``ratelimited``, ``not_in_channel``...)
    or the exception's name. ``transient``: it might have worked later (rate limit, Slack or the
    network down); otherwise the bot has no access (not in the channel, channel gone)."""

    error: str
    transient: bool


async def fetch_message(client: AsyncWebClient, channel: str, ts: str) -> dict | Unread | None:
    """The message ``ts`` in ``channel`` (top level or a reply in a thread), as Slack stores it;
    None when it is not there (deleted); ``Unread`` when Slack would not say, even after waiting
    out its rate limit (``ReadRateLimitRetryHandler`` on the client)."""
    try:
        history = await client.conversations_history(channel=channel, latest=ts, inclusive=True, limit=1)
        for message in history.get("messages") or []:
            if message.get("ts") == ts:
                return message
        # Not top-level: a reply in a thread.
        replies = await client.conversations_replies(channel=channel, ts=ts, latest=ts, inclusive=True, limit=200)
    except SlackApiError as exc:
        status, error = exc.response.status_code, exc.response.get("error")
        return Unread(str(error or f"HTTP {status}"), transient=status == 429 or status >= 500 or error in TRANSIENT_ERRORS)
    except (SlackClientError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        return Unread(type(exc).__name__, transient=True)
    return next((m for m in replies.get("messages") or [] if m.get("ts") == ts), None)


async def remember_permalink(db: Database, client: AsyncWebClient, point_id: int, channel: str, ts: str) -> None:
    """Store the message's permalink on the data point; the report stands without it."""
    try:
        link = await client.chat_getPermalink(channel=channel, message_ts=ts)
        await db.run(friction.set_permalink, point_id=point_id, permalink=link["permalink"])
    except (SlackApiError, DatabaseUnavailable) as exc:
        log.warning("no permalink for data point %s: %s", point_id, exc)
