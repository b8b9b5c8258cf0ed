"""Starting the bot (``serve``: start-up checks, HTTP or Socket Mode), ``check``, and whether the
database is migrated: the parts of the CLI that talk to Slack or gate on the schema."""

import asyncio
import logging

from bot.runtime import logs
from bot.runtime.check import SlackUnreachable
from bot.runtime.config import load_policy
from bot.runtime.settings import ConfigError, load_settings
from storage.database import Database, DatabaseUnavailable

log = logging.getLogger("platform_feedback")


def migrate_db(db: Database) -> None:
    from sqlalchemy.exc import OperationalError

    try:
        db.migrate()
    except OperationalError as exc:
        raise DatabaseUnavailable(" ".join(str(exc.orig).split())[:200]) from None


class NotMigrated(Exception):
    """The database has not been migrated to this version's schema. ``str()``: one line saying what to run."""


def revisions(db: Database) -> tuple[str | None, str | None]:
    """(the database's Alembic revision, None if never migrated; this version's head). DatabaseUnavailable if unreachable."""
    from alembic.script import ScriptDirectory
    from sqlalchemy import inspect, text
    from sqlalchemy.exc import OperationalError

    from storage.database import alembic_config

    try:  # read alembic_version directly: alembic's MigrationContext logs INFO lines on stderr
        with db.engine.connect() as conn:
            has = inspect(conn).has_table("alembic_version")
            current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar() if has else None
    except OperationalError as exc:
        raise DatabaseUnavailable(" ".join(str(exc.orig).split())[:200]) from None
    return current, ScriptDirectory.from_config(alembic_config(db.engine)).get_current_head()


def migrate_and_say(db: Database) -> str:
    """``migrate``: apply what is missing; one line naming the database (no password) and what was applied."""
    from alembic.script import ScriptDirectory

    from storage.database import alembic_config

    before, head = revisions(db)
    migrate_db(db)
    if before == head:
        return f"{safe_url(db)} is up to date (revision {head}): nothing to apply"
    script = ScriptDirectory.from_config(alembic_config(db.engine))
    applied = len(list(script.iterate_revisions(head, before or "base")))
    start = f"from revision {before}" if before else "from an empty database"
    return f"applied {applied} migration(s) to {safe_url(db)} ({start} to {head})"


def sqlite_file(db: Database):
    """The file a SQLite URL names (a Path), or None (PostgreSQL, or SQLite in memory)."""
    from pathlib import Path

    from sqlalchemy import make_url

    url = make_url(db.url)
    return Path(url.database) if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") else None


def require_migrated(db: Database) -> None:
    """Raise NotMigrated unless the database is at the migrations' head (DatabaseUnavailable if
    unreachable). A SQLite file that does not exist is not created (connecting would create it)."""
    path = sqlite_file(db)
    if path is not None and not path.exists():
        raise NotMigrated(f"there is no database at {path} (DATABASE_URL {safe_url(db)}): run this where the bot's "
                          "database is, point DATABASE_URL at it, or run `platform-feedback migrate` to create one.")
    current, head = revisions(db)
    if current is None:
        raise NotMigrated(f"the database ({safe_url(db)}) has no tables yet: run `platform-feedback migrate` "
                          "(or `serve`, which migrates), or point DATABASE_URL at the bot's database.")
    if current != head:
        raise NotMigrated(f"the database ({safe_url(db)}) is at revision {current}, this version needs {head}: "
                          "run `platform-feedback migrate`.")


def safe_url(db: Database) -> str:
    from sqlalchemy import make_url

    return make_url(db.url).render_as_string(hide_password=True)


