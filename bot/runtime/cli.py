"""The ``platform-feedback`` command: serve, check, migrate, report, export and the rest (``--help``)."""

import argparse
import asyncio
import os
import sys

from bot.policy import Policy
from bot.runtime import logs, serving
from bot.runtime import usage_command as usage_cli
from bot.runtime.check import NETWORK_ERRORS, TokenRejected
from bot.runtime.config import load_policy
from bot.runtime.instance_lock import AlreadyServing
from bot.runtime.serving import NotMigrated, check_command, migrate_db, require_migrated
from bot.runtime.settings import ConfigError, DatabaseSettings, Settings, load_settings
from storage.database import Database, DatabaseUnavailable

DESCRIPTIONS = {
    # What `COMMAND --help` says beyond its one line: what it reads, what it changes, how it ends.
    "serve": "Reads SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET (HTTP) or SLACK_APP_TOKEN (Socket Mode), DATABASE_URL and "
             "the team policy (CONFIG_FILE, default ./platform-feedback.yml); applies the database "
             "migrations unless --no-migrate, then answers Slack on PORT (default 3000; /slack/events, /healthz, "
             "/metrics, /webhooks/<tracker>, /dashboard when DASHBOARD_TOKEN is set) until SIGTERM or Ctrl-C. "
             "A wrong setting stops it with one line naming it (exit 2).",
    "check": "Reads the same settings and policy as serve and asks Slack (auth.test, the scopes, each channel, "
             "person and user group the policy names; apps.connections.open for a Socket Mode app token), "
             "printing one line each. Changes nothing. Exit 0 when ready, 1 when something blocks (✗).",
    "jobs": "Reads the settings (DATABASE_URL) and the team policy (CONFIG_FILE) and prints one line per job: its name and "
            "when it runs, or off and why. No Slack credentials needed; reads no database, posts nothing.",
    "run-job": "Reads DATABASE_URL and the team policy, applies the migrations, runs the job for its occurrence (once: "
               "a second run for the same one does nothing) and sends what it queued when SLACK_BOT_TOKEN is set "
               "(else the running bot sends it). An unknown or switched-off job: one line, exit 2.",
    "migrate": "Applies the database migrations to DATABASE_URL (default: ./platform-feedback.db, SQLite) and says "
               "how many it applied to which database. Run it once before starting several instances with "
               "serve --no-migrate. Safe to run again: an up-to-date database is left as it is.",
}


class _Described:
    """``add_subparsers()``'s action, whose parsers also show their help line (and a longer
    ``DESCRIPTIONS`` entry) under ``COMMAND --help``, not only the usage."""

    def __init__(self, action):
        self._action = action

    def add_parser(self, name: str, **kwargs):
        if "help" in kwargs and "description" not in kwargs:
            line = kwargs["help"][0].upper() + kwargs["help"][1:] + "."
            kwargs["description"] = f"{line} {DESCRIPTIONS[name]}" if name in DESCRIPTIONS else line
        return self._action.add_parser(name, **kwargs)


