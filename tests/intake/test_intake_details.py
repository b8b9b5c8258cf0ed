"""Add details: a reporter's changes to their own open report are kept in its history and refresh
its card; once a host has triaged it, impact and areas are the hosts'; a closed report cannot be
edited; the submit checks again whose report it is (``private_metadata`` comes back from the client)."""

from sqlmodel import select

from bot.triage import service as triage
from storage import friction
from storage.models import FrictionChange, FrictionPoint, OutboxMessage
from tests.slack_requests import block_action, interactive, modal_values, slash_command, view_submission

HOST = "U0HOST0001"


def point_and_history(db, point_id: int) -> tuple[FrictionPoint, list[tuple[str, str | None, str | None, str | None]]]:
    with db.session() as s:
        point = s.get(FrictionPoint, point_id)
        rows = s.exec(select(FrictionChange).where(FrictionChange.friction_point_id == point_id)
                      .where(FrictionChange.action == "details").order_by(FrictionChange.id)).all()
        return point, [(r.note, r.old, r.new, r.actor) for r in rows]


def card_syncs(db, point_id: int) -> list[OutboxMessage]:
    with db.session() as s:
        return list(s.exec(select(OutboxMessage).where(OutboxMessage.friction_point_id == point_id)
                           .where(OutboxMessage.method == "chat.update")).all())


async def filed_with_form(bot, text: str, *, user: str = "U0REPORTER") -> tuple[int, dict]:
    """File a one-line report as ``user``, then open its Add details form: (point id, the form)."""
    await bot.post(*slash_command(text, fake_url=bot.fake.url, user=user))
    await bot.settle()
    with bot.db.session() as s:
        point_id = s.exec(select(FrictionPoint.id).where(FrictionPoint.text == text)).one()
    # The card is on the triage channel already, so a change has a card to refresh.
    bot.db.transact(friction.set_card, point_id=point_id, channel="C0TRIAGE01", ts="1700000000.000900")
    form = await open_form(bot, point_id, user)
    assert form is not None
    return point_id, form


async def open_form(bot, point_id: int, user: str) -> dict | None:
    before = len(bot.fake.calls_to("views.open"))
    url = bot.fake.url + f"/response_url/details-{point_id}"
    await bot.post(*interactive(block_action("add_details", str(point_id), response_url=url, user=user)))
    await bot.settle()
    views = bot.fake.calls_to("views.open")
    return views[-1].body["view"] if len(views) > before else None


async def submit(bot, form: dict, values: dict, *, user: str = "U0REPORTER") -> dict | None:
    """The JSON the bot acked the submit with (None: a plain ack, the modal closes)."""
    resp = await bot.post(*interactive(view_submission(form, values, user=user)))
    assert resp.status_code == 200
    await bot.settle()
    return resp.json() if resp.content else None


async def test_details_before_triage_replace_the_guesses_and_are_kept_in_the_history(bot):
    point_id, form = await filed_with_form(bot, "the docs search is broken")
    assert await submit(bot, form, modal_values("the docs search is broken for runbooks", categories=["docs"],
                                                severity="blocker")) is None
    point, history = point_and_history(bot.db, point_id)
    assert point.severity == "blocker" and point.text == "the docs search is broken for runbooks"
    assert ("text", "the docs search is broken", "the docs search is broken for runbooks", "U0REPORTER") in history
    assert ("severity", "medium", "blocker", "U0REPORTER") in history
    assert ("categories", None, "docs", "U0REPORTER") in history
    assert len(card_syncs(bot.db, point_id)) == 1
    # The same answers again change nothing: no history, no second card update.
    form = await open_form(bot, point_id, "U0REPORTER")
    assert await submit(bot, form, modal_values("the docs search is broken for runbooks", categories=["docs"],
                                                severity="blocker")) is None
    assert len(point_and_history(bot.db, point_id)[1]) == 3 and len(card_syncs(bot.db, point_id)) == 1


async def test_after_triage_impact_and_areas_are_the_hosts_and_the_rest_is_recorded(bot):
    point_id, form = await filed_with_form(bot, "staging deploys hang at the migrate step")
    bot.db.transact(triage.set_severity, point_id=point_id, actor=HOST, severity="high", prefix="FB")
    for values, block in ((modal_values("staging deploys hang", severity="blocker"), "severity"),
                          (modal_values("staging deploys hang", severity="high", categories=["docs"]), "categories")):
        answer = await submit(bot, form, values)
        assert answer["response_action"] == "errors" and "triaged" in answer["errors"][block]
    point, history = point_and_history(bot.db, point_id)
    assert point.severity == "high" and point.text == "staging deploys hang at the migrate step" and history == []
    # Text, time lost and link still may change; each change is kept, and the card refreshed.
    assert await submit(bot, form, modal_values("staging deploys hang at migrate since Monday", severity="high",
                                                time_lost="60")) is None
    point, history = point_and_history(bot.db, point_id)
    assert point.text.endswith("since Monday") and point.minutes_lost == 60 and point.severity == "high"
    assert [h[0] for h in history] == ["text", "minutes_lost"]
    assert len(card_syncs(bot.db, point_id)) == 1


async def test_a_closed_report_cannot_be_edited_even_from_a_form_opened_before(bot):
    point_id, form = await filed_with_form(bot, "the VPN drops every hour")
    bot.db.transact(triage.resolve, point_id=point_id, actor=HOST, note="new VPN gateway", prefix="FB")
    answer = await submit(bot, form, modal_values("the VPN drops every hour, still", severity="blocker"))
    assert answer["response_action"] == "errors" and "closed" in answer["errors"]["text"]
    assert await open_form(bot, point_id, "U0REPORTER") is None
    assert "closed" in bot.fake.calls_to("response_url")[-1].body["text"]
    point, history = point_and_history(bot.db, point_id)
    assert point.text == "the VPN drops every hour" and point.severity == "medium" and history == []
    assert card_syncs(bot.db, point_id) == []


async def test_the_submit_checks_again_whose_report_it_is(bot):
    point_id, form = await filed_with_form(bot, "my own report about builds")
    # Someone else submits a form carrying this report's private_metadata (copied, or crafted).
    answer = await submit(bot, form, modal_values("not yours any more", severity="blocker"), user="U0STRANGER")
    assert answer["response_action"] == "errors" and "no longer yours" in answer["errors"]["text"]
    point, history = point_and_history(bot.db, point_id)
    assert point.text == "my own report about builds" and point.severity == "medium" and history == []
