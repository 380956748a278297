"""The dashboard's HTTP side against a live gateway: login, session cookie (reads only),
security headers, static files; and the session values, sans-I/O."""

from __future__ import annotations

import http.client
import re
import urllib.parse

import pytest

from tests.admin.support import (
    TOKEN,
    TOKEN_ENV,
    admin_get,
    admin_json,
    admin_port,
    wait_admin,
    with_admin,
)
from tests.gateway.conftest import plain_config
from wardgate.admin.auth import Sessions


@pytest.fixture
def admin_gateway(upstream, gateway_factory, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    cfg = with_admin(plain_config(upstream.url))
    gw = gateway_factory(cfg)
    wait_admin(cfg)
    return gw, cfg


def request(cfg, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    c = http.client.HTTPConnection("127.0.0.1", admin_port(cfg), timeout=30)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    out = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, out, data


def login(cfg, token: str) -> tuple[int, dict[str, str], bytes]:
    return request(cfg, "POST", "/login", urllib.parse.urlencode({"token": token}).encode(),
                   {"Content-Type": "application/x-www-form-urlencoded"})


def session_cookie(headers: dict[str, str]) -> str:
    m = re.match(r"wardgate_admin=([^;]+)", headers["set-cookie"])
    assert m, headers
    return m.group(1)


def test_login_page_without_credentials_and_security_headers(admin_gateway):
    _, cfg = admin_gateway
    status, headers, body = request(cfg, "GET", "/")
    assert status == 200 and b'action="/login"' in body and b"/admin/summary" not in body
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-store"
    # the JSON API carries the headers too
    assert admin_get(cfg, "/admin/routes")[1]["x-frame-options"] == "DENY"


def test_wrong_token_refused_right_token_sets_an_hmac_session(admin_gateway):
    _, cfg = admin_gateway
    for bad in ("", "nope", TOKEN + "x", TOKEN[:-1]):
        status, headers, body = login(cfg, bad)
        assert status in (401, 422) and "set-cookie" not in headers, bad
    assert b"not the admin token" in login(cfg, "nope")[2]
    status, headers, _ = login(cfg, TOKEN)
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    value = session_cookie(headers)
    assert TOKEN not in cookie and value != TOKEN
    jar = {"Cookie": f"wardgate_admin={value}"}
    status, _, page = request(cfg, "GET", "/", headers=jar)
    assert status == 200 and b'src="/static/dashboard.js"' in page
    assert b"<script>" not in page  # no inline script: the CSP would block it
    summary = request(cfg, "GET", "/admin/summary", headers=jar)
    assert summary[0] == 200 and b'"routes":["all"]' in summary[2]


def test_cookie_never_authorises_a_reload_or_raw_token(admin_gateway):
    _, cfg = admin_gateway
    value = session_cookie(login(cfg, TOKEN)[1])
    jar = {"Cookie": f"wardgate_admin={value}"}
    assert request(cfg, "POST", "/admin/reload", headers=jar)[0] == 401
    assert admin_json(cfg, "/admin/reload", method="POST")["result"] == "ok"  # bearer: yes
    # the raw token as a cookie, a forged session, a tampered one: all refused
    issued, _, mac = value.partition(".")
    for forged in (TOKEN, f"{issued}.{'0' * 64}", f"{int(issued) + 1}.{mac}", "x" * 500):
        status, _, body = request(cfg, "GET", "/admin/summary",
                                  headers={"Cookie": f"wardgate_admin={forged}"})
        assert status == 401, forged
        assert request(cfg, "GET", "/", headers={"Cookie": f"wardgate_admin={forged}"}
                       )[2].count(b'action="/login"') == 1
    # a bad bearer beside a good cookie: the header decides
    assert request(cfg, "GET", "/admin/summary",
                   headers={**jar, "Authorization": "Bearer wrong"})[0] == 401


def test_logout_clears_the_cookie(admin_gateway):
    _, cfg = admin_gateway
    status, headers, _ = request(cfg, "POST", "/logout")
    assert status == 303 and 'wardgate_admin=""' in headers["set-cookie"]
    assert "Max-Age=0" in headers["set-cookie"]


def test_static_files_and_summary_buckets(admin_gateway, upstream):
    gw, cfg = admin_gateway
    for name, ctype in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        status, headers, body = request(cfg, "GET", f"/static/{name}")
        assert status == 200 and headers["content-type"].startswith(ctype) and len(body) > 500
    for bad in ("/static/../app.py", "/static/login.html", "/static/%2e%2e%2fauth.py"):
        assert request(cfg, "GET", bad)[0] == 404
    for _ in range(3):
        c = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        c.request("GET", "/echo")
        c.getresponse().read()
        c.close()
    s = admin_json(cfg, "/admin/summary")
    b = s["latency_buckets"]
    assert len(b["counts"]) == len(b["bounds"]) + 1 and sum(b["counts"]) == s["requests"] >= 3


def test_no_token_configured_login_says_so(upstream, gateway_factory, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    cfg = with_admin(plain_config(upstream.url))
    gateway_factory(cfg)
    wait_admin(cfg)
    status, headers, body = login(cfg, "anything")
    assert status == 401 and b"No admin token is configured" in body


def test_sessions_sans_io():
    s = Sessions(nonce=b"n" * 32, max_age_s=100)
    v = s.issue(b"tok", 1000.0)
    assert s.valid(b"tok", v, 1000.0) and s.valid(b"tok", v, 1099.0)
    assert not s.valid(b"tok", v, 1101.0)  # expired
    assert not s.valid(b"other", v, 1000.0)  # the token changed
    assert not Sessions(nonce=b"m" * 32).valid(b"tok", v, 1000.0)  # another process
    assert not s.valid(None, v, 1000.0)
    assert not s.valid(b"tok", s.issue(b"tok", 2000.0), 1000.0)  # issued in the future
    for junk in ("", ".", "abc.def", "-1." + "0" * 64, "1e3.x"):
        assert not s.valid(b"tok", junk, 1000.0)
