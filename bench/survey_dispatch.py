"""Survey dispatch benchmark: one pulse-survey run to N people (default 10,000) through the real
code: the audience read from a rate-limited fake Slack (conversations.members, users.list), the
recipients and their DMs written to the outbox, and the DMs sent by the real OutboxSender (rendered
by the survey's outbox hook), against a fake that allows ``--rate`` chat.postMessage calls a second
and answers 429 + Retry-After beyond that. Not run in CI.

    python -m bench.survey_dispatch [--recipients 10000] [--rate 100] [--database sqlite|postgresql]
                                    [--restart-after 3000] [--instances 1]

Prints the time to resolve the audience, the achieved DM rate as a fraction of the allowed rate,
429s, duplicates (a person DMed twice; goal 0) and misses (asked, never DMed; goal 0).
``--restart-after N`` stops the sender after N DMs and starts a new one (a deploy mid-run);
``--instances K`` runs K senders at once, each paced to rate/K (several bot instances).
"""

import argparse
import asyncio
import logging
import sys
import time
from collections import Counter

from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import col, func, select

from bench.report import fresh_database
from bench.rate_limited_slack import TOKEN
from bench.survey_fake import SurveySlackServer
from bot.runtime.app import create_app
from bot.runtime.config import Policy, Settings, Survey
from bot.runtime.outbox import OutboxSender
from handlers.surveys import SurveyRunner
from storage import surveys as store
from storage.models import OutboxMessage, OutboxStatus

CHANNEL = "C0BENCH001"
ZONES = ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC", "America/Los_Angeles", "Australia/Sydney"]
SURVEY = Survey.model_validate({
    "name": "bench", "title": "Benchmark pulse", "audience": {"channels": [CHANNEL]},
    "questions": [{"id": "nps", "kind": "nps", "text": "How likely are you to recommend the platform?"},
                  {"id": "ci", "kind": "csat", "text": "How satisfied are you with CI?"}],
})


def pending(*, session) -> int:
    return session.exec(select(func.count()).select_from(OutboxMessage).where(
        col(OutboxMessage.dedupe_key).like("survey:%"), OutboxMessage.status == OutboxStatus.pending)).one()


def statuses(*, session) -> dict[str, int]:
    rows = session.exec(select(OutboxMessage.status, func.count()).where(col(OutboxMessage.dedupe_key).like("survey:%"))
                        .group_by(OutboxMessage.status)).all()
    return {str(status): n for status, n in rows}


async def run(args) -> dict:
    with SurveySlackServer(rate=args.rate) as fake, fresh_database(args.database) as db:
        people = [f"U{i:08d}" for i in range(args.recipients)]
        fake.users.update({u: {"tz": ZONES[i % len(ZONES)]} for i, u in enumerate(people)})
        fake.users["U0BENCHBOT"] = {"is_bot": True}
        fake.channel_members[CHANNEL] = people + ["U0BENCHBOT"]
        fake.rates.update({"users.list": args.directory_rate, "conversations.members": args.directory_rate})
        settings = Settings(slack_bot_token=TOKEN, slack_signing_secret="bench-signing-secret",
                            slack_api_url=fake.url + "/api/", database_url=db.url)
        client = AsyncWebClient(token=TOKEN, base_url=settings.slack_api_url)
        _app, deps = create_app(settings, Policy(surveys=[SURVEY]), db, client=client)
        runner = SurveyRunner(deps)

        began = time.time()
        survey_run = await runner.start(SURVEY, started_by=None, deliver_now=True)
        await runner.resolve(survey_run.id)
        resolved = time.time() - began
        recipients = set(db.transact(store.recipient_ids, run_id=survey_run.id))

        def sender() -> OutboxSender:
            per = (args.sender_rate or args.rate) / args.instances
            s = OutboxSender(db, client, rates={"chat.postMessage": per}, bursts={"chat.postMessage": 1},
                             channel_rates={}, idle_seconds=0.2)
            s.hooks.update(deps.sender.hooks)
            return s

        senders = [sender() for _ in range(args.instances)]
        started = time.time()
        for s in senders:
            s.start()
        restarted = False
        try:
            while db.transact(pending):
                await asyncio.sleep(0.2)
                if args.restart_after and not restarted and len(fake.delivered) >= args.restart_after:
                    await senders[0].stop()
                    senders[0] = sender()
                    senders[0].start()
                    restarted = True
                if time.time() - started > args.timeout:
                    print(f"timed out after {args.timeout} s", file=sys.stderr)
                    break
        finally:
            for s in senders:
                await s.stop()
        counts = db.transact(statuses)
    dms = [d for d in fake.delivered if "a short survey" in d.text]
    per_person = Counter(d.channel for d in dms)
    last = max((d.at for d in dms), default=started)
    elapsed = last - started
    achieved = len(per_person) / elapsed if elapsed > 0 else 0.0
    return {
        "database": args.database,
        "recipients": len(recipients),
        "directory calls": {m: n for m, n in sorted(fake.calls.items()) if m != "chat.postMessage"},
        "resolve s (audience + queue)": round(resolved, 1),
        "allowed rate /s": args.rate,
        "sender rate /s": args.sender_rate or args.rate,
        "achieved rate /s": round(achieved, 1),
        "ratio": round(achieved / args.rate, 3),
        "429s": fake.rejected,
        "duplicates": sum(n - 1 for n in per_person.values() if n > 1),
        "misses": len(recipients - set(per_person)),
        "instances": args.instances,
        "restarted": restarted,
        "outbox": counts,
        "dispatch s (to last DM)": round(elapsed, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.survey_dispatch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=100, help="chat.postMessage calls per second the fake Slack allows")
    parser.add_argument("--sender-rate", type=float, default=None, help="the senders' pace in all (default: --rate)")
    parser.add_argument("--directory-rate", type=int, default=20, help="users.list / conversations.members calls per second")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--restart-after", type=int, default=0, help="stop the sender after this many DMs and start a new one")
    parser.add_argument("--instances", type=int, default=1, help="senders running at once, each paced to rate/instances")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = asyncio.run(run(args))
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    ok = result["ratio"] >= 0.9 and result["duplicates"] == 0 and result["misses"] == 0
    print("goal met" if ok else "goal NOT met (ratio >= 0.9, duplicates 0, misses 0)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
