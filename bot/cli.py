"""The ``platform-feedback`` command: serve, migrate."""

import argparse
import asyncio
import logging
import sys

from bot.config import ConfigError, DatabaseSettings, load_policy, load_settings
from storage.database import Database, DatabaseUnavailable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="platform-feedback", description="A Slack bot for platform feedback.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the bot (HTTP, or Socket Mode when SLACK_APP_TOKEN is set)")
    serve.add_argument("--no-migrate", action="store_true", help="do not apply database migrations on start")
    sub.add_parser("migrate", help="apply database migrations (Alembic upgrade head)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "migrate":
            return _migrate()
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


def _serve(*, no_migrate: bool) -> int:
    settings = load_settings()
    policy = load_policy(settings.config_file)
    db = Database(settings.database_url)
    if not no_migrate:
        _migrate_db(db)

    from bot.app import create_app, create_web_app

    app, deps = create_app(settings, policy, db)
    if settings.socket_mode:
        return asyncio.run(_socket_mode(app, deps, settings.slack_app_token))
    import uvicorn

    uvicorn.run(create_web_app(app, deps), host=settings.host, port=settings.port, log_level="info")
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
