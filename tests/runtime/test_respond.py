"""``respond`` through the app's one aiohttp session: the same answers as Bolt's, the session kept."""

import aiohttp
import pytest

from bot.runtime.respond import KeptAliveRespond


async def test_answers_go_through_the_shared_session_and_leave_it_open(fake_slack):
    sent = []
    trace = aiohttp.TraceConfig()

    async def on_request_start(_session, _context, params):
        sent.append(str(params.url))

    trace.on_request_start.append(on_request_start)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        respond = KeptAliveRespond(response_url=f"{fake_slack.url}/response_url/a", session=session)
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Filed* FB-1"}}]
        assert (await respond(response_type="ephemeral", text="Filed FB-1", blocks=blocks)).status_code == 200
        assert (await respond({"text": "again", "replace_original": False})).status_code == 200  # a whole response
        assert not session.closed and sent == [f"{fake_slack.url}/response_url/a"] * 2  # both through it, left open
    first, second = fake_slack.calls_to("response_url")
    assert first.body == {"text": "Filed FB-1", "blocks": blocks, "response_type": "ephemeral"}
    assert second.body == {"text": "again", "replace_original": False}
    with pytest.raises(ValueError):
        await KeptAliveRespond(response_url=None, session=session)("no response_url")
