"""Friction insight in Slack: ``/platform-feedback top [days]`` (the weekly digest is a job:
``bot.insight.jobs``). No other listener, so no ``register``: the subcommand is in ``COMMANDS``."""

from slack_bolt.async_app import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.insight.blocks import build_top
from bot.insight.digest import top
from bot.runtime import access
from bot.runtime.context import Deps, Subcommand


async def top_command(deps: Deps, user: str, args: str, respond: AsyncRespond, client: AsyncWebClient, trigger_id: str) -> None:
    """``/platform-feedback top [days]``: friction scores, loop health and target compliance."""
    policy = deps.policy
    arg = args.strip().removeprefix("--days").strip()
    if arg and not (arg.isdigit() and 1 <= int(arg) <= 365):
        await respond(response_type="ephemeral", text="Usage: `/platform-feedback top [days]` (1 to 365; default "
                      f"{policy.insight.window_days}).")
        return
    days = int(arg) if arg else policy.insight.window_days
    scores, health, targets = await deps.db.run(top, days=days, policy=policy)
    show_points = (await access.reader(deps, user)).host  # a list of others' words: hosts only (bot.runtime.access)
    await respond(response_type="ephemeral", **build_top(policy.reference_prefix, policy.taxonomy, scores, health, show_points=show_points,
                                                            targets=targets))


COMMANDS: dict[str, Subcommand] = {"top": top_command}
