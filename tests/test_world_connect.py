"""Issue #27, item 7: a pulse survey whose audience channel is shared with a partner company (Slack
Connect). conversations.members lists the partner's members too; their user objects (users.info)
carry another ``team_id``, or ``is_stranger``; guests carry ``is_restricted``. None of them is DMed
the internal survey or counted as asked; the run records how many were left out and why. A
colleague in a sibling workspace of the same Enterprise Grid org is one of ours. Started with the
real command (``survey send pulse now``), on SQLite and PostgreSQL."""


import pytest
from sqlmodel import select

from bot.policy import Hosts, Policy, Survey, Triage
from storage.surveys import SurveyRecipient, SurveyRun
from tests.fake_slack import TEAM, TOKEN
from tests.slack_requests import slash_command
from tests.waiting import until

HOST, SHARED = "U0HOST0001", "C0SHARED01"
OURS = ["U0OURS0001", "U0OURS0002", "U0OURS0003"]
PARTNER = {"U0PART0001": {"team_id": "T0PARTNER1"}, "U0PART0002": {"team_id": "T0PARTNER1", "is_stranger": True},
           "U0PART0003": {"is_stranger": True}}
GUEST = {"U0GUEST001": {"is_restricted": True}, "U0GUEST002": {"is_ultra_restricted": True}}
SIBLING = "W0SIBLING1"  # a colleague whose home is another workspace of our Enterprise Grid org
PULSE = Survey.model_validate({
    "name": "pulse", "questions": [{"id": "nps", "kind": "nps", "text": "How likely are you to recommend the platform?"}],
    "audience": {"channels": [SHARED]}, "min_group": 3,
})


@pytest.fixture
def policy() -> Policy:
    return Policy(hosts=Hosts(users=[HOST]), triage=Triage(channel="C0TRIAGE01"), surveys=[PULSE])


@pytest.fixture(autouse=True)
def directory(fake_slack):
    fake_slack.tokens[TOKEN]["enterprise_id"] = "E0ORG00001"
    for user in OURS + [HOST]:
        fake_slack.users[user] = {"tz": "Europe/Berlin"}
    fake_slack.users.update(PARTNER | GUEST)
    fake_slack.users[SIBLING] = {"team_id": "T0SIBLING1", "enterprise_user": {"enterprise_id": "E0ORG00001", "teams": ["T0SIBLING1", TEAM]}}
    fake_slack.channel_members[SHARED] = OURS + list(PARTNER) + list(GUEST) + [SIBLING]


async def wait_for_open_run(bot) -> SurveyRun:
    async def open_run() -> SurveyRun | None:
        await bot.drain()
        with bot.db.session() as s:
            return s.exec(select(SurveyRun).where(SurveyRun.status == "open")).first()

    return await until(open_run, what="the survey run to open")


async def test_members_of_a_partners_workspace_and_guests_are_not_asked(bot):
    resp = await bot.post(*slash_command("survey send pulse now", fake_url=bot.fake.url, user=HOST))
    assert resp.status_code == 200
    run = await wait_for_open_run(bot)
    await bot.drain()
    with bot.db.session() as s:
        asked = set(s.exec(select(SurveyRecipient.user_id).where(SurveyRecipient.run_id == run.id)).all())
    assert asked == set(OURS) | {SIBLING}
    assert run.recipients == len(OURS) + 1
    dmed = {c.body["channel"] for c in bot.fake.calls_to("chat.postMessage") if "survey" in c.body.get("text", "").lower()}
    assert dmed.isdisjoint(set(PARTNER) | set(GUEST))
    assert "3 people of other organisations (Slack Connect)" in run.error and "2 guests" in run.error
