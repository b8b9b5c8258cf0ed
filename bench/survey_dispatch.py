"""Survey dispatch benchmark: one pulse-survey run to N people (default 10,000) through the real
code: the audience read from a rate-limited fake Slack (conversations.members, users.list), the
recipients and their DMs written to the outbox, and the DMs sent by the real OutboxSender (rendered
by the survey's outbox hook), against a fake that allows ``--rate`` chat.postMessage calls a second
and answers 429 + Retry-After beyond that. Not run in CI.

    python -m bench.survey_dispatch [--recipients 10000] [--rate 100] [--database sqlite|postgresql]
                                    [--restart-after 3000] [--instances 1] [--rounds 1]

Prints the time to resolve the audience, the achieved DM rate as a fraction of the allowed rate
(goal >= 0.95), 429s, duplicates (a person DMed twice; goal 0) and misses (asked, never DMed; goal
0). Each round also runs the baseline, interleaved: the same DMs posted by a bare paced loop (one
aiohttp session, no database, no bot) to a fresh fake, which shows what this machine allows at the
time; and the load average before and after.
``--restart-after N`` stops the sender after N DMs and starts a new one (a deploy mid-run);
``--instances K`` runs K senders at once, each paced to rate/K (several bot instances).
"""

import argparse
import asyncio
import logging
import os
import statistics
import sys
import time
from collections import Counter

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import col, func, select

from bench.rate_limited_slack import TOKEN
from bench.report import fresh_database
from bench.survey_fake import SurveySlackProcess
from bot.policy import Policy, Survey
from bot.runtime.app import create_app
from bot.runtime.outbox import OutboxSender
from bot.runtime.settings import Settings
from bot.surveys.slack_reads import runner_for
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


def sent(db) -> int:
    return db.transact(lambda *, session: session.exec(select(func.count()).select_from(OutboxMessage).where(
        col(OutboxMessage.dedupe_key).like("survey:%"), OutboxMessage.status == OutboxStatus.sent)).one())


def statuses(*, session) -> dict[str, int]:
    rows = session.exec(select(OutboxMessage.status, func.count()).where(col(OutboxMessage.dedupe_key).like("survey:%"))
                        .group_by(OutboxMessage.status)).all()
    return {str(status): n for status, n in rows}


def people(args) -> list[str]:
    return [f"U{i:08d}" for i in range(args.recipients)]


async def baseline(args) -> tuple[float, float]:
    """The same DMs from a bare loop: paced at the sender's rate (a turn every 1/rate s, never
    bunched), at most 8 requests in flight (the sender's default), one aiohttp session. Returns
    achieved / allowed, and the CPU milliseconds per DM it took."""
    rate = args.sender_rate or args.rate
    with SurveySlackProcess(args.rate) as fake:
        url, gate = fake.url + "/api/chat.postMessage", asyncio.Semaphore(8)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession() as session:
            async def post(user: str) -> None:
                async with session.post(url, json={"channel": user, "text": "Hi, a short survey"}, headers=headers) as r:
                    await r.read()
                gate.release()

            loop, tasks = asyncio.get_running_loop(), []
            began, started, cpu = time.time(), loop.time(), time.process_time()
            for n, user in enumerate(people(args)):
                await asyncio.sleep(max(0.0, started + n / rate - loop.time()))
                await gate.acquire()
                tasks.append(asyncio.create_task(post(user)))
            await asyncio.gather(*tasks)
            cpu = time.process_time() - cpu
    elapsed = max(d.at for d in fake.delivered) - began
    return len({d.channel for d in fake.delivered}) / elapsed / args.rate, 1000 * cpu / len(fake.delivered)


async def run(args) -> dict:
    everyone = people(args)
    setup = {"users": {u: {"tz": ZONES[i % len(ZONES)]} for i, u in enumerate(everyone)} | {"U0BENCHBOT": {"is_bot": True}},
             "channel_members": {CHANNEL: everyone + ["U0BENCHBOT"]},
             "rates": {"users.list": args.directory_rate, "conversations.members": args.directory_rate}}
    fake = SurveySlackProcess(args.rate, **setup)
    with fake, fresh_database(args.database) as db:
        settings = Settings(slack_bot_token=TOKEN, slack_signing_secret="bench-signing-secret",
                            slack_api_url=fake.url + "/api/", database_url=db.url)
        client = AsyncWebClient(token=TOKEN, base_url=settings.slack_api_url)
        _app, deps = create_app(settings, Policy(surveys=[SURVEY]), db, client=client)
        runner = runner_for(deps)

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
        started, cpu = time.time(), time.process_time()
        for s in senders:
            s.start()
        restarted = False
        try:
            while db.transact(pending):
                await asyncio.sleep(0.2)
                if args.restart_after and not restarted and sent(db) >= args.restart_after:
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
        cpu = time.process_time() - cpu
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
        "CPU ms per DM (this process)": round(1000 * cpu / max(1, len(dms)), 2),
        "first DM after s": round(min((d.at for d in dms), default=started) - started, 2),
        # Where the time goes: pauses between DMs longer than 5 turns (a batch boundary, a stalled loop).
        "gaps > 5 turns (count, s)": _gaps(sorted(d.at for d in dms), 5 / args.rate),
    }


def _gaps(times: list[float], longer_than: float) -> tuple[int, float]:
    gaps = [b - a for a, b in zip(times, times[1:], strict=False) if b - a > longer_than]
    return len(gaps), round(sum(gaps), 2)


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
    parser.add_argument("--rounds", type=int, default=1, help="rounds of baseline then bot, interleaved")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results, baselines = [], []
    for n in range(args.rounds):
        ratio, cpu = asyncio.run(baseline(args))
        baselines.append(ratio)
        print(f"round {n + 1}: baseline (bare paced loop) ratio {ratio:.3f}, CPU ms per DM {cpu:.2f}")
        results.append(asyncio.run(run(args)))
        width = max(len(k) for k in results[-1])
        for key, value in results[-1].items():
            print(f"  {key:<{width}}  {value}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ratio = statistics.median(r["ratio"] for r in results)
    print(f"median ratio: bot {ratio:.3f}, baseline {statistics.median(baselines):.3f} "
          f"({args.rounds} round(s), {args.recipients} recipients, {args.database})")
    ok = ratio >= 0.95 and all(r["duplicates"] == 0 and r["misses"] == 0 for r in results)
    print("goal met" if ok else "goal NOT met (ratio >= 0.95, duplicates 0, misses 0)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
