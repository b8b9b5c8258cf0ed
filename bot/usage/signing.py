"""Signing usage events: HMAC-SHA256 over ``v1:{timestamp}:{raw body}``, keyed with
``USAGE_SIGNING_SECRET``, hex, prefixed ``v1=``; sent as ``X-Usage-Timestamp`` (Unix seconds) and
``X-Usage-Signature``. The same construction as Slack's request signing ("Verifying requests from
Slack", docs.slack.dev/authentication/verifying-requests-from-slack: ``v0:{ts}:{body}``, a
five-minute window) with its own version tag, so a Slack signature can never pass for ours.

A shell can sign with openssl (what bot/examples/platform-feedback.example.yml shows):

    ts=$(date +%s); sig=$(printf 'v1:%s:%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$USAGE_SIGNING_SECRET" -r | cut -d' ' -f1)
"""

import hashlib
import hmac
import time

WINDOW = 300  # seconds either side of now a timestamp may be (Slack's five minutes)
TIMESTAMP_HEADER = "x-usage-timestamp"
SIGNATURE_HEADER = "x-usage-signature"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``v1=`` and the hex HMAC-SHA256 of ``v1:{timestamp}:{body}`` under ``secret``."""
    return "v1=" + hmac.new(secret.encode("utf-8"), b"v1:" + timestamp.encode("ascii") + b":" + body, hashlib.sha256).hexdigest()


def headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The two headers that sign ``body`` now (for the CLI, the bench and tests)."""
    ts = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: signature(secret, ts, body), "content-type": "application/json"}


def verify(secret: str, body: bytes, request_headers, now: float | None = None) -> str | None:
    """None when the headers sign ``body`` with ``secret`` within ``WINDOW``, else what is wrong (one
    line for the 401). Compared in constant time; headers arrive as latin-1 text, so a non-ASCII
    timestamp is refused before ``int()`` (``'²'.isdigit()`` is true)."""
    ts = request_headers.get(TIMESTAMP_HEADER, "")
    given = request_headers.get(SIGNATURE_HEADER, "")
    if not ts or not given:
        return f"unsigned: send {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} (see docs/usage.md)"
    if not (ts.isascii() and ts.isdigit()) or len(ts) > 12:
        return f"{TIMESTAMP_HEADER} must be Unix seconds"
    now = time.time() if now is None else now
    if abs(now - int(ts)) > WINDOW:
        return f"{TIMESTAMP_HEADER} is more than {WINDOW} s from the bot's clock: sign each request when it is sent"
    expected = signature(secret, ts, body)
    if not hmac.compare_digest(expected.encode(), given.encode("latin-1", "replace")):
        return "bad signature: sign v1:{timestamp}:{body} with USAGE_SIGNING_SECRET (HMAC-SHA256, hex, prefixed v1=)"
    return None
