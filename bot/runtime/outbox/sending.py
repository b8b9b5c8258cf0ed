"""Sending: the Web API call for one outbox message, and what its failure means.

What a failure does to a message, by whose fault it is:

- **Slack asks us to wait** (HTTP 429): the method is paused for ``Retry-After`` and the message
  goes back without the attempt counting.
- **Slack, or the way to it, is failing** (HTTP 5xx or 408, a refused or broken connection, a
  timeout, or one of Slack's own TRANSIENT error codes such as ``internal_error``): an outage, not
  the message's fault, so it never fails a message for good, however long it lasts. The method is
  paused, for ``backoff(n)`` after the n-th failure in a row (1-2 s, doubling, at most 5 minutes),
  for every sender sharing the outbox (``not_before``); while it is, one request at a time finds
  out whether Slack is back, and what the batch had not started goes back unattempted. The first
  success ends it. The message that failed comes back after the pause or its own backoff
  (``backoff(attempts)``), whichever is longer, so one message Slack keeps failing is tried every
  few minutes without holding the others back; ``pf_outbox_oldest_age_seconds`` shows it.
- **The message's own fault**: an error code in PERMANENT fails it at once; any other (an unknown
  error code, an exception while rendering it or from slack_sdk) is retried with backoff and fails
  it once it has been attempted MAX_ATTEMPTS times (outage attempts included).

A timeout or a connection broken after the request went out is ambiguous: Slack may have acted on
it (it answered after our client gave up; ``Failure.maybe_sent``). A post to a channel the bot can
read (``channels:history``, ``groups:history``) is looked up first (``find_post``) and, when
found, counted as sent; anything else (a DM: the bot has no ``im:history``) is retried like any
outage, so it may be delivered twice: at-least-once, for the calls in flight when it happened.
"""

import asyncio
import base64
import re
from dataclasses import dataclass

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from bot.runtime.outbox.pacing import RATELIMITED_PAUSE, UPLOAD
from bot.runtime.workspaces import NotInstalled

MAX_ATTEMPTS = 8  # for errors that are the message's own; an outage never fails a message
# Slack's words for "not you, us" (every method's common errors): an outage, retried however long it
# lasts. "ratelimited" with a 429 is handled by Retry-After; "rate_limited" is chat.postMessage's
# "posted too many messages"; "team_added_to_org": a workspace "intermittently unavailable" while it
# moves into an Enterprise Grid org.
TRANSIENT = {
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "ratelimited",
    "rate_limited",
    "team_added_to_org",
}
# Errors that will not get better by retrying: record them and move on.
PERMANENT = {
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "user_not_found",
    "user_disabled",
    "account_inactive",
    "cannot_dm_bot",
    "invalid_blocks",
    "invalid_arguments",
    "msg_too_long",
    "no_text",
    "invalid_auth",
    "not_authed",
    "missing_scope",
    "thread_not_found",
    "message_not_found",
}


@dataclass(frozen=True)
class Failure:
    """Why a call did not succeed. ``kind``: "ratelimited" (429; ``retry_after`` seconds),
    "outage" (Slack or the way to it failing), "permanent" (this message will never go: an error
    in PERMANENT, or no installation), "broken" (anything else: this message, retried with backoff
    up to MAX_ATTEMPTS). ``error`` is what the outbox records (Slack's error code or a short
    description); ``metric`` the label /metrics counts it under (None: not an answer from Slack)."""

    kind: str
    error: str
    metric: str | None
    retry_after: float = 0.0
    exc: BaseException | None = None
    maybe_sent: bool = False  # Slack may have acted on the request (a timeout or a cut connection)


async def call(client: AsyncWebClient, method: str, payload: dict):
    """Make the Web API call (or slack_sdk's three-step file upload for UPLOAD). Returns slack_sdk's
    response; raises what slack_sdk raises (``classify`` reads it)."""
    if method == UPLOAD:
        args = dict(payload)
        content = base64.b64decode(args.pop("content_b64"))
        return await client.files_upload_v2(content=content, **args)
    return await client.api_call(method, json=payload)


READABLE = ("C", "G")  # channel ids whose history the bot's scopes let it read: public and private channels


