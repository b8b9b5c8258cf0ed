"""Builds the Bolt app and the HTTP server around it. Nothing runs at import time."""

import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

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
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.oauth.async_callback_options import AsyncCallbackOptions
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import bot.closing.webhooks
import bot.usage.endpoint
import bot.web.dashboard
import handlers
from bot import charts
from bot.closing.service import apply_issue_event
from bot.commands import check_handled
from bot.policy import Policy
from bot.runtime.context import Deps
from bot.runtime.event_gate import HELD, EventGate, NotKept, keep_requests, release_unstarted
from bot.runtime.guard import BodyLimit, redact_access_log, signed_by_slack
from bot.runtime.hosts import HostDirectory
from bot.runtime.late_answer import dispatch
from bot.runtime.metrics import UNOBSERVED, ArrivalTime, Metrics, listener_name, seconds_since_arrival
from bot.runtime.outbox import OutboxSender
from bot.runtime.replays import Replays
from bot.runtime.respond import KeptAliveRespond
from bot.runtime.settings import Settings
from bot.runtime.signature_watch import SignatureWatch
from bot.runtime.slack_reads import with_read_retries
from bot.runtime.spool import EventSpool
from bot.runtime.workspaces import (
    BOT_SCOPES,
    Allowlist,
    AllowlistOAuthFlow,
    Workspaces,
    installation_store,
    refused_install_page,
    state_store,
)
from bot.trackers import configure_hosts
from bot.trackers.identity import Identities
from storage import outbox
from storage.database import Database, DatabaseUnavailable

log = logging.getLogger(__name__)

NOT_INSTALLED = (
    ":wave: Platform Feedback is not installed in this workspace yet. A Slack admin can install it "
    "from the bot's /slack/install page."
)
REFUSED = "This app serves only its own organisation's workspace."
# Bolt's ``authorize``: an async callable (its AsyncAuthorize objects answer None for "not installed",
# which Bolt's own annotation, Awaitable[AuthorizeResult], leaves out).
Authorize = Callable[..., Awaitable[Any]]
MAX_BODY = 1_000_000  # Slack's payloads are far smaller; anything bigger is not from Slack


def create_deps(settings: Settings, policy: Policy, db: Database, client: AsyncWebClient | None = None) -> Deps:
    """Everything the features use but the Bolt app: for ``serve`` (``create_app``) and for the
    commands that answer no Slack request (``jobs``, ``run-job``), which need no Slack credentials."""
    client = with_read_retries(client or AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url))
    if settings.oauth:
        workspaces = Workspaces(store=installation_store(db, settings.slack_client_id or ""), home=policy.workspace,
                                api_url=settings.slack_api_url)
    else:
        workspaces = Workspaces(client=client)
    metrics = Metrics(outbox_stats=lambda: db.transact(outbox.backlog))
    deps = Deps(
        settings=settings,
        policy=policy,
        db=db,
        sender=OutboxSender(db, workspaces, claim_seconds=settings.outbox_claim_seconds),
        hosts=HostDirectory(policy.hosts, workspaces, refresh_seconds=policy.hosts.refresh_minutes * 60),
        workspaces=workspaces,
        events=EventGate(spool=EventSpool(settings.event_spool_path, max_bytes=settings.event_spool_max_mb * 1_000_000),
                         db=db, secret=settings.slack_signing_secret.encode()),
        identities=Identities(settings=settings, db=db, apply=apply_issue_event),
        client=client,
        metrics=metrics,
    )
    deps.scheduler.observer = lambda job, outcome: metrics.scheduler_runs.labels(job, outcome).inc()
    deps.sender.observer = metrics.observe_send
    db.after_queue.append(_wakes(deps.sender, db))  # whatever queued a message, the sender hears of it at commit
    metrics.watch_spool(deps.events.status)
    deps.events.on_unhandled = lambda body: count_unhandled(listener_name(body), deps)
    configure_hosts(settings)  # which tracker a pasted URL is on, by its host
    handlers.prepare(deps)  # the features' outbox hooks and subcommands
    return deps


