"""Issue #14 on the tracker routes: hostile headers and bodies get a clear 4xx, never a 500 and
never a write, with a signature and without one."""

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func
from sqlmodel import select

from storage.models import ClosureNotice, OutboxMessage, TrackerDelivery
from tests import tracker_requests as tr
from tests.closing.test_closing import deliver, file_and_link, policy, settings_overrides  # noqa: F401  # noqa: F401

SIGNATURE_HEADERS = {"github": "x-hub-signature-256", "jira": "x-hub-signature", "linear": "linear-signature",
                     "gitlab": "x-gitlab-token"}
HOSTILE = [b"sha256=\xb2\xb3", "sha256=²".encode("utf-8"), b"\xff\xfe", b"sha256=" + b"\xe9" * 64, b"\x00" * 3]


def signed(route: str, body: bytes) -> dict:
    if route == "github":
        return {"content-type": "application/json", "x-github-event": "issues",
                "x-hub-signature-256": "sha256=" + tr._hex(tr.GITHUB_SECRET, body)}
    if route == "jira":
        return {"content-type": "application/json", "x-hub-signature": "sha256=" + tr._hex(tr.JIRA_SECRET, body)}
    if route == "linear":
        return {"content-type": "application/json", "linear-signature": tr._hex(tr.LINEAR_SECRET, body)}
    return {"content-type": "application/json", "x-gitlab-token": tr.GITLAB_TOKEN}


def writes(bot) -> tuple[int, ...]:
    with bot.db.session() as s:
        return tuple(s.exec(select(func.count()).select_from(t)).one() for t in (TrackerDelivery, ClosureNotice, OutboxMessage))


@pytest.mark.parametrize("route", list(SIGNATURE_HEADERS))
async def test_non_ascii_bytes_in_signature_headers_are_a_401(bot, route):
    body = json.dumps({"webhookTimestamp": "²", "action": "closed"}).encode()
    before = writes(bot)
    for value in HOSTILE:
        headers = {**signed(route, body), SIGNATURE_HEADERS[route]: value}
        resp = await bot.http.post(f"/webhooks/{route}", content=body, headers=headers)
        assert resp.status_code == 401, (route, value, resp.status_code)
    # Non-ASCII in the other headers a route reads, with a correct signature: a clear answer.
    for name in ("x-github-event", "content-type", "x-github-delivery", "linear-delivery", "idempotency-key"):
        resp = await bot.http.post(f"/webhooks/{route}", content=body, headers={**signed(route, body), name: b"\xb2\xff"})
        assert resp.status_code < 500, (route, name, resp.status_code)
    assert writes(bot) == before


@pytest.mark.parametrize("route", list(SIGNATURE_HEADERS))
async def test_correctly_signed_bodies_nested_a_thousand_levels_are_a_400(bot, route):
    await file_and_link(bot, "staging deploys hang")
    before = writes(bot)
    for nested in ("[" * 1000 + "]" * 1000, '{"a":' * 1000 + "1" + "}" * 1000,
                   '{"action":"closed","issue":' + '{"a":' * 1000 + "1" + "}" * 1001):
        body = nested.encode()
        resp = await bot.http.post(f"/webhooks/{route}", content=body, headers=signed(route, body))
        assert resp.status_code in (400, 401), (route, resp.status_code)  # Linear: no timestamp, so 401
    form = ("payload=" + quote("[" * 1000 + "]" * 1000)).encode()
    headers = {**signed("github", form), "content-type": "application/x-www-form-urlencoded"}
    assert (await bot.http.post("/webhooks/github", content=form, headers=headers)).status_code == 400
    assert writes(bot) == before


MALFORMED = [b"", b"{", b"[]", b"null", b"\xff\xfe{}", b'{"issue": 1, "repository": "x", "action": "closed"}',
             b'{"object_kind": "issue", "project": [], "object_attributes": {"action": "close"}}',
             b'{"webhookEvent": "jira:issue_updated", "issue": {"key": 7}}',
             b'{"type": "Issue", "action": "update", "data": {"identifier": null}, "updatedFrom": {"stateId": 1}}']


@pytest.mark.parametrize("route", list(SIGNATURE_HEADERS))
async def test_correctly_signed_malformed_bodies_are_a_4xx_and_write_nothing(bot, route):
    before = writes(bot)
    for body in MALFORMED:
        resp = await bot.http.post(f"/webhooks/{route}", content=body, headers=signed(route, body))
        assert resp.status_code in (200, 400, 401), (route, body, resp.status_code)  # 200: "nothing to do"
    for form in (b"payload=", b"payload=%7B", b"other=1", b"payload=%5B%5D&payload=%5B%5D", b"%zz"):
        headers = {**signed("github", form), "content-type": "application/x-www-form-urlencoded"}
        assert (await bot.http.post("/webhooks/github", content=form, headers=headers)).status_code == 400
    assert writes(bot) == before


HYPOTHESIS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                           max_leaves=30)
shaped = st.fixed_dictionaries({}, optional={
    "action": st.sampled_from(["closed", "reopened", "transferred", "renamed", "update", "close", "merge"]),
    "issue": json_values, "repository": json_values, "pull_request": json_values, "changes": json_values,
    "object_kind": st.sampled_from(["issue", "merge_request", "work_item"]), "project": json_values,
    "object_attributes": json_values, "webhookEvent": st.just("jira:issue_updated"), "changelog": json_values,
    "type": st.just("Issue"), "data": json_values, "updatedFrom": json_values})


@HYPOTHESIS
@given(route=st.sampled_from(list(SIGNATURE_HEADERS)), payload=shaped, event=st.sampled_from(["issues", "pull_request", "repository"]))
async def test_signed_payloads_of_any_shape_never_500(bot, route, payload, event):
    body = json.dumps(payload).encode()
    headers = {**signed(route, body), "x-github-event": event}
    resp = await bot.http.post(f"/webhooks/{route}", content=body, headers=headers)
    assert resp.status_code < 500, (route, payload, resp.text)
    await bot.settle()