def main(argv: list[str] | None = None) -> int:
    from importlib.metadata import PackageNotFoundError, version

    parser = argparse.ArgumentParser(prog="platform-feedback", description="A Slack bot for platform feedback.")
    try:
        parser.add_argument("--version", action="version", version=f"%(prog)s {version('platform-feedback')}")
    except PackageNotFoundError:  # run from a source tree that was never installed
        parser.add_argument("--version", action="version", version="%(prog)s (not installed)")
    sub = _Described(parser.add_subparsers(dest="command", required=True))
    serve = sub.add_parser("serve", help="run the bot (HTTP, or Socket Mode when SLACK_APP_TOKEN is set)")
    serve.add_argument("--no-migrate", action="store_true", help="do not apply database migrations on start")
    serve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="serving processes sharing the port (default 1; more than 1 needs PostgreSQL and HTTP mode)")
    sub.add_parser("init", help="write the example team policy (platform-feedback.yml) and .env here, never over a file, "
                                "and print the Slack app manifest")
    sub.add_parser("check", help="ask Slack about the token, scopes, channels, people and user groups the settings and policy name")
    sub.add_parser("migrate", help="apply database migrations (Alembic upgrade head)")
    sub.add_parser("jobs", help="list the scheduled jobs, when each runs, and which are off and why (needs only DATABASE_URL)")
    run_job = sub.add_parser("run-job", help="run one scheduled job now (once per occurrence, as the scheduler would; needs only DATABASE_URL)")
    run_job.add_argument("name", help="a job name from `platform-feedback jobs`")
    run_job.add_argument("--at", help="the occurrence, ISO 8601 with offset (default: the one due now)")
    report_parser = sub.add_parser("report", help="top friction and loop numbers (needs only DATABASE_URL)")
    report_parser.add_argument("--days", type=int, help="the window in days, 1-365 (default: insight.window_days)")
    report_parser.add_argument("--focus", action="store_true", help="the quarter's focus instead: each item's baseline against now, pulse before/after")
    report_format = report_parser.add_mutually_exclusive_group()
    report_format.add_argument("--json", action="store_const", const="json", dest="format", help="as JSON")
    report_format.add_argument("--csv", action="store_const", const="csv", dest="format", help="as CSV (section,name,label,value,previous)")
    export = sub.add_parser("export", help="every data point as one CSV row, or all data as JSON (needs only DATABASE_URL)")
    export_format = export.add_mutually_exclusive_group(required=True)
    export_format.add_argument("--csv", metavar="FILE", dest="csv_file", help="data points as CSV ('-': standard output)")
    export_format.add_argument("--json", metavar="FILE", dest="json_file",
                               help="every table as JSON, for a backup or a move (`platform-feedback import --json` reads "
                                    "it back) ('-': standard output)")
    importing = sub.add_parser("import", help="read back what export --json wrote, into an empty database or the one it "
                                              "came from (needs only DATABASE_URL)")
    importing.add_argument("--json", metavar="FILE", dest="json_file", required=True,
                           help="a file written by `platform-feedback export --json` ('-': standard input)")
    forget = sub.add_parser("forget", help="remove or anonymise everything about one person (needs only DATABASE_URL)")
    forget.add_argument("user_id", help="the person's Slack user id, e.g. U012ABCDEF")
    sub.add_parser("purge", help="delete closed reports older than retention.friction_days now")
    survey = sub.add_parser("survey", help="pulse surveys")
    survey_sub = survey.add_subparsers(dest="survey_command", required=True)
    survey_send = survey_sub.add_parser("send", help="start a run of a survey now (its DMs go at each person's delivery hour)")
    survey_send.add_argument("name", help="a survey name from the team policy")
    survey_send.add_argument("--now", action="store_true", help="send the DMs at once instead of at each person's delivery hour")
    usage_cli.add_parser(sub)
    demo = sub.add_parser("demo", help="fill a local SQLite file with a six-month sample and serve the dashboard on 127.0.0.1 (no Slack needed)")
    demo.add_argument("--port", type=int, default=8050, help="the port on 127.0.0.1 (default 8050)")
    demo.add_argument("--db", default="platform-feedback-demo.db", metavar="FILE", help="the SQLite file (filled only if it has no data points yet)")
    args = parser.parse_args(argv)

    logs.configure()
    try:
        code = _run(args)
        sys.stdout.flush()  # here, not at exit: a reader that went away is seen while it can be handled
        return code
    except BrokenPipeError:
        # `report --csv | head`: the reader stopped reading and wants no more; nothing went wrong here.
        # Standard output now goes nowhere, so the interpreter's last flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _run(args) -> int:
    try:
        if args.command == "migrate":
            return _migrate()
        if args.command == "init":
            from pathlib import Path

            from bot.runtime.init_command import init

            return init(Path.cwd())
        if args.command == "check":
            return asyncio.run(check_command())
        if args.command == "jobs":
            return _jobs()
        if args.command == "run-job":
            return asyncio.run(_run_job(args.name, args.at))
        if args.command == "survey":
            return asyncio.run(_survey_send(args.name, now=args.now))
        if args.command == "report":
            from bot.runtime import report  # the analytics are imported only by the commands that use them

            db, policy = _offline()
            return report.focus_report(db, policy, args.format) if args.focus else report.report(db, policy, args.days, args.format)
        if args.command == "export":
            return _export(args.csv_file) if args.csv_file else _export_json(args.json_file)
        if args.command == "import":
            return _import_json(args.json_file)
        if args.command == "forget":
            return _forget(args.user_id)
        if args.command == "purge":
            return _purge()
        if args.command == "usage":
            return usage_cli.run(args)
        if args.command == "demo":
            from bot.runtime.demo import run_demo

            return run_demo(port=args.port, db_file=args.db)
        return serving.serve(no_migrate=args.no_migrate, workers=args.workers)
    except (ConfigError, NotMigrated, TokenRejected, AlreadyServing) as exc:  # each says in one line what to do
        print(f"platform-feedback: {exc}", file=sys.stderr)
        return 2
    except DatabaseUnavailable as exc:
        print(f"platform-feedback: DATABASE_URL: cannot reach the database ({exc}).", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: stopped, as asked (Socket Mode, demo); no traceback
        return 130


def _migrate() -> int:
    from bot.runtime.serving import migrate_and_say

    db = load_settings(DatabaseSettings).database()
    print(f"platform-feedback: {migrate_and_say(db)}")
    return 0


def _build():
    """The app and its wiring, as ``serve`` builds them (nothing started)."""
    from bot.runtime.app import create_app

    settings = load_settings(Settings)
    logs.configure(secrets=settings.secrets())
    db = settings.database()
    app, deps = create_app(settings, load_policy(settings.config_file), db)
    return db, app, deps


def _build_offline():
    """For the commands that answer no Slack request (``jobs``, ``run-job``): the features' ``Deps``
    and their jobs, without the Bolt app; the Slack credentials are optional (OfflineSettings)."""
    import handlers
    from bot.runtime.app import create_deps
    from bot.runtime.settings import OfflineSettings

    settings = load_settings(OfflineSettings)
    logs.configure(secrets=settings.secrets())
    db = settings.database()
    deps = create_deps(settings, load_policy(settings.config_file), db)
    handlers.schedule(deps)
    return db, deps


def _jobs() -> int:
    """One line per job: its name and when it runs, or "off:" and why (the jobs a feature would
    run with other settings). Builds the wiring only: no database, no Slack."""
    from bot.runtime.scheduler import in_words

    _db, deps = _build_offline()
    scheduler = deps.scheduler
    lines = {name: in_words(scheduler.triggers[name]) for name in scheduler.jobs}
    lines |= {name: f"off: {why}" for name, why in scheduler.off.items() if name not in lines}
    width = max(map(len, lines), default=0)
    for name in sorted(lines):
        print(f"{name:<{width}}  {lines[name]}")
    return 0


async def _run_job(name: str, at: str | None) -> int:
    from datetime import datetime

    db, deps = _build_offline()
    if name not in deps.scheduler.jobs:
        why = deps.scheduler.off.get(name)
        if why:
            print(f"platform-feedback: {name} is off ({why}).", file=sys.stderr)
        else:
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
    migrate_db(db)
    before = await db.run(_queued_since, after_id=None)  # the newest outbox id before the job
    ran = await deps.scheduler.run(name, occurrence)
    can_post = deps.settings.can_post
    while can_post and await deps.sender.drain_once():  # send what the job queued before exiting
        pass
    queued, pending, failed = await db.run(_queued_since, after_id=before)
    if not ran:
        print(f"platform-feedback: {name} had already run for that occurrence")
    elif not queued:
        print(f"platform-feedback: {name} ran (nothing to post)")
    elif not can_post:
        print(f"platform-feedback: {name} ran; {queued} message(s) queued (no SLACK_BOT_TOKEN here: the running bot sends them)")
    elif pending:
        # Slack did not take them yet (unreachable, rate limited, or due later): the running bot's sender sends them.
        print(f"platform-feedback: {name} ran; {pending} of {queued} message(s) queued, not sent yet (the running bot sends them)")
    elif failed:
        print(f"platform-feedback: {name} ran; {failed} of {queued} message(s) refused by Slack (see the log)")
    else:
        print(f"platform-feedback: {name} ran; {queued} message(s) sent")
    return 0


def _queued_since(*, session, after_id):
    """``after_id`` None: the newest outbox message id (0: none). Else (messages queued after it, how many still pending)."""
    from sqlmodel import func, select

    from storage.models import OutboxMessage, OutboxStatus

    if after_id is None:
        return session.exec(select(func.max(OutboxMessage.id))).one() or 0
    rows = session.exec(select(OutboxMessage.status).where(OutboxMessage.id > after_id)).all()
    return len(rows), rows.count(OutboxStatus.pending), rows.count(OutboxStatus.failed)


async def _survey_send(name: str, *, now: bool) -> int:
    from slack_sdk.errors import SlackApiError

    from bot.surveys.runs import SurveyError
    from bot.surveys.slack_reads import runner_for
    from storage import surveys as store

    db, app, deps = _build()
    survey = next((s for s in deps.policy.surveys if s.name == name), None)
    if survey is None:
        known = ", ".join(s.name for s in deps.policy.surveys) or "none"
        print(f"platform-feedback: no survey named {name!r} in the team policy (surveys: {known}).", file=sys.stderr)
        return 2
    migrate_db(db)
    runner = deps.once(runner_for)  # the app's one runner: its keys seal what it sends
    try:
        run = await runner.start(survey, started_by=None, deliver_now=now)
    except SurveyError as exc:
        print(f"platform-feedback: {exc}", file=sys.stderr)
        return 1
    try:
        await runner.resolve(run.id)  # if this stops half-way, the running bot carries on (the run stays "resolving")
    except (SurveyError, SlackApiError, *NETWORK_ERRORS) as exc:
        reason = exc.response.get("error") if isinstance(exc, SlackApiError) else str(exc) or type(exc).__name__
        print(f"platform-feedback: {name} run {run.id} started, but its audience could not be read from Slack "
              f"({' '.join(str(reason).split())[:200]}): the running bot retries and sends the DMs.", file=sys.stderr)
        return 1
    count = await db.run(store.recipient_count, run_id=run.id)
    when = "now" if now else f"at {survey.delivery_hour:02d}:00 in each person's own time zone"
    print(f"platform-feedback: {name} run {run.id} started for {count} people; the running bot sends the DMs {when}.")
    return 0


# ------------------------------------------------------------------ report, export (database only)


def _offline() -> tuple[Database, Policy]:
    """The database (migrated, or exit with one line saying to migrate) and the team policy, for
    the commands that only read and write the database."""
    from bot.runtime.settings import ReportSettings

    settings = load_settings(ReportSettings)
    policy = load_policy(settings.config_file)
    db = settings.database()
    require_migrated(db)  # before any output: no CSV header, then an error
    return db, policy


def _export(path: str) -> int:
    import csv
    from contextlib import nullcontext

    from bot.insight import service as insight

    db, policy = _offline()

    def write(session, out) -> int:
        from bot.runtime.report import SafeCsv

        writer = SafeCsv(csv.writer(out))
        writer.writerow(insight.EXPORT_COLUMNS)
        count = 0
        for row in insight.export_rows(session=session, prefix=policy.reference_prefix):
            writer.writerow([
                row.ref, row.created.isoformat(), row.status, row.severity, "" if row.minutes_lost is None else row.minutes_lost,
                row.kind, row.source, ";".join(row.categories), row.reporters, " ".join(row.links),
                row.first_response.isoformat() if row.first_response else "", row.resolved.isoformat() if row.resolved else "",
                row.text,
            ])
            count += 1
        return count

    try:
        target = nullcontext(sys.stdout) if path == "-" else open(path, "w", newline="", encoding="utf-8")
    except OSError as exc:
        print(f"platform-feedback: cannot write {path}: {exc.strerror}.", file=sys.stderr)
        return 2
    with target as out:
        count = db.background(write, out=out)
    print(f"platform-feedback: exported {count} data points to {path}", file=sys.stderr)
    return 0


def _export_json(path: str) -> int:
    from contextlib import nullcontext

    from storage.privacy import export_json

    db, _policy = _offline()
    try:
        target = nullcontext(sys.stdout) if path == "-" else open(path, "w", encoding="utf-8")
    except OSError as exc:
        print(f"platform-feedback: cannot write {path}: {exc.strerror}.", file=sys.stderr)
        return 2
    with target as out:
        counts = db.background(export_json, out=out)
    summary = ", ".join(f"{n} {name}" for name, n in counts.items() if n) or "nothing"
    print(f"platform-feedback: exported {summary}", file=sys.stderr)
    return 0


def _import_json(path: str) -> int:
    import json
    from pathlib import Path

    from sqlalchemy.exc import IntegrityError

    from bot.runtime.serving import safe_url
    from storage.transfer import ImportRefused, import_json

    try:
        document = json.load(sys.stdin) if path == "-" else json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        print(f"platform-feedback: cannot read {path}: {exc.strerror}.", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"platform-feedback: {path} is not JSON ({exc}): give the file `platform-feedback export --json` wrote.",
              file=sys.stderr)
        return 2
    db = load_settings(DatabaseSettings).database()
    require_migrated(db)
    try:
        done = db.transact(import_json, document=document)
    except ImportRefused as exc:
        print(f"platform-feedback: nothing imported: {exc}.", file=sys.stderr)
        return 2
    except IntegrityError as exc:  # a row that clashes with one there under another key: the whole import is undone
        print(f"platform-feedback: nothing imported: a row clashes with one in the database "
              f"({' '.join(str(exc.orig).split())[:200]}): import into an empty database.", file=sys.stderr)
        return 2
    added = sum(a for a, _ in done.values())
    there = sum(t for _, t in done.values())
    detail = ", ".join(f"{a} {name}" for name, (a, _) in done.items() if a) or "nothing new"
    print(f"platform-feedback: imported {added} rows into {safe_url(db)} ({detail}); {there} were there already")
    return 0


def _forget(user_id: str) -> int:
    import re

    from storage.privacy import forget_user

    if not re.fullmatch(r"[UW][A-Z0-9]{2,}", user_id):
        print(f"platform-feedback: {user_id!r} is not a Slack user id (like U012ABCDEF).", file=sys.stderr)
        return 2
    db, _policy = _offline()
    # Their answers in an open survey run are under a pseudonym only the bot's secret gives.
    secret = os.environ.get("SLACK_SIGNING_SECRET") or os.environ.get("SLACK_APP_TOKEN")
    slot = None
    if secret:
        from bot.surveys.sealing import Keys

        keys = Keys(secret)
        slot = lambda run_id, nonce: keys.slot(run_id, nonce, user_id)  # noqa: E731
    else:
        print("platform-feedback: without SLACK_SIGNING_SECRET their answers in open survey runs stay (without a name) "
              "until those runs close.", file=sys.stderr)
    done = db.transact(forget_user, user_id=user_id, survey_slot=slot)
    print(f"platform-feedback: forgot {user_id}:")
    for what, count in done.items():
        print(f"  {what.replace('_', ' ')}: {count}")
    return 0


def _purge() -> int:
    from datetime import timedelta

    from storage.models import utcnow
    from storage.privacy import purge_older_than

    db, policy = _offline()
    days = policy.retention.friction_days
    if not days:
        print("platform-feedback: retention.friction_days is not set in the team policy: nothing to purge.", file=sys.stderr)
        return 2
    count = db.transact(purge_older_than, cutoff=utcnow() - timedelta(days=days))
    print(f"platform-feedback: purged {count} closed reports older than {days} days")
    return 0


if __name__ == "__main__":
    sys.exit(main())
