"""Creating a report's issue from its card (issue #28), through the real app: a host clicks
"Create issue" on the triage card, submits the prefilled modal, the bot creates the issue in a
fake of the tracker's API (documented shapes, tests/issue_create/fake_trackers.py) and links it
with its stable id; the card shows it; a later closure delivery DMs every reporter once. Exactly
one issue however the submission is repeated; a tracker's refusal is answered in the modal with
nothing linked."""

import json

import pytest
from sqlmodel import select

from bot.issue_create import service
from bot.issue_create.ids import IssueAction, IssueBlock
from bot.issue_create.policy import IssuePolicy, Project
from bot.policy import Hosts, Policy, Triage
from bot.triage import service as triage
from storage.models import FrictionPoint, IssueIntent, TrackerLink
from tests import tracker_requests as tr
from tests.issue_create import fake_trackers as ft
from tests.slack_requests import USER, block_actions, element_action, interactive, slash_command, view_submission

HOST, OTHER = "U0HOST0001", "U0OTHER001"
TRIAGE = "C0TRIAGE01"
PROJECTS = {"github": "acme/platform", "gitlab": "acme/runners", "jira": "NET", "linear": "DOC"}


@pytest.fixture
def trackers():
    fake, httpd = ft.serve()
    yield fake
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def policy() -> Policy:
    return Policy(hosts=Hosts(users=[HOST]), triage=Triage(channel=TRIAGE), issues=IssuePolicy(projects=[
        Project(tracker="github", project="acme/platform", areas=["ci"], labels=["platform-feedback"]),
        Project(tracker="gitlab", project="acme/runners", areas=["deploys"]),
        Project(tracker="jira", project="NET", areas=["access"], issue_type="Task"),
        Project(tracker="linear", project="DOC", areas=["docs"], labels=["platform-feedback"]),
    ]))


@pytest.fixture
def settings_overrides(trackers) -> dict:
    return {**tr.SETTINGS,
            "github_token": ft.GITHUB_TOKEN, "github_api_url": trackers.url + "/api/v3",
            "gitlab_token": ft.GITLAB_TOKEN, "gitlab_api_url": trackers.url + "/api/v4",
            "jira_base_url": trackers.url, "jira_email": ft.JIRA_EMAIL, "jira_api_token": ft.JIRA_TOKEN,
            "linear_api_key": ft.LINEAR_KEY, "linear_api_url": trackers.url + "/graphql"}


# ------------------------------------------------------------------ driving it


async def run(bot, text: str, user: str) -> None:
    await bot.post(*slash_command(text, fake_url=bot.fake.url, user=user))
    await bot.drain()


async def file(bot, text: str, user: str = USER) -> int:
    await run(bot, text, user)
    with bot.db.session() as s:
        return s.exec(select(FrictionPoint.id).order_by(FrictionPoint.id.desc())).first()


def card_of(bot, point_id: int) -> dict:
    """The card as last sent (posted, then updated in place)."""
    with bot.db.session() as s:
        ts = s.get(FrictionPoint, point_id).card_ts
    sent = [c.body for c in bot.fake.calls if c.method in ("chat.postMessage", "chat.update")
            and (c.body.get("ts") == ts or (c.method == "chat.postMessage" and c.body.get("channel") == TRIAGE
                                             and f"FB-{point_id}" in c.body.get("text", "")))]
    return sent[-1]


def button(card: dict, action_id: str) -> dict:
    return next(e for b in card["blocks"] for e in b.get("elements", []) if e.get("action_id") == action_id)


async def open_form(bot, point_id: int, user: str = HOST) -> dict:
    """Click the card's "Create issue"; the modal the bot opened."""
    create = button(card_of(bot, point_id), IssueAction.open)
    before = len(bot.fake.calls_to("views.open"))
    await bot.post(*interactive(block_actions([element_action(create)], block_id=f"triage_card:{point_id}:buttons", user=user,
                                              response_url=f"{bot.fake.url}/response_url/card", channel=TRIAGE)))
    await bot.settle()
    opened = bot.fake.calls_to("views.open")[before:]
    return opened[-1].body["view"] if opened else {}


