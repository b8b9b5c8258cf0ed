"""What every request meets before a route: a bound on the body, read as a stream; Slack's
signature check over raw bytes; and an access log without secrets.

A hostile client gets a clear 4xx, never a 500, and never makes the process hold more than a
route's limit of its body in memory.
"""

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable
from urllib.parse import quote, unquote_plus

import anyio
from starlette.responses import PlainTextResponse

log = logging.getLogger(__name__)

SIGNATURE_WINDOW = 300  # seconds; Slack: "more than five minutes from local time … could be a replay attack"


class BodyLimit:
    """ASGI middleware: reads at most ``limit(path)`` bytes of a request body, then hands the
    routes the body it read. A ``Content-Length`` over the limit is answered 413 before a byte is
    read; a stream that goes over it is answered 413 as soon as it does (the rest is never read:
    the server closes the connection). A ``Content-Length`` that is not a number is answered 400.
    At most ``limit`` bytes per request are held, whatever the client sends. A body not all
    received within ``seconds`` of the request's start is answered 408 and the connection closed
    (``bot.runtime.http_limits`` closes a connection whose body was not all read): a client that
    sends a byte now and then cannot hold the request's memory as long as it likes."""

    def __init__(self, app, limit: Callable[[str], int], seconds: float | None = None):
        self.app = app
        self.limit = limit
        self.seconds = seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit(scope.get("path", ""))
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            if not (length.isascii() and length.strip().isdigit()):
                return await PlainTextResponse("bad content-length", status_code=400)(scope, receive, send)
            if int(length) > limit:
                return await PlainTextResponse("payload too large", status_code=413)(scope, receive, send)
        chunks, size = [], 0
        try:
            with anyio.fail_after(self.seconds):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        return await PlainTextResponse("payload too large", status_code=413)(scope, receive, send)
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            chunks.clear()
            return await PlainTextResponse(f"request body too slow: send it whole within {self.seconds:g} s", status_code=408,
                                           headers={"connection": "close"})(scope, receive, send)
        body, given = b"".join(chunks), False

        async def replay():
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # only a disconnect can follow

        return await self.app(scope, replay, send)


def signed_by_slack(secret: bytes, body: bytes, headers) -> bool:
    """Slack's v0 check over raw bytes, constant-time, 5-minute window (slack_sdk's verifier
    decodes the body as UTF-8 first and raises on a malformed timestamp). Headers arrive as
    latin-1 ``str``: a non-ASCII timestamp (``'²'.isdigit()`` is true) or signature is simply not
    Slack's. Source: api.slack.com/authentication/verifying-requests-from-slack."""
    ts, signature = headers.get("x-slack-request-timestamp", ""), headers.get("x-slack-signature", "")
    if not secret or not (ts.isascii() and ts.isdigit()) or len(ts) > 12 or abs(time.time() - int(ts)) > SIGNATURE_WINDOW:
        return False
    expected = "v0=" + hmac.new(secret, b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode("latin-1", "replace"))


SECRET_PARAMETERS = frozenset({"token", "code", "state"})  # the dashboard token, OAuth codes and states


def redact_query(text: str) -> str:
    """``text`` (a logged path such as ``/dashboard?days=7&%74oken=abc``) with the value of every
    query parameter whose *decoded* name is a secret's replaced by ``[redacted]``, written under its
    decoded name (``token=[redacted]``). Names are compared the way a server reads them, after
    percent-decoding (``urllib.parse.unquote_plus``, repeated while it changes, so an encoding of an
    encoding is caught too), without surrounding spaces, in any case: a literal ``token=`` match
    missed ``%74oken=``, which Starlette decodes to ``token`` and signs in with. Both ``&`` and ``;``
    separate parameters. Text without ``?`` is returned as it is."""
    path, mark, query = text.partition("?")
    if not mark:
        return text
    parts = re.split(r"([&;])", query)  # separators kept, so the rest of the line is unchanged
    for i in range(0, len(parts), 2):
        name, eq, _value = parts[i].partition("=")
        decoded = _decoded(name)
        if eq and decoded.strip().lower() in SECRET_PARAMETERS:
            parts[i] = f"{quote(decoded.strip(), safe='')}=[redacted]"
    return path + mark + "".join(parts)


def _decoded(name: str) -> str:
    for _ in range(5):
        once = unquote_plus(name)
        if once == name:
            break
        name = once
    return name


class RedactQuery(logging.Filter):
    """Takes the values of ``token``, ``code`` and ``state`` query parameters (``redact_query``)
    out of uvicorn's access log lines (the dashboard token, OAuth codes and states)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_query(a) if isinstance(a, str) else a for a in record.args)
        return True


def redact_access_log() -> None:
    """Install ``RedactQuery`` on uvicorn's access logger (once)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactQuery) for f in access.filters):
        access.addFilter(RedactQuery())
