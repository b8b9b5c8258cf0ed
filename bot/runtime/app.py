"""Builds the Bolt app and the HTTP server around it. Nothing runs at import time."""

import contextlib
import hashlib
import hmac
import logging
import time

import aiohttp
import anyio.to_thread
from prometheus_client import CONTENT_TYPE_LATEST
from slack_bolt import BoltResponse
from slack_bolt.adapter.starlette.async_handler import (
    AsyncSlackRequestHandler,
    to_async_bolt_request,
    to_starlette_response,
)
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import handlers.closing
import handlers.focus
import handlers.help_channel
import handlers.home
import handlers.insight
import handlers.intake
import handlers.office_hours
import handlers.polling
import handlers.retention
import handlers.surveys
import handlers.targets
import handlers.triage
import handlers.webhooks
import bot.web.dashboard
from bot.runtime.config import Policy, Settings
from bot.runtime.context import Deps
from bot.runtime.hosts import HostDirectory
from bot.runtime.metrics import Metrics, listener_name
from bot.runtime.sender import OutboxSender
from bot.runtime.workspaces import BOT_SCOPES, Workspaces, installation_store, state_store
from storage import outbox
from storage.database import Database, DatabaseUnavailable

log = logging.getLogger(__name__)

NOT_INSTALLED = (
    ":wave: Platform Feedback is not installed in this workspace yet. A Slack admin can install it "
    "from the bot's /slack/install page."
)
MAX_BODY = 1_000_000  # Slack's payloads are far smaller; anything bigger is not from Slack


def create_app(settings: Settings, policy: Policy, db: Database, client: AsyncWebClient | None = None) -> tuple[AsyncApp, Deps]:
    client = client or AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url)
    if settings.oauth:
        app, workspaces = _oauth_app(settings, policy, db, client)
    else:
        app = AsyncApp(
            client=client,
            signing_secret=settings.slack_signing_secret or None,
            # Bolt checks the v0 signature (constant-time, 5-minute window) and answers 401 itself.
            request_verification_enabled=not settings.socket_mode,
        )
        workspaces = Workspaces(client=client)
    deps = Deps(
        settings=settings,
        policy=policy,
        db=db,
        sender=OutboxSender(db, workspaces, claim_seconds=settings.outbox_claim_seconds),
        hosts=HostDirectory(policy.hosts, workspaces, refresh_seconds=policy.hosts.refresh_minutes * 60),
        workspaces=workspaces,
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
    handlers.targets.register(app, deps)
    handlers.focus.register(app, deps)
    handlers.home.register(app, deps)
    handlers.insight.register(app, deps)
    return app, deps


def _oauth_app(settings: Settings, policy: Policy, db: Database, client: AsyncWebClient) -> tuple[AsyncApp, Workspaces]:
    """Installed into several workspaces: Bolt's OAuth flow (/slack/install, /slack/oauth_redirect)
    saves each installation in slack-sdk's SQLAlchemy store, which also answers which token a
    request or an outbox message is sent with."""
    store = installation_store(db, settings.slack_client_id)
    credentials = {"client_id": settings.slack_client_id, "client_secret": settings.slack_client_secret}
    app = AsyncApp(
        client=client,
        signing_secret=settings.slack_signing_secret,
        oauth_settings=AsyncOAuthSettings(
            **credentials,
            scopes=BOT_SCOPES,
            redirect_uri=settings.slack_redirect_uri,
            installation_store=store,
            installation_store_bot_only=True,
            state_store=state_store(db),
        ),
        # Bolt's own, with its cache on: without it every request waits for an auth.test before its ack.
        authorize=AsyncInstallationStoreAuthorize(
            **credentials, installation_store=store, bot_only=True, cache_enabled=True, client=client, logger=log
        ),
        installation_store_bot_only=True,
        user_facing_authorize_error_message=NOT_INSTALLED,
    )
    workspaces = Workspaces(store=store, home=policy.workspace, api_url=settings.slack_api_url)
    # Bolt's own listeners delete the installation; then no cached token may outlive it.
    revoked, uninstalled = app.default_tokens_revoked_event_listener(), app.default_app_uninstalled_event_listener()

    @app.event("tokens_revoked")
    async def on_tokens_revoked(event: dict, context: AsyncBoltContext):
        await revoked(event=event, context=context)
        workspaces.forget()

    @app.event("app_uninstalled")
    async def on_app_uninstalled(context: AsyncBoltContext):
        await uninstalled(context=context)
        workspaces.forget()
        log.info("uninstalled from %s", context.team_id or context.enterprise_id)

    return app, workspaces


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
        if isinstance(bolt_request.body, dict) and bolt_request.body.get("type") == "event_callback":
            # Events are acked before their listener runs and Slack resends only what it sees
            # fail, so an event is refused (503, Slack retries it with the same event_id) while
            # the database cannot store it, rather than acked and lost.
            try:
                await deps.db.check()
            except DatabaseUnavailable as exc:
                log.warning("event refused for Slack to retry, database unavailable: %s", exc)
                deps.metrics.requests.labels(listener, "503").inc()
                return PlainTextResponse("database unavailable, please retry", status_code=503)
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
            await deps.db.check()  # answers within the database's answer_seconds, even on a hung connection
        except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"
            log.warning("healthz: database unavailable: %s", exc)
            return JSONResponse({"ok": False, "database": "unavailable"}, status_code=503)
        return JSONResponse({"ok": True})

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        # One connection pool for every Web API call (Bolt's per-request clients copy the app
        # client's session): keep-alive, rather than a new connection and TLS handshake per call.
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=app.client.timeout))
        app.client.session = deps.workspaces.session = session
        if run_background:
            deps.sender.start()
            deps.scheduler.start()
        try:
            yield
        finally:
            deps.scheduler.stop()
            await deps.sender.stop()
            await deps.db.dispose_async()
            await session.close()

    return Starlette(
        routes=[
            Route("/slack/events", slack_events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            *_oauth_routes(app, deps),
            *handlers.webhooks.routes(deps),
            *bot.web.dashboard.routes(deps),
        ],
        lifespan=lifespan,
    )


def _oauth_routes(app: AsyncApp, deps: Deps) -> list[Route]:
    if not deps.settings.oauth:
        return []
    handler = AsyncSlackRequestHandler(app)

    async def oauth(request: Request) -> Response:
        return await handler.handle(request)

    return [Route(app.oauth_flow.install_path, oauth, methods=["GET"]), Route(app.oauth_flow.redirect_uri_path, oauth, methods=["GET"])]


def _signed_by_slack(secret: bytes, body: bytes, headers) -> bool:
    """Slack's v0 check over raw bytes, constant-time, 5-minute window (slack_sdk's verifier
    decodes the body as UTF-8 first and raises on a malformed timestamp)."""
    ts, signature = headers.get("x-slack-request-timestamp", ""), headers.get("x-slack-signature", "")
    if not secret or not ts.isdigit() or abs(time.time() - int(ts)) > 300:
        return False
    expected = "v0=" + hmac.new(secret, b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)