def values(view: dict, project: str, *, title: str | None = None, labels: str | None = None) -> dict:
    """state.values as Slack fills them from the form as opened (the prefill, or the host's edits)."""
    blocks = {b.get("block_id"): b for b in view["blocks"]}
    option = next(o for o in blocks[IssueBlock.project]["element"]["options"] if o["value"] == project)
    return {
        IssueBlock.project: {IssueAction.project: {"type": "static_select", "selected_option": option}},
        IssueBlock.issue_title: {IssueAction.issue_title: {
            "type": "plain_text_input", "value": title if title is not None else blocks[IssueBlock.issue_title]["element"]["initial_value"]}},
        IssueBlock.description: {IssueAction.description: {
            "type": "plain_text_input", "value": blocks[IssueBlock.description]["element"]["initial_value"]}},
        IssueBlock.labels: {IssueAction.labels: {
            "type": "plain_text_input", "value": labels if labels is not None else blocks[IssueBlock.labels]["element"].get("initial_value")}},
    }


async def submit(bot, view: dict, project: str, user: str = HOST, view_id: str = "V0FORM0001", **kw) -> dict:
    """Submit the form; the ack's body. Settles (the create runs after the ack) and sends the outbox."""
    response = await bot.post(*interactive(view_submission(view, values(view, project, **kw), user=user, view_id=view_id)))
    assert response.status_code == 200
    ack = response.json() if response.content else {}
    await bot.drain()
    return ack


def links(bot, point_id: int) -> list[TrackerLink]:
    with bot.db.session() as s:
        return list(s.exec(select(TrackerLink).where(TrackerLink.friction_point_id == point_id)).all())


def shown(bot, view_id: str = "V0FORM0001") -> dict:
    return [c.body for c in bot.fake.calls_to("views.update") if c.body.get("view_id") == view_id][-1]["view"]


def closure_notices(bot, user: str) -> list[dict]:
    return [c.body for c in bot.fake.calls_to("chat.postMessage")
            if c.body["channel"] == user and any(b.get("block_id") == "closure_feedback" for b in c.body.get("blocks", []))]


def closure(tracker: str, link: TrackerLink) -> tuple[str, bytes, dict]:
    """The tracker's closed/done delivery for the created issue (tests/tracker_requests.py shapes)."""
    if tracker == "github":
        return "github", *tr.github("issues", tr.github_issue("acme/platform", int(link.key.rsplit("#", 1)[1])))
    if tracker == "gitlab":
        return "gitlab", *tr.gitlab("acme/runners", int(link.key.rsplit("#", 1)[1]))
    if tracker == "jira":
        return "jira", *tr.jira(link.key, "Done", issue_id=link.issue_id)
    return "linear", *tr.linear(link.key, "completed", {"stateId": "s1", "completedAt": None}, issue_id=link.issue_id)


def project_ident(tracker: str) -> str:
    return f"{tracker}:{PROJECTS[tracker]}"


# ------------------------------------------------------------------ acceptance


EXPECTED_ID = {"github": "1042", "gitlab": "309", "jira": "10007", "linear": None}