async def check_command() -> int:
    """``platform-feedback check``: one line per item; 1 if anything blocks, else 0."""
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.runtime.check import TIMEOUT_SECONDS, check, policy_file

    settings = load_settings()
    logs.configure(secrets=settings.secrets())
    try:
        policy = load_policy(settings.config_file)
    except ConfigError as exc:
        return await _check_names(settings, exc)
    token: str | None
    if settings.slack_client_id is not None:  # OAuth (settings.oauth)
        from bot.runtime.workspaces import NotInstalled, Workspaces, installation_store

        db = settings.database()
        require_migrated(db)
        try:
            token = await Workspaces(store=installation_store(db, settings.slack_client_id), home=policy.workspace).token(None)
        except NotInstalled as exc:
            print(f"✗ {exc}")
            return 1
        finally:
            await db.dispose_async()
    else:
        token = settings.slack_bot_token
    client = AsyncWebClient(token=token, base_url=settings.slack_api_url, timeout=TIMEOUT_SECONDS)
    try:
        lines = await check(settings, policy, client, policy_file(settings.config_file))
    except SlackUnreachable as exc:
        print(f"✗ Slack stopped answering during the check ({exc}): run it again")
        return 1
    for line in lines:
        print(line)
    blocking = sum(1 for line in lines if line.status == "block")
    print(f"{blocking} problem(s) to fix before serving." if blocking else "Ready: `platform-feedback serve`.")
    return 1 if blocking else 0


async def _check_names(settings, problem: Exception) -> int:
    """``check`` on a policy that does not load: its one line, and when it names channels, people or
    user groups by name, each looked up through Slack (one workspace's token) with the id to write."""
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.runtime.check import TIMEOUT_SECONDS, Line, policy_file
    from bot.runtime.name_lookup import names_in, resolve

    names = names_in(policy_file(settings.config_file))
    lines = [Line("block", str(problem))]
    if names and settings.slack_bot_token:
        client = AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url, timeout=TIMEOUT_SECONDS)
        try:
            lines += await resolve(client, names)
        except SlackUnreachable as exc:
            lines.append(Line("block", f"Slack cannot be reached to look the names up ({exc}): write the ids"))
    for line in lines:
        print(line)
    print(f"{len(lines)} problem(s) to fix before serving.")
    return 1


def serve(*, no_migrate: bool, workers: int = 1) -> int:
    """``platform-feedback serve``. ``workers`` > 1: that many serving processes share the port
    (``bot.runtime.workers``), each with its own app, outbox sender and scheduler (they take turns
    through the database), so it needs PostgreSQL and HTTP mode (ConfigError otherwise)."""
    from bot.runtime.check import policy_file, policy_summary

    settings = load_settings()
    logs.configure(secrets=settings.secrets())
    if workers != 1:
        _check_workers(workers, settings)
    policy = load_policy(settings.config_file)
    summary, warnings = policy_summary(policy, policy_file(settings.config_file))
    log.info(summary)
    for warning in warnings:
        log.warning(warning)
    if not settings.socket_mode:
        log.info(_dashboard_line(settings))
        _port_free(settings.host, settings.port)  # before migrating: a taken port is one line, not a traceback after start-up
    db = settings.database()
    _hold_locks(settings, db)
    if no_migrate:
        require_migrated(db)  # else /healthz would say 200 while every event went to the spool
    else:
        migrate_db(db)

    from bot.runtime.app import create_app
    from bot.runtime.interpreter import set_for_serving

    app, deps = create_app(settings, policy, db)
    if settings.slack_bot_token:  # OAuth: each installation's token is checked by Bolt's authorize
        asyncio.run(_token_check(app.client))
    if settings.socket_mode:
        set_for_serving()
        return asyncio.run(_socket_mode(app, deps, settings))
    import uvicorn

    if workers > 1:  # each worker process builds its own app; this one only supervises them
        from bot.runtime.workers import supervise

        db.dispose()
        return supervise(settings.host, settings.port, workers)
    from bot.runtime import lifeline
    from bot.runtime.app import serving_web_app
    from bot.runtime.http_limits import uvicorn_options

    try:  # uvicorn ends by raising the signal it caught (SIGTERM: gone at once; Ctrl-C: KeyboardInterrupt)
        uvicorn.run(serving_web_app(app, deps), host=settings.host, port=settings.port, log_level="info", log_config=None,
                    **uvicorn_options(settings))
    finally:
        lifeline.end_past_stuck_calls()
    return 0


