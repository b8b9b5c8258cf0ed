"""Builds the Bolt app and the HTTP server around it. Nothing runs at import time."""

import contextlib
import hashlib
import hmac
import logging
import time

import anyio.to_thread
from prometheus_client import CONTENT_TYPE_LATEST
from slack_bolt import BoltResponse
from slack_bolt.adapter.starlette.async_handler import to_async_bolt_request, to_starlette_response
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import handlers.closing
import handlers.help_channel
import handlers.home
import handlers.insight
import handlers.intake
import handlers.office_hours
import handlers.polling
import handlers.retention
import handlers.surveys
import handlers.triage
import handlers.webhooks
import bot.dashboard
from bot.config import Policy, Settings
from bot.context import Deps
from bot.hosts import HostDirectory
from bot.metrics import Metrics, listener_name
from bot.sender import OutboxSender
from storage import outbox
from storage.database import Database

log = logging.getLogger(__name__)

MAX_BODY = 1_000_000  # Slack's payloads are far smaller; anything bigger is not from Slack


def create_app(settings: Settings, policy: Policy, db: Database, client: AsyncWebClient | None = None) -> tuple[AsyncApp, Deps]:
    client = client or AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url)
    app = AsyncApp(
        client=client,
        signing_secret=settings.slack_signing_secret or None,
        # Bolt checks the v0 signature (constant-time, 5-minute window) and answers 401 itself.
        request_verification_enabled=not settings.socket_mode,
    )
    deps = Deps(
        settings=settings,
        policy=policy,
        db=db,
        sender=OutboxSender(db, client),
        hosts=HostDirectory(policy.hosts, client, refresh_seconds=policy.hosts.refresh_minutes * 60),
        metrics=Metrics(outbox_stats=lambda: db.transact(outbox.backlog)),
    )
    deps.scheduler.observer = lambda job, outcome: deps.metrics.scheduler_runs.labels(job, outcome).inc()
    deps.sender.observer = deps.metrics.observe_send

    @app.error
    async def on_error(error: Exception, body: dict, response: BoltResponse | None):
        # Logged with the payload type only: bodies can carry user text and response URLs.
        kind = body.get("type") if isinstance(body, dict) else None
        if isinstance(error, (LookupError, TypeError, AttributeError, ValueError)):
            # A payload without the fields Slack always sends: the request is at fault, not us.
            log.warning("malformed %s payload: %r", kind, error)
            # No response here means Slack's answer was already given (the listener had acked).
            return BoltResponse(status=400, body="malformed payload") if response is not None else None
        log.error("listener failed for %s: %r", kind, error, exc_info=error)
        return None

    handlers.intake.register(app, deps)
    handlers.triage.register(app, deps, on_resolved=handlers.surveys.csat_followup_hook(policy))
    handlers.closing.register(app, deps)
    handlers.polling.register(app, deps)
    handlers.help_channel.register(app, deps)
    handlers.office_hours.register(app, deps)
    handlers.surveys.register(app, deps)
    handlers.retention.register(app, deps)
    handlers.home.register(app, deps)
    handlers.insight.register(app, deps)
    return app, deps


def create_web_app(app: AsyncApp, deps: Deps, *, run_background: bool = True) -> Starlette:
    secret = deps.settings.slack_signing_secret.encode()

    async def slack_events(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return PlainTextResponse("payload too large", status_code=413)
        # Bolt verifies every request again itself; this gate also turns away what would make its
        # verifier raise (a missing or non-numeric timestamp) and bodies it cannot parse.
        if not deps.settings.socket_mode and not _signed_by_slack(secret, body, request.headers):
            return PlainTextResponse("invalid signature", status_code=401)
        try:
            bolt_request = to_async_bolt_request(request, body)
        except (ValueError, AttributeError, TypeError, LookupError):
            # Not UTF-8, not JSON where JSON was promised, or JSON that is not an object.
            return PlainTextResponse("malformed body", status_code=400)
        listener = listener_name(bolt_request.body) if isinstance(bolt_request.body, dict) else "unknown"
        started = time.perf_counter()
        try:
            response = to_starlette_response(await app.async_dispatch(bolt_request))
        except (LookupError, TypeError, AttributeError, ValueError) as exc:
            # Bolt's own payload helpers assume Slack's shapes; a signed body without them lands here.
            log.warning("malformed Slack payload: %r", exc)
            response = PlainTextResponse("malformed payload", status_code=400)
        # Bolt answers once the listener acks, so this is the ack latency Slack sees.
        deps.metrics.ack_seconds.labels(listener).observe(time.perf_counter() - started)
        deps.metrics.requests.labels(listener, str(response.status_code)).inc()
        return response

    async def metrics(_request: Request) -> Response:
        body = await anyio.to_thread.run_sync(deps.metrics.render)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def healthz(_request: Request) -> Response:
        try:
            await _ping(deps.db)
        except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"
            return JSONResponse({"ok": False, "database": type(exc).__name__}, status_code=503)
        return JSONResponse({"ok": True})

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        if run_background:
            deps.sender.start()
            deps.scheduler.start()
        try:
            yield
        finally:
            deps.scheduler.stop()
            await deps.sender.stop()

    return Starlette(
        routes=[
            Route("/slack/events", slack_events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            *handlers.webhooks.routes(deps),
            *bot.dashboard.routes(deps),
        ],
        lifespan=lifespan,
    )


async def _ping(db: Database) -> None:
    await anyio.to_thread.run_sync(db.ping)


def _signed_by_slack(secret: bytes, body: bytes, headers) -> bool:
    """Slack's v0 check over raw bytes, constant-time, 5-minute window (slack_sdk's verifier
    decodes the body as UTF-8 first and raises on a malformed timestamp)."""
    ts, signature = headers.get("x-slack-request-timestamp", ""), headers.get("x-slack-signature", "")
    if not secret or not ts.isdigit() or abs(time.time() - int(ts)) > 300:
        return False
    expected = "v0=" + hmac.new(secret, b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)
