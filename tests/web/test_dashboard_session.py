"""Issue #14: the dashboard's session. A fresh value per sign-in, refused by the server after 7 days,
Secure behind an HTTPS proxy; the token never in the access log."""

import time
from urllib.parse import quote

import httpx

from bot.web import dashboard
from tests.waiting import wait_for
from tests.web.test_dashboard import DASHBOARD_TOKEN, dashboard_client, serving_dashboard

WEEK = 7 * 24 * 3600


def session_cookie(response) -> tuple[str, str]:
    header = response.headers["set-cookie"]
    return header.split(";")[0].split("=", 1)[1], header


async def test_each_sign_in_gets_a_fresh_session_that_expires_on_the_server(fake_slack, db):
    async with dashboard_client(fake_slack, db, dashboard_token=DASHBOARD_TOKEN) as http:
        first, _ = session_cookie(await http.get("/dashboard", params={"token": DASHBOARD_TOKEN}))
        second, _ = session_cookie(await http.get("/dashboard", params={"token": DASHBOARD_TOKEN}))
        assert first != second
        http.cookies.clear()
        for value in (first, second):
            assert (await http.get("/dashboard", headers={"cookie": f"{dashboard.COOKIE}={value}"})).status_code == 200
        access = dashboard.Access(DASHBOARD_TOKEN)
        old = access.cookie_value(now=time.time() - WEEK - 1)  # a browser that kept it past Max-Age
        fresh = access.cookie_value(now=time.time() - WEEK + 60)
        issued, nonce, mac = fresh.split(".")
        for value, status in [(old, 401), (fresh, 200), (f"{int(time.time())}.{nonce}.{mac}", 401),  # a later date, same MAC
                              (dashboard.Access("another-token-0123456789").cookie_value(), 401), ("1.2", 401), ("²." * 3, 401)]:
            resp = await http.get("/dashboard", headers={"cookie": f"{dashboard.COOKIE}={value}".encode("latin-1")})
            assert resp.status_code == status, value


async def test_the_cookie_is_secure_behind_an_https_proxy(fake_slack, db):
    async with dashboard_client(fake_slack, db, dashboard_token=DASHBOARD_TOKEN) as http:
        _, plain = session_cookie(await http.get("/dashboard", params={"token": DASHBOARD_TOKEN}))
        _, proxied = session_cookie(await http.get("/dashboard", params={"token": DASHBOARD_TOKEN}, headers={"x-forwarded-proto": "https"}))
        assert "secure" not in plain.lower() and "secure" in proxied.lower()
        assert "httponly" in proxied.lower() and "Max-Age=604800" in proxied


def test_the_token_never_reaches_the_access_log(tmp_path):
    with serving_dashboard(tmp_path, f"sqlite:///{tmp_path}/bot.db") as base:
        with httpx.Client(timeout=30) as http:
            assert http.get(f"{base}/dashboard", params={"token": DASHBOARD_TOKEN}).status_code == 303
            assert http.get(f"{base}/dashboard?days=7&token={DASHBOARD_TOKEN}").status_code == 303
        log = wait_for(lambda: (text := (tmp_path / "serve.log").read_text(errors="replace")).count("GET /dashboard?") >= 2 and text,
                       what="both requests in the access log")
    assert "GET /dashboard?" in log  # the access log is on, and says which page
    assert DASHBOARD_TOKEN not in log and quote(DASHBOARD_TOKEN, safe="") not in log and "token=[redacted]" in log


def test_a_percent_encoded_token_name_never_reaches_the_access_log(tmp_path):
    """Issue #26 item 9: ``%74oken`` is ``token`` to the server (it signs in), so it is ``token`` to
    the redaction too; so is an encoded value, and a name in capitals or encoded twice."""
    from bot.runtime.guard import redact_query

    encoded_value = "".join(f"%{b:02X}" for b in DASHBOARD_TOKEN.encode())
    with serving_dashboard(tmp_path, f"sqlite:///{tmp_path}/bot.db") as base:
        with httpx.Client(timeout=30) as http:
            assert http.get(f"{base}/dashboard?%74oken={DASHBOARD_TOKEN}").status_code == 303  # it signs in
            assert http.get(f"{base}/dashboard?days=7&tok%65n={encoded_value}").status_code == 303
            http.get(f"{base}/dashboard?TOKEN={DASHBOARD_TOKEN}&%2574oken={DASHBOARD_TOKEN}")
        log = wait_for(lambda: (text := (tmp_path / "serve.log").read_text(errors="replace")).count("GET /dashboard?") >= 3 and text,
                       what="the three requests in the access log")
    assert "GET /dashboard?" in log
    assert DASHBOARD_TOKEN not in log and encoded_value not in log and DASHBOARD_TOKEN[:12] not in log
    assert "days=7&token=[redacted]" in log
    assert redact_query("/x?a=1;%53tate=s&code=c&codex=2") == "/x?a=1;State=[redacted]&code=[redacted]&codex=2"