def create_app(settings: Settings, policy: Policy, db: Database, client: AsyncWebClient | None = None) -> tuple[AsyncApp, Deps]:
    """The Bolt app with every feature's listeners, its ``Deps`` with every feature's jobs declared
    on ``deps.scheduler`` (nothing started)."""
    deps = create_deps(settings, policy, db, client)
    authorize: Authorize | None
    if settings.oauth:
        app, authorize = _oauth_app(settings, policy, deps)
    else:
        # No token: only the offline commands' settings (OfflineSettings) allow it; no workspace is authorised.
        authorize = None if deps.client.token else _no_workspace
        app = AsyncApp(
            client=deps.client,
            authorize=authorize,
            signing_secret=settings.slack_signing_secret or None,
            # Bolt checks the v0 signature (constant-time, 5-minute window) and answers 401 itself.
            request_verification_enabled=not settings.socket_mode,
        )
    # The spool's replay goes through a twin of the app that runs each listener to its end before
    # answering, so an event leaves the spool only once it was handled. Same listeners, same deps.
    replay = AsyncApp(client=deps.client, authorize=authorize, process_before_response=True, request_verification_enabled=False,
                      signing_secret=settings.slack_signing_secret or None)
    deps.events.replay = replay.async_dispatch
    if settings.oauth:
        _forget_installations(replay, owner=app, workspaces=deps.workspaces)
    _register(app, deps)
    keep_requests(app, deps.events)  # the serving app only: the replay finishes its rows itself
    check_handled(set(deps.commands))  # the help lists every subcommand, and each one listed answers
    _register(replay, deps)
    handlers.schedule(deps)  # every feature's jobs (attaching listeners adds none)
    return app, deps


class _BoltNoise(logging.Filter):
    """Two of Bolt's warnings that say nothing true here:

    - Bolt reads SLACK_BOT_TOKEN from the environment itself, then warns (once per app: the serving
      app and its replay twin) that the client we give it wins, though that client holds the very
      same token: a warning about nothing, at every start.
    - "Unhandled request (...)" with a suggested listener, for every request no listener answered:
      the route logs a request nobody takes itself, once per kind (``count_unhandled``), and a
      listener that only ran past Bolt's 3 s (``bot.runtime.late_answer``) was handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return message != warning_client_prioritized_and_token_skipped() and not message.startswith("Unhandled request (")


logging.getLogger("slack_bolt.AsyncApp").addFilter(_BoltNoise())


def _register(app: AsyncApp, deps: Deps) -> None:
    """The error handler, the workspace gate and every surface's listeners, on ``app``."""
    policy = deps.policy

    @app.error
    async def on_error(error: Exception, body: dict, request: AsyncBoltRequest, response: BoltResponse | None):
        # Logged with the payload type only: bodies can carry user text and response URLs.
        kind = body.get("type") if isinstance(body, dict) else None
        acked_request = request.context.get(HELD) is not None and response is None  # a person's, answered already
        if isinstance(error, DatabaseUnavailable) and (kind == "event_callback" or acked_request):
            # Acked already (the database went away after the gate's check, or after a listener's
            # ack): keep it for the replay. Not acked: Bolt's 500 tells the person it failed.
            await deps.events.keep_request(request)
            return None
        if isinstance(error, (LookupError, TypeError, AttributeError, ValueError, RecursionError)):
            # A payload without the fields Slack always sends: the request is at fault, not us.
            log.warning("malformed %s payload: %r", kind, error)
            # No response here means Slack's answer was already given (the listener had acked).
            return BoltResponse(status=400, body="malformed payload") if response is not None else None
        log.error("listener failed for %s: %r", kind, error, exc_info=error)
        return None

    allowlist = Allowlist.from_settings(deps.settings.allowed_workspaces, policy.workspace)

    @app.middleware
    async def only_allowed_workspaces(context: AsyncBoltContext, next):
        # Before any listener, so nothing from another workspace or org is stored or answered.
        if allowlist.allows(context.team_id, context.enterprise_id) or not (context.team_id or context.enterprise_id):
            return await next()
        log.warning("refused a request from %s", context.enterprise_id or context.team_id)
        return BoltResponse(status=200, body=REFUSED)

    @app.middleware
    async def responses_kept_alive(context: AsyncBoltContext, next):
        # respond() through the one session of every Web API call (``lifespan``): no session and
        # connection per answer. Without it (no lifespan: tests on the Bolt app alone) Bolt's own.
        session = app.client.session
        if context.response_url and session is not None and not session.closed:
            context["respond"] = KeptAliveRespond(response_url=context.response_url, session=session)
        return await next()

    handlers.register(app, deps)


async def _no_workspace(**_kwargs: Any) -> Any:
    """Bolt's authorize for an app built without SLACK_BOT_TOKEN (``jobs``, ``run-job``): nobody."""
    return None


