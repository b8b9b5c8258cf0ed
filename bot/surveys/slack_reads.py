"""The surveys' runner as the app uses it: with the real Slack reads (``slack_reads``) and the keys
that seal answers (``runner_for``). One per app, ``deps.once(runner_for)``: its listeners, its jobs
(``bot.surveys.jobs``) and the reminders' outbox hook (``handlers.outbox_hooks``) share it. Needs no
Bolt app, so ``jobs`` and ``run-job`` can build it without Slack."""

import asyncio

from slack_sdk.errors import SlackApiError

from bot.runtime.context import Deps
from bot.runtime.workspaces import NotInstalled
from bot.surveys.runner import Read, ReadError, SurveyRunner
from bot.surveys.runs import SurveyError
from bot.surveys.sealing import Keys

MAX_RATE_WAIT = 60.0


def slack_reads(deps: Deps) -> Read:
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
    """The runner with the real Slack reads and the keys that seal answers (for the app through
    ``deps.once(runner_for)``, the CLI and the benches)."""
    return SurveyRunner(deps, slack_reads(deps), Keys.from_settings(deps.settings))
