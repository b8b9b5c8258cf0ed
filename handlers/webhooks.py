"""Tracker webhooks on the serve app: verify, read, dedupe, apply. Every answer is a clear status:
401 bad signature, 400 malformed body, 404 tracker not configured, 200 otherwise (also for an
issue we do not track, so the tracker does not retry it)."""

import hashlib
import hmac
import json
import logging
import time

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.trackers import events as tracker_events
from bot.runtime.context import Deps
from bot.trackers.events import IssueEvent
from handlers.closing import apply_and_queue
from storage import friction
from storage.database import DatabaseUnavailable

log = logging.getLogger(__name__)

MAX_BODY = 5_000_000
LINEAR_MAX_AGE_MS = 60_000


def _hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _answer(status: int, message: str) -> JSONResponse:
    return JSONResponse({"ok": status < 400, "message": message}, status_code=status)


def verify_github(secret: str, body: bytes, headers) -> bool:
    return hmac.compare_digest("sha256=" + _hmac_hex(secret, body), headers.get("x-hub-signature-256", ""))


def verify_jira(secret: str, body: bytes, headers) -> bool:
    return hmac.compare_digest("sha256=" + _hmac_hex(secret, body), headers.get("x-hub-signature", ""))


def verify_linear(secret: str, body: bytes, headers) -> bool:
    if not hmac.compare_digest(_hmac_hex(secret, body), headers.get("linear-signature", "")):
        return False
    try:  # the signed body carries its own timestamp: refuse replays
        sent = int(json.loads(body).get("webhookTimestamp"))
    except (ValueError, TypeError, AttributeError):
        return False
    return abs(time.time() * 1000 - sent) <= LINEAR_MAX_AGE_MS


def verify_gitlab(secret: str, body: bytes, headers) -> bool:
    return hmac.compare_digest(secret.encode(), headers.get("x-gitlab-token", "").encode())


def apply_delivery(*, session, delivery: str | None, events: list[IssueEvent], deps: Deps) -> int:
    """One delivery, applied once: a redelivery (same id) changes nothing. Returns closures applied."""
    if delivery and not friction.first_delivery(session=session, event_id=delivery[:64]):
        return 0
    return sum(1 for event in events if apply_and_queue(session=session, event=event, policy=deps.policy))


def routes(deps: Deps) -> list[Route]:
    settings = deps.settings
    not_planned = frozenset(r.lower() for r in deps.policy.closing.jira_not_planned)

    async def receive(request: Request, tracker: str, *args) -> JSONResponse:
        response = await _receive(request, tracker, *args)
        deps.metrics.webhooks.labels(tracker, str(response.status_code)).inc()
        return response

    async def _receive(request: Request, tracker: str, secret: str | None, verify, parse, delivery_header: str | None):
        if not secret:
            return _answer(404, f"{tracker} webhooks are not configured")
        body = await request.body()
        if len(body) > MAX_BODY:
            return _answer(413, "payload too large")
        if not verify(secret, body, request.headers):
            return _answer(401, "invalid signature")
        try:
            payload = json.loads(body)
            if not isinstance(payload, dict):
                raise ValueError("not an object")
            events = parse(payload, request.headers)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return _answer(400, f"malformed {tracker} payload: {type(exc).__name__}")
        if not events:
            return _answer(200, "nothing to do")
        delivery = request.headers.get(delivery_header) if delivery_header else None
        try:
            applied = await deps.db.run(apply_delivery, delivery=f"{tracker}:{delivery}" if delivery else None,
                                        events=events, deps=deps)
        except DatabaseUnavailable:
            return _answer(503, "database unavailable, retry later")
        if applied:
            deps.sender.wake()
        return _answer(200, f"{applied} closure(s) applied")

    async def github(request: Request):
        return await receive(request, "github", settings.github_webhook_secret, verify_github,
                             lambda p, h: tracker_events.github(h.get("x-github-event", ""), p), "x-github-delivery")

    async def jira(request: Request):
        return await receive(request, "jira", settings.jira_webhook_secret, verify_jira,
                             lambda p, h: tracker_events.jira(p, not_planned_resolutions=not_planned),
                             "x-atlassian-webhook-identifier")

    async def linear(request: Request):
        return await receive(request, "linear", settings.linear_webhook_secret, verify_linear,
                             lambda p, h: tracker_events.linear(p), "linear-delivery")

    async def gitlab(request: Request):
        return await receive(request, "gitlab", settings.gitlab_webhook_token, verify_gitlab,
                             lambda p, h: tracker_events.gitlab(p), "idempotency-key")

    return [
        Route("/webhooks/github", github, methods=["POST"]),
        Route("/webhooks/jira", jira, methods=["POST"]),
        Route("/webhooks/linear", linear, methods=["POST"]),
        Route("/webhooks/gitlab", gitlab, methods=["POST"]),
    ]