@pytest.mark.parametrize("tracker", list(PROJECTS))
async def test_a_host_creates_the_issue_from_the_card_and_the_closure_reaches_every_reporter(bot, trackers, tracker):
    first = await file(bot, "staging deploys hang for ten minutes\n@channel see <https://evil.example|this>")
    second = await file(bot, "deploys to staging stuck again", user=OTHER)
    with bot.db.session() as s, s.begin():
        triage.merge(session=s, point_id=second, into_id=first, actor=HOST, prefix="FB")
    view = await open_form(bot, first)
    assert view["title"]["text"] == "Create issue"
    ack = await submit(bot, view, project_ident(tracker), labels="platform-feedback, bug")
    assert ack["response_action"] == "update" and "Creating FB-1" in json.dumps(ack["view"])

    # The fake got one create, with the prefilled fields.
    [create] = trackers.creates(tracker)
    sent = create.body
    if tracker == "github":
        assert sent["title"] == "staging deploys hang for ten minutes" and sent["labels"] == ["platform-feedback", "bug"]
        body = sent["body"]
    elif tracker == "gitlab":
        assert sent["title"] == "staging deploys hang for ten minutes" and sent["labels"] == "platform-feedback,bug"
        body = sent["description"]
    elif tracker == "jira":
        fields = sent["fields"]
        assert fields["summary"] == "staging deploys hang for ten minutes" and fields["issuetype"] == {"name": "Task"}
        assert fields["project"] == {"key": "NET"} and fields["labels"] == ["platform-feedback", "bug"]
        body = fields["description"]
    else:
        assert sent["variables"]["input"]["teamId"] == ft.LINEAR_TEAM and sent["variables"]["input"]["labelIds"] == ["lbl-1", "lbl-2"]
        body = sent["variables"]["input"]["description"]
    assert "Reported in Slack as FB-1" in body and "2 people" in body and "FB-2" in body  # both reporters, the duplicate
    assert "medium" in body and "@channel see <https://evil.example|this>" in body
    # People's words as text: inside a literal block, never live.
    literal = "{noformat}" if tracker == "jira" else "```text"
    assert body.index(literal) < body.index("@channel") < body.rindex("{noformat}" if tracker == "jira" else "```")

    # Linked at once, with the issue's stable id; the card shows the link.
    [link] = links(bot, first)
    issue = trackers.issues[tracker][0]
    assert link.issue_id == (EXPECTED_ID[tracker] or issue["id"])
    url = issue.get("html_url") or issue.get("web_url") or issue.get("url") or f"{trackers.url}/browse/{issue.get('key')}"
    assert url in json.dumps(card_of(bot, first)) and link.url == url
    assert "issue linked" in json.dumps(card_of(bot, first))
    assert link.key in json.dumps(shown(bot))  # the modal says it was made

    # A later closure delivery DMs every reporter once (the duplicate's reporter too).
    route, body_, headers = closure(tracker, link)
    for _ in range(2):
        resp = await bot.http.post(f"/webhooks/{route}", content=body_, headers=headers)
        assert resp.status_code == 200
        await bot.drain()
    assert len(closure_notices(bot, USER)) == 1 and len(closure_notices(bot, OTHER)) == 1


async def test_a_double_click_and_a_retried_submission_leave_one_issue_and_one_link(bot, trackers):
    point_id = await file(bot, "ci cache misses on every run")
    view = await open_form(bot, point_id)
    second_view = await open_form(bot, point_id)  # a double click opened two forms
    await submit(bot, view, project_ident("github"))
    await submit(bot, second_view, project_ident("github"), view_id="V0FORM0002")
    await submit(bot, view, project_ident("github"))  # the same submission again (re-signed: Slack's retry)
    assert len(trackers.creates("github")) == 1 and len(trackers.issues["github"]) == 1
    assert len(links(bot, point_id)) == 1
    assert "Already created" in json.dumps(shown(bot, "V0FORM0002"))


async def test_two_submissions_at_once_make_one_issue(bot, trackers):
    import asyncio

    point_id = await file(bot, "flaky runners")
    view = await open_form(bot, point_id)
    trackers.late["gitlab"] = 0.5  # the first create is still under way when the second comes
    requests = [interactive(view_submission(view, values(view, project_ident("gitlab")), user=HOST, view_id=f"V0TWIN000{i}"))
                for i in (1, 2)]
    await asyncio.gather(*(bot.post(*r) for r in requests))
    await bot.drain()
    assert len(trackers.issues["gitlab"]) == 1 and len(links(bot, point_id)) == 1
    answers = [json.dumps(shown(bot, f"V0TWIN000{i}")) for i in (1, 2)]
    assert any("is creating this issue right now" in a for a in answers)


async def test_a_create_that_times_out_after_the_tracker_made_it_links_that_issue(bot, trackers, monkeypatch):
    monkeypatch.setattr(service, "TIMEOUT", 0.4)
    trackers.late["jira"] = 1.5  # Jira made the issue, then answered too late
    point_id = await file(bot, "vpn drops every hour")
    view = await open_form(bot, point_id)
    await submit(bot, view, project_ident("jira"))
    assert len(trackers.creates("jira")) == 1 and len(trackers.issues["jira"]) == 1
    [link] = links(bot, point_id)
    assert link.key == trackers.issues["jira"][0]["key"] and link.issue_id == trackers.issues["jira"][0]["id"]
    await submit(bot, view, project_ident("jira"))  # and pressing Create again changes nothing
    assert len(trackers.creates("jira")) == 1 and len(links(bot, point_id)) == 1


