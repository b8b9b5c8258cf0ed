"""The report modal, the message shortcut and "Add details", over signed HTTP requests."""

import json

from sqlmodel import select

from storage.models import FrictionPoint, OutboxMessage
from tests.slack_requests import (
    USER,
    block_action,
    interactive,
    message_shortcut,
    modal_values,
    slash_command,
    view_submission,
)


def points(db) -> list[FrictionPoint]:
    with db.session() as s:
        return list(s.exec(select(FrictionPoint).order_by(FrictionPoint.id)).all())


async def open_modal(bot) -> dict:
    await bot.post(*slash_command("", fake_url=bot.fake.url))
    await bot.settle()
    return bot.fake.calls_to("views.open")[-1].body["view"]


async def test_submitting_the_modal_files_a_data_point_and_dms_the_reference(bot):
    view = await open_modal(bot)
    values = modal_values(
        "Can't get a staging DB", categories=["environments", "access"], severity="high", time_lost="120",
        kind="support", link="https://ci.example.com/run/7",
    )
    resp = await bot.post(*interactive(view_submission(view, values)))
    assert resp.status_code == 200 and resp.content in (b"", b"{}")
    await bot.drain()
    [point] = points(bot.db)
    assert (point.text, point.severity, point.minutes_lost, point.kind, point.source) == (
        "Can't get a staging DB", "high", 120, "support", "modal")
    assert point.link_url == "https://ci.example.com/run/7"
    assert [(t.category, t.automatic) for t in point.tags] == [("environments", False), ("access", False)]
    assert [r.user_id for r in point.reporters] == [USER]
    [dm] = bot.fake.calls_to("chat.postMessage")
    assert dm.body["channel"] == USER and f"FB-{point.id}" in dm.body["text"]


async def test_double_submit_of_the_same_view_files_once_and_dms_once(bot):
    view = await open_modal(bot)
    payload = view_submission(view, modal_values("flaky runner"), view_id="V0SAMEVIEW1")
    for _ in range(3):
        assert (await bot.post(*interactive(payload))).status_code == 200
    await bot.drain()
    assert len(points(bot.db)) == 1
    assert len(bot.fake.calls_to("chat.postMessage")) == 1


async def test_modal_errors_are_shown_in_the_modal_and_nothing_is_stored(bot):
    view = await open_modal(bot)
    cases = {
        "text": modal_values("   "),
        "text_long": modal_values("x" * 3001),
        "categories": modal_values("ok text", categories=["not-a-category"]),
    }
    for name, values in cases.items():
        resp = await bot.post(*interactive(view_submission(view, values)))
        assert resp.status_code == 200
        body = resp.json()
        assert body["response_action"] == "errors", name
        assert set(body["errors"]) == {name.split("_")[0]}, name
    await bot.drain()
    assert points(bot.db) == []
    assert bot.fake.calls_to("chat.postMessage") == []


async def test_text_over_the_limit_names_the_limit(bot):
    view = await open_modal(bot)
    resp = await bot.post(*interactive(view_submission(view, modal_values("é" * 3001))))
    assert "3,000" in resp.json()["errors"]["text"]


async def test_database_down_keeps_the_modal_open_with_an_error(bot):
    from storage.database import make_engine

    view = await open_modal(bot)
    bot.db.engine.dispose()
    bot.db.engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    resp = await bot.post(*interactive(view_submission(view, modal_values("please keep this"))))
    body = resp.json()
    assert body["response_action"] == "errors" and "try" in body["errors"]["text"].lower()


async def test_message_shortcut_prefills_the_modal_and_keeps_the_permalink(bot):
    shortcut = message_shortcut(message_text="deploys to prod hang &lt;sometimes&gt; <@U0BOB0001>", message_ts="1700000000.000200")
    assert (await bot.post(*interactive(shortcut))).status_code == 200
    await bot.settle()
    view = bot.fake.calls_to("views.open")[0].body["view"]
    text_element = view["blocks"][0]["element"]
    # What the person sees, as plain text: the mention is a name to read, not a ping to send again.
    assert text_element["initial_value"] == "deploys to prod hang <sometimes> @U0BOB0001"
    assert json.loads(view["private_metadata"]) == {"source": "shortcut", "channel_id": "C0GENERAL1", "message_ts": "1700000000.000200"}
    await bot.post(*interactive(view_submission(view, modal_values(text_element["initial_value"], categories=["deploys"]))))
    await bot.drain()
    [point] = points(bot.db)
    assert point.source == "shortcut" and point.message_ts == "1700000000.000200"
    assert point.permalink == "https://example.slack.com/archives/C0GENERAL1/p1700000000000200"


async def test_add_details_updates_the_one_line_report(bot):
    await bot.post(*slash_command("the docs search is broken", fake_url=bot.fake.url))
    await bot.settle()
    [point] = points(bot.db)
    response_url = bot.fake.url + "/response_url/details"
    for _ in range(2):  # a double click opens the form twice but changes nothing by itself
        await bot.post(*interactive(block_action("add_details", str(point.id), response_url=response_url)))
    await bot.settle()
    views = bot.fake.calls_to("views.open")
    assert len(views) == 2
    view = views[0].body["view"]
    assert view["blocks"][0]["element"]["initial_value"] == "the docs search is broken"
    await bot.post(*interactive(view_submission(view, modal_values("the docs search is broken for runbooks", categories=["docs"], severity="blocker"))))
    await bot.drain()
    [updated] = points(bot.db)
    assert updated.id == point.id and updated.severity == "blocker"
    assert updated.text.endswith("for runbooks")
    assert [(t.category, t.automatic) for t in updated.tags] == [("docs", False)]


async def test_add_details_by_someone_else_is_refused(bot):
    await bot.post(*slash_command("my own report here", fake_url=bot.fake.url))
    await bot.settle()
    [point] = points(bot.db)
    response_url = bot.fake.url + "/response_url/other"
    await bot.post(*interactive(block_action("add_details", str(point.id), response_url=response_url, user="U0STRANGER")))
    await bot.settle()
    assert bot.fake.calls_to("views.open") == []
    assert "no longer yours" in bot.fake.calls_to("response_url")[-1].body["text"]


async def test_dm_confirmation_is_in_the_outbox_with_the_data_point(bot):
    view = await open_modal(bot)
    await bot.post(*interactive(view_submission(view, modal_values("outbox check"))))
    await bot.settle()  # not drained: the DM waits in the outbox, committed with the point
    with bot.db.session() as s:
        [row] = s.exec(select(OutboxMessage)).all()
    assert row.status == "pending" and row.method == "chat.postMessage" and row.friction_point_id == points(bot.db)[0].id