async def find_post(client: AsyncWebClient, payload: dict, since: float) -> dict | None:
    """The message ``payload`` (a chat.postMessage) posted, if Slack has it: a bot message in its
    channel, not in a thread unless the payload's, since ``since`` (Unix seconds), with the same
    text. Returns a chat.postMessage-like answer ({"ok", "channel", "ts", "message"}), or None:
    not found, not a readable channel (READABLE), or the lookup failed (then the caller resends).
    conversations.history: newest first, ``oldest`` exclusive (docs.slack.dev/reference/methods/
    conversations.history); conversations.replies for a thread."""
    channel, text, thread = payload.get("channel"), payload.get("text"), payload.get("thread_ts")
    if not isinstance(channel, str) or not channel.startswith(READABLE) or not text:
        return None
    try:
        if thread:
            answer = await client.conversations_replies(channel=channel, ts=thread, oldest=f"{since:.6f}", limit=200)
        else:
            answer = await client.conversations_history(channel=channel, oldest=f"{since:.6f}", limit=200)
    except Exception:  # noqa: BLE001 - no answer is "not known to be there": resend
        return None
    for message in answer.get("messages") or []:
        if message.get("bot_id") and message.get("text") == text and float(message.get("ts", 0)) >= since:
            return {"ok": True, "channel": channel, "ts": message["ts"], "message": message}
    return None


def classify(exc: BaseException) -> Failure:
    """What a call's exception means for its message (see the module's docstring)."""
    if isinstance(exc, NotInstalled):  # uninstalled, or never installed
        return Failure("permanent", "not_installed", "not_installed", exc=exc)
    if isinstance(exc, SlackApiError):
        status, error = status_and_error(exc)
        if status == 429:
            return Failure("ratelimited", error, error, retry_after=retry_after(exc.response.headers), exc=exc)
        if transient(status, error):
            return Failure("outage", error, error, exc=exc)
        return Failure("permanent" if error in PERMANENT else "broken", error, error, exc=exc)
    if isinstance(exc, (OSError, asyncio.TimeoutError, aiohttp.ClientError)):  # connection trouble: an outage
        # Refused before anything was sent: certainly not delivered. A timeout or a connection cut
        # after the request went out: Slack may have posted it and answered too late.
        sent = not isinstance(exc, (ConnectionRefusedError, aiohttp.ClientConnectorError))
        return Failure("outage", type(exc).__name__, type(exc).__name__, exc=exc, maybe_sent=sent)
    status = _upload_status(exc)
    if status is not None and transient(status, ""):  # files_upload_v2's upload step got a 5xx
        return Failure("outage", f"upload: http_{status}", f"http_{status}", exc=exc)
    return Failure("broken", f"{type(exc).__name__}: {exc}", None, exc=exc)


def status_and_error(exc: SlackApiError) -> tuple[int | None, str]:
    """The HTTP status and Slack's error code of a failed call. slack_sdk's response holds a dict
    for JSON, a str for a text/plain body (a proxy's "upstream connect error"), {} for HTML; for a
    body that says JSON and is not, it is aiohttp's own response (``status``, no ``data``)."""
    response = exc.response
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    data = getattr(response, "data", None)
    error = data.get("error") if isinstance(data, dict) else None
    return status, str(error or (f"http_{status}" if status and status != 200 else "unreadable_response"))


def transient(status: int | None, error: str) -> bool:
    """Slack, or the way to it, failing rather than the message: an outage."""
    return error in TRANSIENT or (status is not None and (status >= 500 or status == 408))


_UPLOAD_FAILED = re.compile(r"^Failed to upload a file \(status: (\d{3}),")  # slack_sdk's files_upload_v2


def _upload_status(exc: BaseException) -> int | None:
    """The HTTP status when files_upload_v2's upload step (not a Web API call) got an error answer."""
    match = _UPLOAD_FAILED.match(str(exc)) if isinstance(exc, SlackRequestError) else None
    return int(match.group(1)) if match else None


def retry_after(headers) -> float:
    """Seconds from a 429's Retry-After header (RATELIMITED_PAUSE when absent or unreadable)."""
    value = headers.get("Retry-After", headers.get("retry-after"))
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return RATELIMITED_PAUSE
