"""The ``platform-feedback`` command: serve, migrate."""

import argparse
import asyncio
import logging
import sys

from bot import logs
from bot.config import ConfigError, DatabaseSettings, load_policy, load_settings
from storage.database import Database, DatabaseUnavailable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="platform-feedback", description="A Slack bot for platform feedback.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the bot (HTTP, or Socket Mode when SLACK_APP_TOKEN is set)")
    serve.add_argument("--no-migrate", action="store_true", help="do not apply database migrations on start")
    sub.add_parser("migrate", help="apply database migrations (Alembic upgrade head)")
    sub.add_parser("jobs", help="list the scheduled jobs the team policy defines")
    run_job = sub.add_parser("run-job", help="run one scheduled job now (once per occurrence, as the scheduler would)")
    run_job.add_argument("name", help="a job name from `platform-feedback jobs`")
    run_job.add_argument("--at", help="the occurrence, ISO 8601 with offset (default: the one due now)")
    args = parser.parse_args(argv)

    logs.configure()
    try:
        if args.command == "migrate":
            return _migrate()
        if args.command == "jobs":
            return _jobs()
        if args.command == "run-job":
            return asyncio.run(_run_job(args.name, args.at))
        return _serve(no_migrate=args.no_migrate)
    except ConfigError as exc:
        print(f"platform-feedback: {exc}", file=sys.stderr)
        return 2
    except DatabaseUnavailable as exc:
        print(f"platform-feedback: DATABASE_URL: cannot reach the database ({exc}).", file=sys.stderr)
        return 2


def _migrate() -> int:
    db = Database(load_settings(DatabaseSettings).database_url)
    _migrate_db(db)
    print("platform-feedback: database is up to date")
    return 0


def _migrate_db(db: Database) -> None:
    from sqlalchemy.exc import OperationalError

    try:
        db.migrate()
    except OperationalError as exc:
        raise DatabaseUnavailable(" ".join(str(exc.orig).split())[:200]) from None


def _build():
    from bot.app import create_app

    settings = load_settings()
    logs.configure(secrets=settings.secrets())
    policy = load_policy(settings.config_file)
    db = Database(settings.database_url)
    app, deps = create_app(settings, policy, db)
    return db, app, deps


def _jobs() -> int:
    _db, _app, deps = _build()
    for name in sorted(deps.scheduler.jobs):
        print(name)
    return 0


async def _run_job(name: str, at: str | None) -> int:
    from datetime import datetime

    db, _app, deps = _build()
    if name not in deps.scheduler.jobs:
        print(f"platform-feedback: no job named {name!r}; `platform-feedback jobs` lists them.", file=sys.stderr)
        return 2
    try:
        occurrence = datetime.fromisoformat(at) if at else None
    except ValueError:
        print("platform-feedback: --at must be an ISO 8601 time such as 2026-11-24T14:00:00+01:00.", file=sys.stderr)
        return 2
    if occurrence is not None and occurrence.tzinfo is None:
        print("platform-feedback: --at needs a UTC offset (e.g. +00:00).", file=sys.stderr)
        return 2
    _migrate_db(db)
    ran = await deps.scheduler.run(name, occurrence)
    while await deps.sender.drain_once():  # send what the job queued before exiting
        pass
    print(f"platform-feedback: {name} {'ran' if ran else 'had already run for that occurrence'}")
    return 0


def _serve(*, no_migrate: bool) -> int:
    settings = load_settings()
    logs.configure(secrets=settings.secrets())
    policy = load_policy(settings.config_file)
    db = Database(settings.database_url)
    if not no_migrate:
        _migrate_db(db)

    from bot.app import create_app, create_web_app

    app, deps = create_app(settings, policy, db)
    if settings.socket_mode:
        return asyncio.run(_socket_mode(app, deps, settings.slack_app_token))
    import uvicorn

    uvicorn.run(create_web_app(app, deps), host=settings.host, port=settings.port, log_level="info", log_config=None)
    return 0


async def _socket_mode(app, deps, app_token: str) -> int:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    deps.sender.start()
    deps.scheduler.start()
    try:
        await AsyncSocketModeHandler(app, app_token).start_async()
    finally:
        deps.scheduler.stop()
        await deps.sender.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