async def test_a_tracker_error_then_a_retry_searches_before_creating(bot, trackers):
    point_id = await file(bot, "docs search is broken")
    trackers.script("github", "create", 502, {"message": "Server Error"})
    view = await open_form(bot, point_id)
    await submit(bot, view, project_ident("github"))
    assert not links(bot, point_id) and "try again in a minute" in json.dumps(shown(bot))
    await submit(bot, view, project_ident("github"))
    kinds = [("find" if s.method == "GET" else "create") for s in trackers.seen if s.tracker == "github"]
    assert kinds == ["create", "find", "find", "create"]  # after the 502: looked (nothing), then on retry looked first
    assert len(trackers.issues["github"]) == 1 and len(links(bot, point_id)) == 1


async def test_a_403_is_answered_in_the_modal_and_nothing_is_linked(bot, trackers):
    point_id = await file(bot, "cannot deploy to prod")
    trackers.script("github", "create", 403, {"message": "Resource not accessible by personal access token",
                                              "documentation_url": "https://docs.github.com/rest/issues/issues#create-an-issue"})
    view = await open_form(bot, point_id)
    await submit(bot, view, project_ident("github"), title="Prod deploys fail")
    answer = shown(bot)
    problem = next(b for b in answer["blocks"] if b.get("block_id") == IssueBlock.problem)["text"]["text"]
    assert "HTTP 403" in problem and "Resource not accessible" in problem and "acme/platform" in problem
    assert answer.get("submit") and "Prod deploys fail" in json.dumps(answer)  # the form again, the host's words kept
    assert not links(bot, point_id)
    with bot.db.session() as s:
        assert s.exec(select(IssueIntent.state)).one() == "failed"


async def test_a_field_the_project_requires_is_answered_in_the_modal(bot, trackers):
    point_id = await file(bot, "sso login loops")
    trackers.script("jira", "create", 400, {"errorMessages": [], "errors": {"customfield_10042": "Team is required."}})
    view = await open_form(bot, point_id)
    await submit(bot, view, project_ident("jira"))
    problem = next(b for b in shown(bot)["blocks"] if b.get("block_id") == IssueBlock.problem)["text"]["text"]
    assert "requires a field" in problem and "customfield_10042: Team is required." in problem
    assert not links(bot, point_id) and not trackers.issues["jira"]


async def test_a_rate_limit_says_when_to_try_again(bot, trackers):
    point_id = await file(bot, "logs are truncated")
    trackers.script("gitlab", "create", 429, {"message": "429 Too Many Requests"}, {"Retry-After": "120"})
    view = await open_form(bot, point_id)
    await submit(bot, view, project_ident("gitlab"))
    assert "try again in 120 s" in json.dumps(shown(bot)) and not links(bot, point_id)


async def test_only_hosts_see_the_form_and_the_subcommand_opens_it(bot, trackers):
    point_id = await file(bot, "the wiki is out of date")
    assert await open_form(bot, point_id, user=USER) == {}
    assert "Only office-hours hosts" in bot.fake.calls_to("response_url")[-1].body["text"]
    before = len(bot.fake.calls_to("views.open"))
    await run(bot, f"issue FB-{point_id}", HOST)
    [opened] = bot.fake.calls_to("views.open")[before:]
    blocks = {b.get("block_id"): b for b in opened.body["view"]["blocks"]}
    assert blocks[IssueBlock.issue_title]["element"]["initial_value"] == "the wiki is out of date"


async def test_an_unconnected_tracker_says_which_setting_to_set(bot, trackers):
    bot.deps.once(service.creator_for).settings = bot.deps.settings.model_copy(update={"linear_api_key": None})
    point_id = await file(bot, "search results are stale")
    view = await open_form(bot, point_id)
    await submit(bot, view, project_ident("linear"))
    assert "set LINEAR_API_KEY" in json.dumps(shown(bot)) and not trackers.seen


async def test_the_form_is_acked_before_the_tracker_answers(bot, trackers):
    import time

    trackers.late["github"] = 2.5  # slower than Slack's 3 s would allow, with the rest of the work
    point_id = await file(bot, "artifact uploads time out")
    view = await open_form(bot, point_id)
    started = time.monotonic()
    response = await bot.post(*interactive(view_submission(view, values(view, project_ident("github")), user=HOST, view_id="V0FORM0001")))
    acked = time.monotonic() - started
    assert response.json()["response_action"] == "update" and acked < 1.5, acked
    await bot.drain()
    assert len(links(bot, point_id)) == 1 and "Created" in json.dumps(shown(bot))
