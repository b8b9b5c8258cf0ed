"""Issue #27, emoji names as Slack sends them: a reaction is named by the emoji's short name with
its skin tone after a double colon (``+1::skin-tone-2``), and an emoji may have several names
(``thumbsup`` is ``+1``). The filing reaction and the help channel's resolve reaction match the
emoji the policy names, however it was picked; a different emoji (``admission_tickets`` is not
``ticket``) does not. Through the real app, on SQLite and PostgreSQL."""

import pytest
from pydantic import ValidationError
from sqlmodel import select

from bot.emoji_names import canonical, same_emoji
from bot.policy import HelpChannel, Hosts, Intake, Policy, Triage
from storage.models import FrictionPoint
from tests.slack_requests import event_callback, reaction_added

CHANNEL, HELP = "C0RANDOM01", "C0HELP0001"
ASKER = "U0ASKER001"


@pytest.fixture
def policy() -> Policy:
    # The policy names the thumbs-up by its alias; the resolve reaction by its canonical name.
    return Policy(intake=Intake(reaction="thumbsup"), help_channel=HelpChannel(channel=HELP, resolve_reaction="white_check_mark"),
                  hosts=Hosts(users=["U0HOST0001"]), triage=Triage(channel="C0TRIAGE01"))


def points(db) -> list[FrictionPoint]:
    with db.session() as s:
        return list(s.exec(select(FrictionPoint).order_by(FrictionPoint.id)).all())


@pytest.mark.parametrize("reaction", ["+1", "thumbsup", "+1::skin-tone-2", "thumbsup::skin-tone-6"])
async def test_the_filing_reaction_matches_any_name_and_skin_tone(bot, reaction):
    bot.fake.add_message(CHANNEL, "1700000100.000100", "the staging VPN drops hourly", user="U0AUTHOR01")
    assert (await bot.post(*event_callback(reaction_added(channel=CHANNEL, ts="1700000100.000100", reaction=reaction)))).status_code == 200
    await bot.drain()
    assert len(points(bot.db)) == 1


@pytest.mark.parametrize("reaction", ["-1", "thumbsdown", "ok_hand", "+1_custom", "plus1"])
async def test_other_emoji_file_nothing(bot, reaction):
    bot.fake.add_message(CHANNEL, "1700000100.000200", "the staging VPN drops hourly", user="U0AUTHOR01")
    await bot.post(*event_callback(reaction_added(channel=CHANNEL, ts="1700000100.000200", reaction=reaction)))
    await bot.drain()
    assert points(bot.db) == []


async def test_the_resolve_reaction_with_a_skin_tone_resolves_and_a_lookalike_does_not(bot):
    from tests.help_channel.test_help_channel import message  # the help channel's message event shape

    await bot.post(*event_callback(message("is the registry down?", ts="1700000300.000100")))
    await bot.drain()
    await bot.post(*event_callback(reaction_added(channel=HELP, ts="1700000300.000100", user=ASKER, reaction="heavy_check_mark")))
    await bot.drain()
    assert points(bot.db)[0].status == "new"  # another emoji
    await bot.post(*event_callback(reaction_added(channel=HELP, ts="1700000300.000100", user=ASKER, reaction="white_check_mark::skin-tone-3")))
    await bot.drain()
    assert points(bot.db)[0].status == "resolved"


def test_ticket_and_admission_tickets_are_two_emoji():
    assert not same_emoji("admission_tickets", "ticket") and same_emoji("ticket", ":ticket:")
    assert canonical("hankey") == canonical("poop") == canonical("shit")
    assert canonical("satisfied") == canonical("laughing")


def test_a_policy_naming_one_emoji_twice_by_two_names_is_refused():
    with pytest.raises(ValidationError, match="must differ"):
        Policy(intake=Intake(reaction="+1"), help_channel=HelpChannel(channel=HELP, resolve_reaction="thumbsup"))
