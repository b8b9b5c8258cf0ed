"""The usage feature's per-app objects, made once per app by ``deps.once`` and shared by its
listeners, its minute's job (``bot.usage.jobs``) and the events' route (``bot.usage.endpoint``):
the settler of events after their ack (``settler_for``) and the keys that seal the answers
(``keys_for``); and ``slack_read``, the Slack reads they are given. No Bolt app: ``jobs`` and
``run-job`` build them without Slack."""

from slack_sdk.errors import SlackApiError

from bot.runtime.context import Deps
from bot.runtime.workspaces import Workspaces
from bot.surveys.sealing import Keys
from bot.usage.settling import Read, Settler, SlackRefused


def slack_read(workspaces: Workspaces) -> Read:
    """``read`` through the bot's client (``Workspaces.client()``: its reads wait out a 429 already,
    ``bot.runtime.slack_reads``); Slack's ``ok: false`` as ``SlackRefused``."""

    async def read(method: str, **kwargs) -> dict:
        client = await workspaces.client()
        try:
            return (await getattr(client, method)(**kwargs)).data
        except SlackApiError as exc:
            raise SlackRefused(exc.response.get("error") if exc.response is not None else None) from None

    return read


def settler_for(deps: Deps) -> Settler:
    """The app's settler: events' after-ack work (``deps.once(settler_for)``)."""
    return Settler(db=deps.db, policy=deps.policy.usage, read=slack_read(deps.workspaces))


def keys_for(deps: Deps) -> Keys:
    """The keys that seal the question's answers (``deps.once(keys_for)``: one per app, so a random
    key, when the settings give no secret, is the same for the listeners and the job)."""
    return Keys.from_settings(deps.settings)
