"""``/platform-feedback changelog [weeks]``: the fixes of the last weeks, to the person who asked.
The weekly post is ``bot.changelog.jobs``."""

import dataclasses
from datetime import timedelta

from slack_bolt.async_app import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.changelog.blocks import build_changelog
from bot.changelog.service import fixes
from bot.runtime import access
from bot.runtime.context import Deps, Subcommand
from storage.models import utcnow

MAX_WEEKS = 12


async def changelog_command(deps: Deps, user: str, args: str, respond: AsyncRespond, client: AsyncWebClient, trigger_id: str) -> None:
    """The issues fixed in the last ``weeks`` (default 1), each report's words as this person may read them."""
    arg = args.strip()
    if arg and not (arg.isdigit() and 1 <= int(arg) <= MAX_WEEKS):
        await respond(response_type="ephemeral", text=f"Usage: `/platform-feedback changelog [weeks]` (1 to {MAX_WEEKS}; default 1).")
        return
    end = utcnow()
    start = end - timedelta(weeks=int(arg or 1))
    found = await deps.db.run(fixes, start=start, end=end)
    reader = await access.reader(deps, user, [pid for fix in found for pid, _text in fix.points])
    found = [dataclasses.replace(fix, points=tuple((pid, reader.words(pid, text)) for pid, text in fix.points)) for fix in found]
    await respond(response_type="ephemeral", **build_changelog(deps.policy.reference_prefix, found, start=start, end=end))


COMMANDS: dict[str, Subcommand] = {"changelog": changelog_command}
