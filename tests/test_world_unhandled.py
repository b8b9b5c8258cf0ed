"""Issue #27, item 9 and the rule behind it: a correctly signed request from Slack that the bot does
not act on is answered 200, logged once and counted in /metrics; never Bolt's 404 "unhandled
request", which Slack retries and counts as a failed delivery (apps failing 5% of deliveries in an
hour have their event subscriptions disabled: https://docs.slack.dev/reference/events/app_rate_limited/).

``app_rate_limited`` is Slack's notice that it is dropping the app's events for a workspace: the
operator must learn of it (a warning line, and ``pf_slack_rate_limited_notices_total`` by workspace)."""

import json
import logging

from tests.slack_requests import event_callback, interactive, signed, slash_command

# Slack's documented payload (docs.slack.dev/reference/events/app_rate_limited), verbatim.
APP_RATE_LIMITED = {
    "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
    "type": "app_rate_limited",
    "team_id": "T123456",
    "minute_rate_limited": 1518467820,
    "api_app_id": "A123456",
}


async def metrics(bot) -> str:
    return (await bot.http.get("/metrics")).text


async def test_app_rate_limited_is_acked_logged_and_counted(bot, caplog):
    body = json.dumps(APP_RATE_LIMITED)
    with caplog.at_level(logging.WARNING):
        resp = await bot.post(body, signed(body, content_type="application/json"))
    assert resp.status_code == 200
    warnings = [r.getMessage() for r in caplog.records if "app_rate_limited" in r.getMessage()]
    assert len(warnings) == 1 and "T123456" in warnings[0]
    assert 'pf_slack_rate_limited_notices_total{team="T123456"} 1.0' in await metrics(bot)


async def test_an_unsigned_rate_limit_notice_is_still_refused(bot):
    body = json.dumps(APP_RATE_LIMITED)
    headers = signed(body, content_type="application/json", secret="not-the-secret")
    assert (await bot.post(body, headers)).status_code == 401
    assert "pf_slack_rate_limited_notices_total{" not in await metrics(bot)


async def test_signed_requests_no_listener_takes_are_200_and_counted(bot, caplog):
    team_join = {"type": "team_join", "user": {"id": "U0NEW00001", "team_id": "T0TEAM001"}, "event_ts": "1700000000.000100"}
    member_joined = {"type": "member_joined_channel", "user": "U0NEW00001", "channel": "C0GENERAL1", "channel_type": "C",
                     "team": "T0TEAM001", "event_ts": "1700000000.000200"}
    unknown_action = {"type": "block_actions", "user": {"id": "U0DEV00001", "team_id": "T0TEAM001"}, "team": {"id": "T0TEAM001"},
                      "api_app_id": "A0APP00001", "trigger_id": "1.2.3", "actions": [{"action_id": "someone_elses_button", "value": "1",
                                                                                       "type": "button", "block_id": "b", "action_ts": "1"}]}
    with caplog.at_level(logging.WARNING):
        for request in (event_callback(team_join), event_callback(team_join), event_callback(member_joined), interactive(unknown_action)):
            resp = await bot.post(*request)
            assert resp.status_code == 200 and resp.content == b""
    await bot.settle()
    shown = await metrics(bot)
    assert 'pf_slack_unhandled_total{listener="event:other"} 3.0' in shown
    assert 'pf_slack_unhandled_total{listener="action:other"} 1.0' in shown
    logged = [r for r in caplog.records if "no listener takes" in r.getMessage()]
    assert len(logged) <= 2  # once per kind, not once per request


async def test_the_bots_own_command_still_answers(bot):
    resp = await bot.post(*slash_command("help", fake_url=bot.fake.url))
    assert resp.status_code == 200 and "/platform-feedback" in resp.json()["text"]
