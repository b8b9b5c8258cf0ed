"""A hostile network: malformed, oversized, wrongly encoded and unsigned bodies to every route.
Never a 500, never a write, always a clear 4xx. Property-based (hypothesis)."""

import hashlib
import hmac
import json
import time
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import func
from sqlmodel import select
from starlette.testclient import TestClient

from bot.policy import Policy
from bot.runtime.app import create_app, create_web_app
from storage.models import FrictionPoint, OutboxMessage, ProcessedEvent
from tests import tracker_requests as tr
from tests.conftest import make_settings
from tests.fake_slack import TOKEN
from tests.slack_requests import SIGNING_SECRET, signed

ROUTES = ["/slack/events", "/webhooks/github", "/webhooks/jira", "/webhooks/linear", "/webhooks/gitlab"]
HYPOTHESIS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


DASHBOARD_TOKEN = "a-dashboard-token-0123456789"


@pytest.fixture
def client(fake_slack, db):
    config = make_settings(fake_slack, db, **tr.SETTINGS, dashboard_token=DASHBOARD_TOKEN)
    app, deps = create_app(config, Policy(), db, client=AsyncWebClient(token=TOKEN, base_url=config.slack_api_url))
    with TestClient(create_web_app(app, deps, run_background=False), raise_server_exceptions=False) as http:
        yield http


def counts(db) -> tuple[int, ...]:
    with db.session() as s:
        return tuple(s.exec(select(func.count()).select_from(t)).one() for t in (FrictionPoint, OutboxMessage, ProcessedEvent))


content_types = st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain", "", "application/json; charset=latin-1"])
junk_headers = st.dictionaries(
    st.sampled_from(["x-slack-signature", "x-slack-request-timestamp", "x-hub-signature-256", "x-hub-signature",
                     "linear-signature", "x-gitlab-token", "x-github-event", "x-slack-retry-num"]),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=80),
)


@HYPOTHESIS
@given(route=st.sampled_from(ROUTES), body=st.binary(max_size=2048), ctype=content_types, headers=junk_headers)
def test_unsigned_or_garbage_bodies_get_a_4xx_and_write_nothing(client, db, route, body, ctype, headers):
    before = counts(db)
    resp = client.post(route, content=body, headers={"content-type": ctype, **headers})
    assert 400 <= resp.status_code < 500, (route, resp.status_code, resp.text[:200])
    assert counts(db) == before


@HYPOTHESIS
@given(text=st.text(max_size=400), as_json=st.booleans())
def test_signed_but_malformed_slack_bodies_never_500(client, db, text, as_json):
    body = text if as_json else urlencode({"payload": text})
    resp = client.post("/slack/events", content=body.encode(),
                       headers=signed(body, content_type="application/json" if as_json else "application/x-www-form-urlencoded"))
    assert resp.status_code < 500, resp.text[:200]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


@HYPOTHESIS
@given(kind=st.sampled_from(["block_actions", "view_submission", "message_action", "shortcut", "event_callback"]),
       action_id=st.sampled_from(["triage_assign_me", "triage_tags", "add_details", "closure_works", "closure_broken",
                                  "home_filter_status", "help_channel_resolve", "anything"]),
       junk=st.dictionaries(st.sampled_from(["user", "view", "actions", "team", "event", "trigger_id", "callback_id"]), json_values, max_size=4))
def test_signed_slack_payloads_with_missing_or_wrong_fields_never_500(client, db, kind, action_id, junk):
    payload = {"type": kind, "actions": [{"action_id": action_id, "value": "1", "type": "button"}], "callback_id": "friction_report"} | junk
    if kind == "event_callback":
        body = json.dumps({"type": kind, "event_id": "Ev1", "team_id": "T1", "event": junk.get("event", {"type": "reaction_added"})})
        headers = signed(body, content_type="application/json")
    else:
        body = urlencode({"payload": json.dumps(payload)})
        headers = signed(body, content_type="application/x-www-form-urlencoded")
    resp = client.post("/slack/events", content=body.encode(), headers=headers)
    assert resp.status_code < 500, (payload, resp.status_code)


@HYPOTHESIS
@given(route=st.sampled_from(["github", "jira", "gitlab"]), payload=json_values)
def test_correctly_signed_tracker_payloads_of_any_shape_never_500(client, db, route, payload):
    body = json.dumps(payload).encode()
    if route == "github":
        headers = {"content-type": "application/json", "x-github-event": "issues", "x-github-delivery": "d1",
                   "x-hub-signature-256": "sha256=" + tr._hex(tr.GITHUB_SECRET, body)}
    elif route == "jira":
        headers = {"content-type": "application/json", "x-hub-signature": "sha256=" + tr._hex(tr.JIRA_SECRET, body)}
    else:
        headers = {"content-type": "application/json", "x-gitlab-token": tr.GITLAB_TOKEN}
    before = counts(db)
    resp = client.post(f"/webhooks/{route}", content=body, headers=headers)
    assert resp.status_code in (200, 400), resp.text[:200]
    assert counts(db) == before  # nothing linked, so nothing to change


def test_oversized_bodies_are_refused(client, db):
    for route in ROUTES:
        resp = client.post(route, content=b"x" * 6_000_001, headers={"content-type": "application/json"})
        assert resp.status_code == 413, route


