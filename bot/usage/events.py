"""A usage event: read and checked from the JSON a platform tool sends, then stored once by the
caller's id. Shapes (``POST /events/usage``, the CLI, docs/usage.md):

    {"id": "ci-4711-deploy", "capability": "deploy", "user": "U123ABC" | "email": "a@example.com",
     "at": "2026-12-07T10:00:00Z" | 1796637600, "outcome": "ok" | "failed",
     "duration_ms": 84000, "subject": "payments-api"}

``id``, ``capability`` and one of ``user``/``email`` are required; ``at`` defaults to the time of
receipt and a time in the future is taken as the time of receipt (a CI runner's clock ahead of
ours must not put uses in next week); ``outcome`` defaults to ``ok``. Anything else is refused with
``BadEvent``: one line saying what to send instead.
"""

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlmodel import Session

from bot.usage.policy import UsagePolicy
from storage import usage as usage_store

MAX_AGE = timedelta(days=400)  # older uses are not worth a week's number (and are most likely a wrong clock)
KEY = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces
USER = re.compile(r"^[UW][A-Z0-9]{2,31}$")  # a Slack member id (https://api.slack.com/types/user)
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}$")
FIELDS = {"id", "capability", "user", "email", "at", "outcome", "duration_ms", "subject"}


class BadEvent(ValueError):
    """``str()``: one line for the sender (the 400's body, the CLI's error)."""


@dataclass(frozen=True)
class UsageIn:
    key: str
    capability: str
    user_id: str | None
    email: str | None
    at: datetime
    outcome: str
    duration_ms: int | None
    subject: str | None

    def row(self) -> dict:
        return {"key": self.key, "capability": self.capability, "user_id": self.user_id, "email": self.email, "at": self.at,
                "outcome": self.outcome, "duration_ms": self.duration_ms, "subject": self.subject}


def parse(body: bytes, policy: UsagePolicy, now: datetime) -> UsageIn:
    """The event in ``body`` (UTF-8 JSON, one object), or BadEvent."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise BadEvent("the body must be one JSON object (UTF-8)") from None
    if not isinstance(data, dict):
        raise BadEvent("the body must be one JSON object, e.g. {\"id\": \"…\", \"capability\": \"deploy\", \"user\": \"U123\"}")
    return from_fields(data, policy, now)


def from_fields(data: dict, policy: UsagePolicy, now: datetime) -> UsageIn:
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise BadEvent(f"unknown field {unknown[0][:40]!r}: send only {', '.join(sorted(FIELDS))}")
    key = data.get("id")
    if not isinstance(key, str) or not KEY.match(key):
        raise BadEvent("id must be a string of 1-128 printable characters without spaces, unique per use (it makes a retry count once)")
    capability = data.get("capability")
    if not isinstance(capability, str) or policy.capability(capability) is None:
        known = ", ".join(policy.names) or "none: add usage.capabilities to the team policy"
        shown = repr(capability[:40]) if isinstance(capability, str) else "missing"
        raise BadEvent(f"capability {shown} is not in the policy's usage.capabilities (known: {known})")
    user, email = data.get("user"), data.get("email")
    if user is not None and (not isinstance(user, str) or not USER.match(user)):
        raise BadEvent("user must be a Slack member id such as U0123ABCD (or send email instead)")
    if email is not None and (not isinstance(email, str) or len(email) > 254 or not EMAIL.match(email)):
        raise BadEvent("email must be an address such as dev@example.com (or send user, a Slack member id)")
    if (user is None) == (email is None):
        raise BadEvent("send exactly one of user (a Slack member id) or email")
    outcome = data.get("outcome", "ok")
    if outcome not in ("ok", "failed"):
        raise BadEvent("outcome must be \"ok\" or \"failed\"")
    duration = data.get("duration_ms")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int) or not 0 <= duration <= 31 * 86_400_000):
        raise BadEvent("duration_ms must be a whole number of milliseconds from 0 to 31 days")
    subject = data.get("subject")
    if subject is not None and (not isinstance(subject, str) or not 1 <= len(subject) <= 100 or not subject.isprintable()):
        raise BadEvent("subject must be 1-100 printable characters (e.g. the service's name)")
    return UsageIn(key=key, capability=capability, user_id=user, email=email.lower() if email else None,
                   at=_instant(data.get("at"), now), outcome=outcome, duration_ms=duration, subject=subject)


def _instant(raw, now: datetime) -> datetime:
    if raw is None:
        return now
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        try:
            at = datetime.fromtimestamp(raw, timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise BadEvent("at must be an ISO 8601 time with a zone (2026-12-07T10:00:00Z) or Unix seconds") from None
    elif isinstance(raw, str):
        try:
            at = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
        except ValueError:
            raise BadEvent("at must be an ISO 8601 time with a zone (2026-12-07T10:00:00Z) or Unix seconds") from None
        if at.tzinfo is None or at.utcoffset() is None:
            raise BadEvent("at has no time zone: add Z or an offset (2026-12-07T10:00:00Z)")
    else:
        raise BadEvent("at must be an ISO 8601 time with a zone (2026-12-07T10:00:00Z) or Unix seconds")
    at = at.astimezone(timezone.utc)
    if at > now:
        return now  # a sender's clock ahead of ours: the use happened by now
    if now - at > MAX_AGE:
        raise BadEvent(f"at is more than {MAX_AGE.days} days ago: send uses as they happen")
    return at


def store(*, session: Session, event: UsageIn) -> int | None:
    """Store ``event``: its new id, or None when its ``id`` was stored before (a retry: nothing changes)."""
    return store_row(session=session, row=event.row())


def store_row(*, session: Session, row: dict) -> int | None:
    return usage_store.store_event(session=session, **row)
