"""Pulse surveys in Slack: the answer buttons and comment modal, the CSAT follow-up buttons, a
host filing a comment, and the ``surveys`` / ``survey`` commands. Each listener parses the
payload, calls one operation from ``bot.surveys`` and renders with
``bot.surveys.blocks``; runs, reminders and closing live there (see ``bot.surveys.runs``
for how a run stays exactly-once across restarts and instances). The Slack reads a run needs to
find its audience are ``slack_reads`` below, handed to the runner."""

import asyncio
import logging
import re
from functools import partial

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import surveys as ops
from bot.intake.blocks import build_try_again
from bot.intake.service import flatten_state
from bot.references import format_ref
from bot.runtime.context import Deps
from bot.runtime.scheduler import Job, interval_slot, interval_trigger
from bot.runtime.workspaces import NotInstalled
from bot.surveys import TICK_MINUTES, ReadError, SurveyError, SurveyRunner, job_name, results_channel
from bot.surveys.blocks import (
    COMMENT_BLOCK,
    TEXT_BLOCK,
    SurveyAction,
    SurveyCallback,
    build_closed_notice,
    build_comment_modal,
    build_csat_dm,
    build_opt_out_answer,
    build_results,
    build_saved_view,
    build_survey_dm,
    build_surveys_list,
)
from bot.surveys.ids import SurveyMetadata
from bot.surveys.sealing import Keys
from bot.text import from_slack
from storage.database import DatabaseUnavailable
from storage.models import as_utc, utcnow

log = logging.getLogger(__name__)

MAX_RATE_WAIT = 60.0
NOT_A_HOST = "Only platform hosts can do that. Nothing was changed."
KEPT = "Your answers are saved, but they can no longer be changed in this survey (the bot's secret was changed since)."
USAGE = ("Usage: `/platform-feedback survey send NAME [now]` starts a run (by default each person gets it at the "
         "survey's delivery hour in their own time zone); `/platform-feedback survey results NAME` shows the latest results. "
         "`/platform-feedback surveys` lists the surveys; `surveys off` / `surveys on` stops or restarts your survey DMs.")


def slack_reads(deps: Deps) -> ops.Read:
    """The runner's Slack reads: a Web API call by the client's method name in the team policy's
    workspace, waiting out 429s (Retry-After, at most ``MAX_RATE_WAIT`` s each, 8 tries) rather
    than failing the run. Raises ``ReadError(code)`` for Slack's refusals, ``SurveyError`` when
    the app is not installed or Slack stays rate limited."""

    async def read(method: str, **kwargs) -> dict:
        try:
            client = await deps.workspaces.client()
        except NotInstalled as exc:
            raise SurveyError(str(exc)) from None
        for _ in range(8):
            try:
                return (await getattr(client, method)(**kwargs)).data
            except SlackApiError as exc:
                if exc.response.status_code != 429:
                    raise ReadError(str(exc.response.get("error"))) from None
                headers = exc.response.headers or {}
                try:
                    wait = float(headers.get("Retry-After", headers.get("retry-after", 1)))
                except (TypeError, ValueError):
                    wait = 1.0
                await asyncio.sleep(min(max(wait, 0.0), MAX_RATE_WAIT))
        raise SurveyError("Slack kept answering 429 (rate limited)")

    return read


def runner_for(deps: Deps) -> SurveyRunner:
    """The runner with the real Slack reads and the keys that seal answers (for the app, the CLI
    and the benches)."""
    return SurveyRunner(deps, slack_reads(deps), Keys.from_settings(deps.settings))


def _parts(value: object, n: int) -> list[str] | None:
    parts = value.split("|") if isinstance(value, str) else []
    return parts if len(parts) == n else None