def _wakes(sender: OutboxSender, db: Database) -> Callable[[], None]:
    """``sender.wake_from_any_thread``, held weakly: a Database can outlive the apps built on it (the
    CLI, tests), and a stopped app's sender is forgotten, not woken."""
    ref = weakref.WeakMethod(sender.wake_from_any_thread)

    def wake() -> None:
        method = ref()
        if method is None:
            with contextlib.suppress(ValueError):
                db.after_queue.remove(wake)
            return
        method()

    return wake


def _oauth_app(settings: Settings, policy: Policy, deps: Deps) -> tuple[AsyncApp, Authorize]:
    """Installed into several workspaces: Bolt's OAuth flow (/slack/install, /slack/oauth_redirect)
    saves each installation in slack-sdk's SQLAlchemy store (``deps.workspaces.store``), which also
    answers which token a request or an outbox message is sent with."""
    store = deps.workspaces.store
    assert store is not None  # create_deps made the store for an OAuth app
    client_id, client_secret = settings.slack_client_id or "", settings.slack_client_secret or ""
    flow = AllowlistOAuthFlow(client=deps.client, settings=AsyncOAuthSettings(
        client_id=client_id,
        client_secret=client_secret,
        scopes=BOT_SCOPES,
        redirect_uri=settings.slack_redirect_uri,
        installation_store=store,
        installation_store_bot_only=True,
        state_store=state_store(deps.db),
        callback_options=AsyncCallbackOptions(success=_installed_page, failure=refused_install_page),
    ))
    # Installs only into the allowed workspaces / orgs (ALLOWED_WORKSPACES, default the policy's).
    flow.allowlist = Allowlist.from_settings(settings.allowed_workspaces, policy.workspace)
    # Bolt's own, with its cache on: without it every request waits for an auth.test before its ack.
    authorize: Authorize = AsyncInstallationStoreAuthorize(
        client_id=client_id, client_secret=client_secret, installation_store=store, bot_only=True, cache_enabled=True,
        client=deps.client, logger=log,
    )
    app = AsyncApp(
        client=deps.client,
        signing_secret=settings.slack_signing_secret,
        oauth_flow=flow,
        authorize=authorize,
        installation_store_bot_only=True,
        user_facing_authorize_error_message=NOT_INSTALLED,
    )
    _forget_installations(app, owner=app, workspaces=deps.workspaces)
    return app, authorize


def _forget_installations(app: AsyncApp, *, owner: AsyncApp, workspaces: Workspaces) -> None:
    """On ``app`` (the serving app, or its replay twin for events spooled during an outage): Bolt's
    own listeners of ``owner``, which holds the installation store, delete the installation; then
    no cached token may outlive it."""
    revoked, uninstalled = owner.default_tokens_revoked_event_listener(), owner.default_app_uninstalled_event_listener()

    @app.event("tokens_revoked")
    async def on_tokens_revoked(event: dict, context: AsyncBoltContext):
        await revoked(event=event, context=context)
        workspaces.forget()

    @app.event("app_uninstalled")
    async def on_app_uninstalled(context: AsyncBoltContext):
        await uninstalled(context=context)
        workspaces.forget()
        log.info("uninstalled from %s", context.team_id or context.enterprise_id)


async def _installed_page(args):
    return await args.default.success(args)


