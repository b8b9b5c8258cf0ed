"""Slack ids in the team policy: a channel ``C…`` (``G…`` for private channels on older workspaces),
a person ``U…`` (``W…`` on Enterprise Grid), a user group ``S…``.

Slack's Web API takes ids, not names (https://api.slack.com/docs/conversations-api, "Channel ID";
https://api.slack.com/types/user, https://api.slack.com/types/usergroup), and a name changes when
someone renames the channel or the person. So the policy holds ids. A name written where an id
belongs (``#platform-triage``, ``@alice``, ``@platform-team``: the natural first try) is refused with
one line that says where to find the id, or to let ``platform-feedback check`` look the names up
(``bot.runtime.name_lookup``). Such an error has the pydantic type ``slack_name`` and says in its
context which kind of id was wanted and the name as written, so ``check`` can find them.
"""

import re
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

# kind -> (the id's pattern, what it is, where a person finds it in Slack)
KINDS = {
    "channel": (re.compile(r"[CG][A-Z0-9]+"), "channel id (C…)", "shown in channel details > About, at the bottom"),
    "user": (re.compile(r"[UW][A-Z0-9]+"), "member id (U…)", "from the person's profile > ⋮ > Copy member ID"),
    "usergroup": (re.compile(r"S[A-Z0-9]+"), "user group id (S…)", "from People > User groups > the group > ⋮ > Copy group ID"),
}
LOOK_UP = "or run `platform-feedback check` to look the names up"


def _checker(kind: str):
    pattern, what, where = KINDS[kind]

    def check(value: str) -> str:
        if pattern.fullmatch(value):
            return value
        name = value.strip().lstrip("#@")
        if value.strip()[:1] in "#@" or (name and not re.fullmatch(r"[A-Z0-9]+", name)):
            raise PydanticCustomError(
                "slack_name", "{shown} is a name: use the {what}, {where}; {look_up}",
                {"shown": repr(value), "written": value, "name": name, "kind": kind, "what": what, "where": where, "look_up": LOOK_UP})
        raise PydanticCustomError("slack_id", "{shown} is not a {what}: copy it {where}",
                                  {"shown": repr(value), "what": what, "where": where.removeprefix("shown ")})

    return check


ChannelId = Annotated[str, AfterValidator(_checker("channel"))]
UserId = Annotated[str, AfterValidator(_checker("user"))]
UserGroupId = Annotated[str, AfterValidator(_checker("usergroup"))]
