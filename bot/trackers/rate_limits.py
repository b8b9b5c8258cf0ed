"""Reading a tracker's rate-limit answer: GitHub (403/429 with ``x-ratelimit-*`` or
``Retry-After``), GitLab (``ratelimit-*``), Jira (429 ``Retry-After``), Linear (400 RATELIMITED,
``x-ratelimit-requests-*``, resets in epoch milliseconds)."""

from datetime import datetime
from email.utils import parsedate_to_datetime

import httpx

from storage.models import as_utc


def _seconds_until(value: str | None, now: float) -> float | None:
    """A reset time as trackers give it: epoch seconds or milliseconds, an HTTP date, or ISO 8601."""
    if not value:
        return None
    value = value.strip()
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if number > 1e11:  # epoch milliseconds (Linear)
            return number / 1000 - now
        if number > 1e9:  # epoch seconds (GitHub, GitLab)
            return number - now
        return number  # already a number of seconds
    for parse in (parsedate_to_datetime, datetime.fromisoformat):
        try:
            when = parse(value)
        except (TypeError, ValueError, IndexError):
            continue
        return as_utc(when).timestamp() - now
    return None


def _remaining(headers: httpx.Headers) -> str | None:
    for name in ("x-ratelimit-remaining", "ratelimit-remaining", "x-ratelimit-requests-remaining"):
        if name in headers:
            return headers[name].strip()
    return None


def _reset(headers: httpx.Headers) -> str | None:
    for name in ("x-ratelimit-reset", "ratelimit-reset", "x-ratelimit-requests-reset"):
        if name in headers:
            return headers[name]
    return None


def rate_limit_wait(response: httpx.Response, now: float) -> float | None:
    """None if the answer is not a rate limit; else how long to wait (None inside: not said)."""
    headers = response.headers
    spent = _remaining(headers) == "0"
    limited = response.status_code == 429 or (response.status_code == 403 and (spent or "retry-after" in headers))
    if not limited and response.status_code == 400 and "ratelimited" in response.text.lower():
        limited = True  # Linear: a GraphQL error with extensions.code RATELIMITED
    if not limited:
        return None
    waits = [_seconds_until(headers.get("retry-after"), now)]
    if spent:
        waits.append(_seconds_until(_reset(headers), now))
    due = [w for w in waits if w is not None and w > 0]
    return max(due) if due else 0.0