def create_web_app(app: AsyncApp, deps: Deps, *, run_background: bool = True) -> Starlette:
    secret = deps.settings.slack_signing_secret.encode()
    replays = Replays(deps.db)
    refusals = SignatureWatch(deps.metrics)

    async def slack_events(request: Request) -> Response:
        body = await request.body()  # at most MAX_BODY bytes: BodyLimit stopped reading there
        # Bolt verifies every request again itself; this gate also turns away what would make its
        # verifier raise (a missing or non-numeric timestamp) and bodies it cannot parse.
        if not deps.settings.socket_mode and not signed_by_slack(secret, body, request.headers):
            refusals.refused(request.url.path, request.headers)  # counted; a warning naming SLACK_SIGNING_SECRET
            return PlainTextResponse("invalid signature", status_code=401)
        try:
            bolt_request = to_async_bolt_request(request, body)
        except (ValueError, AttributeError, TypeError, LookupError, RecursionError):
            # Not UTF-8, not JSON where JSON was promised, JSON that is not an object, or nested
            # deeper than Python's parser goes (a signed body 1,000 levels deep).
            return PlainTextResponse("malformed body", status_code=400)
        listener = listener_name(bolt_request.body) if isinstance(bolt_request.body, dict) else "unknown"
        if not deps.settings.socket_mode and isinstance(bolt_request.body, dict) and await replays.seen_before(request.headers, bolt_request.body):
            # Acknowledged, not applied again: the same signed bytes within Slack's window (bot.runtime.replays).
            deps.metrics.requests.labels(listener, "replay").inc()
            return PlainTextResponse("", status_code=200)
        if listener == "app_rate_limited":
            return rate_limited_notice(bolt_request.body, deps)
        if isinstance(bolt_request.body, dict) and bolt_request.body.get("type") == "event_callback" and bolt_request.body.get("event_id"):
            # Acked means kept: the event is in the local spool (fsynced) before its 200, and its
            # listener runs after the answer; a process killed in between leaves it there for the
            # replay (bot.runtime.event_gate). The spool refusing it (full, disk full): the listener
            # runs before the answer instead, and 503 (Slack retries) if the database cannot take it.
            headers = dict(request.headers)
            try:
                admitted = await deps.events.admit(event_id=bolt_request.body["event_id"], body=body, headers=headers, signed=True)
            except NotKept as exc:
                if await deps.events.handle_now(body, headers):
                    deps.metrics.requests.labels(listener, "200").inc()
                    return PlainTextResponse("", status_code=200)
                log.warning("event refused for Slack to retry: database unavailable and %s", exc)
                deps.metrics.requests.labels(listener, "503").inc()
                return PlainTextResponse("database unavailable, please retry", status_code=503)
            if admitted is not None and admitted.live:  # (None: no event_id, which was checked above)
                deps.events.handle_live(admitted, body, headers)
                status = "200"
            else:
                status = "spooled"
            if listener not in UNOBSERVED:
                deps.metrics.ack_seconds.labels(listener).observe(seconds_since_arrival(request.scope))
            deps.metrics.requests.labels(listener, status).inc()
            return PlainTextResponse("", status_code=200)
        # Acked means kept, for a person's command or interaction too: in the spool while its
        # listener runs, past the ack (bot.runtime.event_gate: hold, ListenerEnd).
        await deps.events.hold(bolt_request, key="request:" + request.headers.get("x-slack-signature", ""))
        try:
            answer = await dispatch(app, bolt_request)  # at the listener's ack (bot.runtime.late_answer)
        except (LookupError, TypeError, AttributeError, ValueError, RecursionError) as exc:
            # Bolt's own payload helpers assume Slack's shapes; a signed body without them lands here.
            log.warning("malformed Slack payload: %r", exc)
            answer = BoltResponse(status=400, body="malformed payload")
        finally:
            await release_unstarted(deps.events, bolt_request)
        # Before the answer leaves: from now on it is kept (and a listener past Bolt's 3 s wait is acked).
        answer = await deps.events.acked(bolt_request, answer)
        response = to_starlette_response(answer)
        if response.status_code == 404:
            # Bolt's "unhandled request": signed, from Slack, and nothing here takes it. A 404 makes
            # Slack retry it and count it a failure (too many and it turns the app's events off).
            response = unhandled(listener, deps)
        # Bolt answers once the listener acks: from the request's arrival (ArrivalTime, before the
        # body was read) to here is the ack latency Slack sees.
        if listener not in UNOBSERVED:
            deps.metrics.ack_seconds.labels(listener).observe(seconds_since_arrival(request.scope))
            deps.metrics.requests.labels(listener, str(response.status_code)).inc()
        return response

    async def metrics(_request: Request) -> Response:
        body = await anyio.to_thread.run_sync(deps.metrics.render)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def healthz(_request: Request) -> Response:
        # The spool's state rides along: events waiting for the database, and a full disk (the
        # bot still works then, answering events after their listener ran, so it stays "ok").
        try:
            spool = await anyio.to_thread.run_sync(deps.events.status)
        except Exception as exc:  # noqa: BLE001 - a spool file that cannot be read is the spool's problem, said here
            spool = {"problem": f"the spool file cannot be read: {' '.join(str(exc).split())[:200]}"}
        try:
            await deps.db.check()  # answers within the database's answer_seconds, even on a hung connection
        except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"
            log.warning("healthz: database unavailable: %s", exc)
            return JSONResponse({"ok": False, "database": "unavailable", "spool": spool}, status_code=503)
        return JSONResponse({"ok": True, "spool": spool})

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        # One connection pool for every Web API call (Bolt's per-request clients copy the app
        # client's session): keep-alive, rather than a new connection and TLS handshake per call.
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=app.client.timeout))
        app.client.session = deps.workspaces.session = session
        if run_background:
            deps.sender.start()
            deps.scheduler.start()
            deps.events.start()
        try:
            yield
        finally:
            await deps.events.stop()
            deps.scheduler.stop()
            await deps.sender.stop()
            await anyio.to_thread.run_sync(charts.stop)  # waits for the chart process to leave
            await anyio.to_thread.run_sync(bot.closing.webhooks.READER.stop)  # and the tracker reader
            await deps.db.dispose_async()
            await session.close()

    redact_access_log()
    web = Starlette(
        routes=[
            Route("/slack/events", slack_events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            *_oauth_routes(app, deps),
            *bot.closing.webhooks.routes(deps),
            *bot.web.dashboard.routes(deps),
            *bot.usage.endpoint.routes(deps),
        ],
        lifespan=lifespan,
        # ArrivalTime outermost, so the ack clock starts before BodyLimit reads the body.
        middleware=[Middleware(ArrivalTime), Middleware(BodyLimit, limit=body_limit, seconds=deps.settings.http_body_seconds)],
    )
    return web


_UNHANDLED_LOGGED: set[str] = set()


def unhandled(listener: str, deps: Deps) -> Response:
    """200 with nothing to show (a slash command's or an action's answer body would be shown to the
    person), counted in /metrics by kind, logged once per kind per process."""
    count_unhandled(listener, deps)
    return Response(b"", status_code=200)


def count_unhandled(listener: str, deps: Deps) -> None:
    """A signed request no listener took: counted by kind, logged once per kind per process (events
    are acked before their listener runs, so theirs is counted after: ``EventGate.on_unhandled``)."""
    deps.metrics.unhandled.labels(listener).inc()
    if listener not in _UNHANDLED_LOGGED:
        _UNHANDLED_LOGGED.add(listener)
        log.warning("Slack sent a %s request no listener takes: answered 200, not acted on (counted in pf_slack_unhandled)", listener)


def rate_limited_notice(body: dict, deps: Deps) -> Response:
    """Slack's ``app_rate_limited`` notice (no inner event: ``team_id``, ``minute_rate_limited``, the
    minute as epoch seconds; https://docs.slack.dev/reference/events/app_rate_limited/): events from
    that workspace are being dropped. Acked, one warning line, counted by workspace."""
    team = str(body.get("team_id") or "?")
    team = team if team.isalnum() and len(team) <= 32 else "?"  # a label: nothing else from the payload
    minute = body.get("minute_rate_limited")
    deps.metrics.slack_dropped.labels(team).inc()
    log.warning("Slack is dropping events from workspace %s (app_rate_limited since minute %s): more than 30,000 events "
                "in an hour; reports, answers and replies sent meanwhile are not delivered to the bot", team, minute)
    return PlainTextResponse("noted", status_code=200)


def body_limit(path: str) -> int:
    """Bytes of body a route may receive: tracker webhooks and usage events their own bounds, every other route Slack's."""
    if path == bot.usage.endpoint.PATH:
        return bot.usage.endpoint.MAX_BODY
    return bot.closing.webhooks.MAX_BODY if path.startswith("/webhooks/") else MAX_BODY


def _oauth_routes(app: AsyncApp, deps: Deps) -> list[Route]:
    if not deps.settings.oauth:
        return []
    handler = AsyncSlackRequestHandler(app)

    async def no_body() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def oauth(request: Request) -> Response:
        # Both pages are GETs: a body sent with one is junk (Bolt would try to parse it as a payload).
        return await handler.handle(Request(request.scope, receive=no_body))

    flow = app.oauth_flow
    assert flow is not None  # called for an OAuth app only
    return [Route(flow.install_path, oauth, methods=["GET"]), Route(flow.redirect_uri_path, oauth, methods=["GET"])]


async def _ping(db: Database) -> None:
    await anyio.to_thread.run_sync(db.ping)


def serving_web_app(app, deps):
    """The HTTP app of a process about to serve (``serve``, each ``--workers`` worker): its chart
    and tracker reader processes started now, not on the first dashboard load or large delivery, and its interpreter set last, once
    everything it keeps is built (``bot.runtime.interpreter``)."""
    from bot import charts
    from bot.runtime.interpreter import set_for_serving

    charts.warm_up()
    bot.closing.webhooks.warm_up()
    web = create_web_app(app, deps)
    set_for_serving()
    return web