def _dashboard_line(settings) -> str:
    """Whether /dashboard answers, said at start: while off it is a bare 404 (bot.web.dashboard)."""
    if settings.dashboard_token or settings.dashboard_trusted_header:
        how = "DASHBOARD_TOKEN" if settings.dashboard_token else f"the {settings.dashboard_trusted_header} header"
        return f"dashboard: on at /dashboard ({how})"
    return "dashboard: off (/dashboard answers 404): set DASHBOARD_TOKEN (16+ random characters) or DASHBOARD_TRUSTED_HEADER to turn it on"


def _port_free(host: str, port: int) -> None:
    """ConfigError (one line) if nothing can listen on (host, port) now. Bound with SO_REUSEADDR as
    uvicorn binds, so a port left in TIME_WAIT by the previous run is not taken for busy."""
    import socket

    from bot.runtime.settings import ConfigError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}): stop what uses it (another "
                              "`platform-feedback serve`?) or set PORT to a free port.") from None


def _hold_locks(settings, db: Database) -> None:
    """One serve per event spool, and per SQLite file (bot.runtime.instance_lock)."""
    from bot.runtime.instance_lock import hold

    hold(settings.event_spool_path.resolve(), "each instance needs its own EVENT_SPOOL_PATH: stop the other, or set "
         "EVENT_SPOOL_PATH to a file of this instance's own.")
    path = sqlite_file(db)
    if path is not None:
        hold(path.resolve(), "SQLite takes one process at a time: stop the other, or use PostgreSQL (DATABASE_URL) "
             "to run several.")


def _check_workers(workers: int, settings) -> None:
    from bot.runtime.settings import ConfigError

    if workers < 1:
        raise ConfigError(f"--workers must be 1 or more (got {workers}).")
    if settings.database_url.startswith("sqlite"):
        raise ConfigError(f"--workers {workers} needs PostgreSQL: SQLite takes one writer at a time, so run one "
                          "process on it (omit --workers) or set DATABASE_URL to a PostgreSQL database.")
    if settings.socket_mode:
        raise ConfigError(f"--workers {workers} is for HTTP mode: with SLACK_APP_TOKEN set (Socket Mode) run one process.")


async def _token_check(client) -> None:
    """auth.test before serving: a refused token stops start-up (TokenRejected: exit 2, one line);
    Slack unreachable is one warning line, and the bot starts (the outbox waits for Slack)."""
    from bot.runtime.check import auth_test

    try:
        me, _headers = await auth_test(client)
    except SlackUnreachable as exc:
        log.warning("cannot check SLACK_BOT_TOKEN now: Slack cannot be reached (%s); starting anyway", exc)
        return
    log.info("SLACK_BOT_TOKEN: bot %s in workspace %s", me.get("user_id"), me.get("team_id"))


async def _socket_mode(app, deps, settings) -> int:
    from bot.runtime.check import app_token_check
    from bot.runtime.event_gate import SpoolingSocketModeHandler

    log.info("connecting to Slack over Socket Mode (%s): no HTTP server, so no /healthz, /metrics, dashboard "
             "or tracker webhooks", settings.slack_api_url)
    delay = 1.0
    while True:  # TokenRejected ends this (exit 2); a network error waits, longer each time (up to a minute)
        try:
            await app_token_check(settings.slack_app_token, settings.slack_api_url)
            break
        except SlackUnreachable as exc:
            log.warning("Socket Mode: Slack cannot be reached (%s); trying again in %.0f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)
    # Events the database cannot take go to the local spool and are acked (bot.runtime.event_gate).
    handler = SpoolingSocketModeHandler(app, settings.slack_app_token, gate=deps.events,
                                        logger=_OneLine(logging.getLogger("slack_sdk.socket_mode"), {}))
    deps.sender.start()
    deps.scheduler.start()
    deps.events.start()
    try:
        await handler.connect_async()
        log.info("connected over Socket Mode")
        await asyncio.Event().wait()  # until the process is stopped
    finally:
        await deps.events.stop()
        deps.scheduler.stop()
        await deps.sender.stop()
        await handler.close_async()
    return 0


class _OneLine(logging.LoggerAdapter):
    """slack_sdk's Socket Mode client logs each failed reconnect with ``logger.exception`` (a full
    traceback every ping interval, ~10 s): here, one warning line each, with the error's type and text."""

    def exception(self, msg, *args, exc_info=True, **kwargs):
        self.warning(msg, *args, **kwargs)