def test_metrics_count_requests_acks_and_the_outbox(client, db):
    from storage import outbox

    db.transact(outbox.enqueue, dedupe_key="m1", method="chat.postMessage", payload={"channel": "U1", "text": "x"})
    client.post("/slack/events", content=b"garbage", headers={"content-type": "application/json"})
    body = urlencode({"command": "/platform-feedback", "text": "help", "user_id": "U1", "team_id": "T1",
                      "channel_id": "C1", "trigger_id": "1.2.3", "response_url": "http://127.0.0.1:1/x"})
    assert client.post("/slack/events", content=body.encode(),
                       headers=signed(body, content_type="application/x-www-form-urlencoded")).status_code == 200
    client.post("/webhooks/github", content=b"{}", headers={"x-hub-signature-256": "sha256=00"})
    text = client.get("/metrics").text
    assert 'pf_slack_requests_total{listener="command:/platform-feedback",status="200"} 1.0' in text
    assert 'pf_slack_ack_seconds_count{listener="command:/platform-feedback"} 1.0' in text
    assert 'pf_webhooks_total{status="401",tracker="github"} 1.0' in text
    assert "pf_outbox_depth 1.0" in text


async def test_metrics_count_sends_and_slack_errors_by_code(bot):
    from storage import outbox

    bot.fake.script("chat.postMessage", (200, {"ok": False, "error": "user_not_found"}, {}))
    for i in range(2):
        bot.db.transact(outbox.enqueue, dedupe_key=f"m{i}", method="chat.postMessage", payload={"channel": "U1", "text": "x"})
    await bot.drain()
    text = (await bot.http.get("/metrics")).text
    assert 'pf_outbox_send_errors_total{error="user_not_found",method="chat.postMessage"} 1.0' in text
    assert 'pf_outbox_sent_total{method="chat.postMessage"} 1.0' in text
    assert TOKEN not in text


# ------------------------------------------------------------------ issue #14: never a 500, never a huge body


def deep(levels: int) -> str:
    return '{"type": "event_callback", "event": ' + '{"a": [' * levels + "1" + "]}" * levels + "}"


def test_non_ascii_signature_headers_are_401_not_500(client, db):
    body = b'{"type": "url_verification", "challenge": "x"}'
    good = {k: v.encode() for k, v in signed(body.decode(), content_type="application/json").items()}
    for name, value in [("x-slack-request-timestamp", "17000000²".encode("latin-1")), ("x-slack-request-timestamp", "١٢٣".encode()),
                        ("x-slack-signature", b"v0=\xe9" + b"0" * 64), ("x-slack-signature", "v0=é".encode())]:
        resp = client.post("/slack/events", content=body, headers={**good, name: value})
        assert resp.status_code == 401, (name, value, resp.status_code)


@pytest.mark.parametrize("form", [False, True])
def test_a_signed_body_nested_1000_levels_deep_is_400(client, db, form):
    body = urlencode({"payload": deep(1000)}) if form else deep(1000)
    before = counts(db)
    resp = client.post("/slack/events", content=body.encode(), headers=signed(
        body, content_type="application/x-www-form-urlencoded" if form else "application/json"))
    assert resp.status_code == 400, resp.text[:200]
    assert counts(db) == before


def test_a_body_is_refused_by_its_length_and_by_what_arrives(client):
    for route in ["/slack/events", "/healthz", "/metrics", "/dashboard"]:
        method = "POST" if route == "/slack/events" else "GET"
        assert client.request(method, route, content=b"x" * 1_000_001).status_code == 413, route
        assert client.request(method, route, content=b"x", headers={"content-length": "abc"}).status_code == 400, route

    def chunks():  # no Content-Length: streamed, and refused once past the limit
        for _ in range(40):
            yield b"y" * 100_000

    assert client.post("/slack/events", content=chunks()).status_code == 413


hostile_header_values = st.one_of(
    st.binary(max_size=60).map(lambda b: bytes(c for c in b if c not in b"\r\n\x00")),
    st.text(alphabet=st.characters(min_codepoint=0x80, max_codepoint=0xFF), max_size=30).map(lambda t: t.encode("latin-1")),
    st.just(b"9" * 8000), st.just("²³".encode("latin-1")), st.just(b""),
)
hostile_headers = st.dictionaries(
    st.sampled_from(["x-slack-signature", "x-slack-request-timestamp", "x-slack-retry-num", "authorization", "cookie",
                     "x-forwarded-proto", "x-forwarded-email", "content-type", "accept", "x-anything"]),
    hostile_header_values, max_size=5,
)
hostile_bodies = st.one_of(
    st.binary(max_size=2048), st.just(b"x" * 1_000_001), st.integers(1, 1500).map(lambda n: deep(n).encode()),
    st.just(b'{"type": "event_callback"'), st.just("é€🚀".encode("utf-16")), st.just(b"payload=%7B%7B%7B"),
)
ROUTES_OURS = [("POST", "/slack/events"), ("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/dashboard"), ("POST", "/dashboard")]


@HYPOTHESIS
@given(route=st.sampled_from(ROUTES_OURS), headers=hostile_headers, body=hostile_bodies, sign=st.booleans(),
       query=st.sampled_from(["", "?token=" + DASHBOARD_TOKEN, "?token=%FF%00", "?days=²", "?weeks=99999999999999999999"]))
def test_hostile_headers_and_bodies_never_500_and_write_nothing(client, db, route, headers, body, sign, query):
    method, path = route
    if sign:  # a correct signature over the hostile body
        ts = str(int(time.time())).encode()
        digest = hmac.new(SIGNING_SECRET.encode(), b"v0:" + ts + b":" + body, hashlib.sha256).hexdigest()
        headers = {**headers, "x-slack-request-timestamp": ts, "x-slack-signature": b"v0=" + digest.encode()}
    before = counts(db)
    resp = client.request(method, path + query, content=body, headers=headers)
    assert resp.status_code < 500, (route, resp.status_code, resp.text[:200])
    assert counts(db) == before
