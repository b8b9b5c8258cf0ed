"""``platform-feedback usage``: send one usage event, for a deploy script or a CI step.

With ``--url`` (the bot's ``…/events/usage``) the event is signed with ``USAGE_SIGNING_SECRET``
and POSTed, re-signed and sent again (at most ``ATTEMPTS`` times) when the bot answers 429 or 503
with ``Retry-After``, or cannot be reached. Without it the event is written straight into the
bot's database (``DATABASE_URL``, and the team policy for its capabilities): for scripts that run
where the bot does; the serving bot settles it (email lookup, the CSAT question) within a minute.
Exit 0 once stored (or already stored), 1 when refused or not delivered, 2 for a setting missing.
"""

import json
import time
import uuid
from datetime import datetime, timezone

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.runtime.settings import ConfigError, load_settings

ATTEMPTS = 4
MAX_WAIT = 30.0  # seconds: the longest Retry-After waited for


class SendSettings(BaseSettings):
    """What ``usage --url`` needs: only the secret (the same variable the bot reads)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)
    usage_signing_secret: str | None = Field(default=None)

    @field_validator("usage_signing_secret")
    @classmethod
    def _set(cls, v: str | None) -> str | None:
        return v or None


def add_parser(sub) -> None:
    p = sub.add_parser("usage", help="send one usage event (a deploy, a new service…) to the bot, signed, or into its database")
    p.add_argument("--capability", required=True, help="a capability name from the policy's usage.capabilities")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="the person's Slack member id, e.g. U012ABCDEF")
    who.add_argument("--email", help="the person's email address (looked up in Slack; only the user id is kept)")
    p.add_argument("--outcome", choices=["ok", "failed"], default="ok", help="how the use went (default ok)")
    p.add_argument("--duration-ms", type=int, help="how long it took, in milliseconds")
    p.add_argument("--subject", help="what it was used on, e.g. the service's name")
    p.add_argument("--id", dest="event_id", help="a unique id for this use (default: a random one); the same id is stored once")
    p.add_argument("--at", help="when, ISO 8601 with an offset (default: now)")
    p.add_argument("--url", help="the bot's events URL, e.g. https://feedback.example.com/events/usage (default: write to DATABASE_URL)")


def payload(args) -> dict:
    data = {"id": args.event_id or f"cli-{uuid.uuid4().hex}", "capability": args.capability, "outcome": args.outcome}
    for key, value in (("user", args.user), ("email", args.email), ("duration_ms", args.duration_ms), ("subject", args.subject),
                       ("at", args.at)):
        if value is not None:
            data[key] = value
    return data


def run(args) -> int:
    data = payload(args)
    return _send(args.url, data) if args.url else _store(data)


def _send(url: str, data: dict) -> int:
    import httpx

    from bot.usage import signing

    secret = load_settings(SendSettings).usage_signing_secret
    if not secret:
        raise ConfigError("USAGE_SIGNING_SECRET is not set: set it to the bot's (the same value) to sign events for --url.")
    body = json.dumps(data).encode()
    problem = "not sent"
    for attempt in range(ATTEMPTS):
        try:
            r = httpx.post(url, content=body, headers=signing.headers(secret, body), timeout=10)
        except httpx.HTTPError as exc:
            problem, wait = f"cannot reach {url} ({type(exc).__name__})", 2.0 ** attempt
        else:
            if r.status_code == 202:
                stored = r.json().get("stored")
                print(f"platform-feedback: usage event {data['id']} {'stored' if stored else 'was already stored'}")
                return 0
            problem = f"{url} answered {r.status_code}: {' '.join(r.text.split())[:300]}"
            if r.status_code not in (429, 503):
                break
            try:
                wait = float(r.headers.get("retry-after", 1))
            except ValueError:
                wait = 1.0
        if attempt + 1 < ATTEMPTS:
            time.sleep(min(max(wait, 0.0), MAX_WAIT))
    print(f"platform-feedback: {problem}")
    return 1


def _store(data: dict) -> int:
    from bot.runtime.config import load_policy
    from bot.runtime.serving import require_migrated
    from bot.runtime.settings import ReportSettings
    from bot.usage import events

    settings = load_settings(ReportSettings)
    policy = load_policy(settings.config_file)
    try:
        event = events.from_fields(data, policy.usage, datetime.now(timezone.utc))
    except events.BadEvent as exc:
        print(f"platform-feedback: {exc}")
        return 1
    db = settings.database()
    try:
        require_migrated(db)
        new = db.transact(events.store, event=event)
    finally:
        db.dispose()
    print(f"platform-feedback: usage event {event.key} {'stored' if new is not None else 'was already stored'}")
    return 0