def register(app: AsyncApp, deps: Deps, runner: SurveyRunner | None = None) -> None:
    """``runner``: the one whose keys the reminders' hook holds (``handlers.register``)."""
    policy = deps.policy
    runner = runner or runner_for(deps)
    deps.sender.quiet |= ops.QUIET_PURPOSES
    by_name = {s.name: s for s in policy.surveys}

    for survey in policy.surveys:
        if survey.schedule:
            trigger = ops.trigger_for(survey)
            job = Job(
                name=job_name(survey),
                db=deps.db,
                work=partial(ops.start_scheduled, keys=runner.keys, survey=survey, policy=policy),
                occurrence_at=lambda now, trigger=trigger: ops.latest_fire(trigger, now) or now,
                after=runner.kick,
            )
            deps.scheduler.add(job, trigger)
    if policy.surveys:
        # Not a claimed job: everything a tick does is safe to repeat and to run from several instances.
        # Due at start, however late the loaded host gets to it (issue #26, 13), then every TICK_MINUTES.
        deps.scheduler.add(Job(name="surveys.tick", db=deps.db, work=None, occurrence_at=interval_slot(TICK_MINUTES), each_instance=runner.tick),
                           interval_trigger(TICK_MINUTES), misfire_grace_seconds=None, at_start=True)
    else:
        deps.scheduler.off["surveys.tick"] = "the team policy has no surveys"

    async def tell(respond: AsyncRespond, message: dict | str) -> None:
        message = {"text": message} if isinstance(message, str) else message
        await respond(response_type="ephemeral", replace_original=False, **message)

    # ---------------------------------------------------------- answering

    @app.action(re.compile(rf"^{SurveyAction.answer}:"))
    async def on_answer(ack: AsyncAck, body: dict, action: dict, respond: AsyncRespond):
        await ack()
        parts = _parts(action.get("value"), 3)
        if not parts or not parts[0].isdigit():
            return
        run_id, question_id, raw = int(parts[0]), parts[1], parts[2]
        try:
            state = await deps.db.run(ops.record_answer, keys=runner.keys, run_id=run_id, user_id=body["user"]["id"], question_id=question_id, raw=raw)
        except DatabaseUnavailable:
            await tell(respond, build_try_again("your answer"))
            return
        if state.status == "closed":
            await tell(respond, build_closed_notice())
        elif state.status == "kept":
            await tell(respond, KEPT)
        elif state.status == "saved":
            dm = build_survey_dm(run_id=run_id, survey=state.survey, closes_at=as_utc(state.run.closes_at),
                                 results_channel=results_channel(state.survey, policy), chosen=state.chosen, texts=state.texts,
                                 comment=state.comment, saved=True)
            await respond(replace_original=True, **dm)

    @app.action(SurveyAction.comment)
    async def on_comment_button(ack: AsyncAck, body: dict, action: dict, client: AsyncWebClient, respond: AsyncRespond):
        await ack()
        value = action.get("value")
        if not isinstance(value, str) or not value.isdigit():
            return
        try:
            state = await deps.db.run(ops.current_answers, keys=runner.keys, run_id=int(value), user_id=body["user"]["id"])
        except DatabaseUnavailable:
            await tell(respond, build_try_again("your comment"))
            return
        if state.status == "closed":
            await tell(respond, build_closed_notice())
        elif state.status == "kept":
            await tell(respond, KEPT)
        elif state.status == "saved":
            view = build_comment_modal(state.run.id, state.survey, texts=state.texts, comment=state.comment)
            await client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.view(SurveyCallback.comment_modal)
    async def on_comment_submitted(ack: AsyncAck, body: dict, view: dict, client: AsyncWebClient):
        try:
            run_id = SurveyMetadata.load(view.get("private_metadata")).run_id
        except ValueError:
            await ack(response_action="errors", errors={COMMENT_BLOCK: "This form is out of date. Please open it again."})
            return
        state_values = flatten_state(view.get("state", {}).get("values"))
        texts = {block.split(":", 1)[1]: from_slack(str(v or "")).strip()[:2000]
                 for block, v in state_values.items() if block.startswith(f"{TEXT_BLOCK}:")}
        comment = from_slack(str(state_values.get(COMMENT_BLOCK) or "")).strip()[:2000]
        user = body["user"]["id"]
        try:
            state = await deps.db.run(ops.record_texts, keys=runner.keys, run_id=run_id, user_id=user, texts=texts, comment=comment)
        except DatabaseUnavailable:
            await ack(response_action="errors", errors={COMMENT_BLOCK: "We couldn't save this just now. Please press Save again in a minute."})
            return
        if state.status in ("closed", "kept"):
            await ack(response_action="errors", errors={COMMENT_BLOCK: build_closed_notice()["text"] if state.status == "closed" else KEPT})
            return
        if state.status != "saved":
            await ack(response_action="errors", errors={COMMENT_BLOCK: "This survey is not one you were asked to answer."})
            return
        await ack(response_action="update", view=build_saved_view())

    @app.action(re.compile(rf"^{SurveyAction.csat}:"))
    async def on_csat(ack: AsyncAck, body: dict, action: dict, respond: AsyncRespond):
        await ack()
        parts = _parts(action.get("value"), 2)
        if not parts or not parts[0].isdigit() or parts[1] not in {"1", "2", "3", "4", "5"}:
            return
        try:
            answered = await deps.db.run(ops.answer_csat, followup_id=int(parts[0]), user_id=body["user"]["id"], score=int(parts[1]))
        except DatabaseUnavailable:
            await tell(respond, build_try_again("your answer"))
            return
        if answered is None:
            return
        followup, point = answered
        ref = format_ref(policy.reference_prefix, point.id)
        await respond(replace_original=True, **build_csat_dm(ref, point.text, policy.csat_followup.question, followup.id,
                                                             chosen=followup.score, note=point.resolution_note))

    # ---------------------------------------------------------- hosts

    @app.action(SurveyAction.file_comment)
    async def on_file_comment(ack: AsyncAck, body: dict, action: dict, respond: AsyncRespond):
        await ack()
        user = body["user"]["id"]
        if not await deps.hosts.is_host(user):
            await tell(respond, NOT_A_HOST)
            return
        parts = _parts(action.get("value"), 2)
        if not parts:
            return
        team = (body.get("team") or {}).get("id") or body["user"].get("team_id") or ""
        try:
            message = await deps.db.run(ops.file_comment, response_id=parts[0], question_id=parts[1] or None, host=user, team_id=team, policy=policy)
        except SurveyError as exc:
            message = str(exc)
        except DatabaseUnavailable:
            message = build_try_again("that data point")["text"]
        deps.sender.wake()
        await tell(respond, message)

    async def surveys_command(user: str, args: str, respond: AsyncRespond, client: AsyncWebClient) -> None:
        word = args.strip().lower()
        try:
            if word in ("off", "on"):
                await deps.db.run(ops.set_opt_out, user_id=user, out=word == "off")
                await tell(respond, build_opt_out_answer(word == "off"))
                return
            if word not in ("", "list"):
                await tell(respond, USAGE)
                return
            live, out = await deps.db.run(ops.overview, user_id=user)
        except DatabaseUnavailable:
            await tell(respond, build_try_again("that"))
            return
        now = utcnow()
        await tell(respond, build_surveys_list(
            policy.surveys, live=live,
            next_runs={s.name: ops.next_fire(s, now) for s in policy.surveys}, opted_out=out,
        ))

    async def survey_command(user: str, args: str, respond: AsyncRespond, client: AsyncWebClient) -> None:
        words = args.split()
        if len(words) < 2 or words[0].lower() not in ("send", "results") or (words[0].lower() == "send" and len(words) > 3):
            await tell(respond, USAGE)
            return
        if not await deps.hosts.is_host(user):
            await tell(respond, NOT_A_HOST)
            return
        survey = by_name.get(words[1])
        if survey is None:
            await tell(respond, f"There is no survey named `{words[1][:40]}`; `/platform-feedback surveys` lists them.")
            return
        try:
            if words[0].lower() == "send":
                now = len(words) == 3 and words[2].lower() == "now"
                run = await runner.start(survey, started_by=user, deliver_now=now)
                when = "now" if now else f"at {survey.delivery_hour:02d}:00 in each person's own time zone"
                await tell(respond, f"Started {survey.name} (run {run.id}). I'm finding who to ask; the DMs go out {when}.")
                runner.kick()
                return
            results = await deps.db.run(ops.latest_results, survey=survey.name)
            if results is None:
                await tell(respond, f"{survey.name} has not run yet.")
                return
        except SurveyError as exc:
            await tell(respond, str(exc))
            return
        except DatabaseUnavailable:
            await tell(respond, build_try_again("that"))
            return
        await tell(respond, build_results(results))

    deps.commands["surveys"] = surveys_command
    deps.commands["survey"] = survey_command
