"""DPoP in a real browser (Chromium via Playwright): the issuer's /dpop.js makes a
non-extractable P-256 key in IndexedDB, signs in with cookie mode and a proof, and calls a
`dpop: required` cookie route through the real gateway with a fresh proof each time. The
bound cookie, copied out of the browser, is refused without the key."""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt as pyjwt
import pytest

from tests.issuer.support import IssuerProcess, base_config, free_port
from tests.support.dpop import DpopKey
from tests.support.gateway import GatewayProcess
from tests.support.upstream import Upstream
from wardgate.issuer import cookies as names

from .test_gateway_dpop import outcome

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium not installed")]

PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>app</title>
<script src="/dpop.js"></script></head><body>app</body></html>"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One origin (the gateway) in front of the issuer's /login, /session/refresh and
    /dpop.js, the application's page and its API (cookie token, DPoP required)."""
    work = tmp_path_factory.mktemp("dpop-browser")
    gw_port = free_port()
    origin = f"http://127.0.0.1:{gw_port}"
    cfg = base_config(work, issuer=origin, keys={"algorithm": "ES256"})
    iss = IssuerProcess(cfg, work)
    iss.url = "http://127.0.0.1:" + cfg["listen"].rsplit(":", 1)[1]  # reached directly
    iss.add_user("alice", "correct horse", ["reader"])
    iss.start()
    page_srv = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=page_srv.serve_forever, daemon=True).start()
    api = Upstream("api").start()
    public = {"auth": "none"}
    gw = GatewayProcess({
        "listen": f"127.0.0.1:{gw_port}",
        # server nonces on the gateway (RFC 9449 §8): the helper must follow DPoP-Nonce
        "dpop": {"nonce": {"lifetime_s": 300}},
        "providers": [{"name": "main", "issuer": origin, "audiences": ["api"],
                       "jwks_uri": iss.url + "/.well-known/jwks.json"}],
        "upstreams": [{"name": "issuer", "targets": [iss.url]},
                      {"name": "page", "targets": [f"http://127.0.0.1:{page_srv.server_port}"]},
                      {"name": "api", "targets": [api.url]}],
        "routes": [
            {"name": "login", "match": {"path": "/login"}, "upstream": "issuer", **public},
            {"name": "refresh", "match": {"path": names.REFRESH_PATH}, "upstream": "issuer",
             **public},
            {"name": "js", "match": {"path": "/dpop.js"}, "upstream": "issuer", **public},
            {"name": "page", "match": {"path_prefix": "/app"}, "upstream": "page", **public},
            {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "api",
             "claims_to_headers": {"sub": "X-User-Id"},
             "auth": {"providers": ["main"], "token": {"cookie": names.ACCESS},
                      "dpop": "required"}},
        ]}, work)
    try:
        gw.start()
        yield {"origin": origin, "issuer": iss, "api": api, "gw": gw}
    finally:
        gw.stop()
        api.stop()
        page_srv.shutdown()
        page_srv.server_close()
        iss.stop()


@pytest.fixture(scope="module")
def page(stack: dict[str, Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            p = browser.new_context().new_page()
            p.set_default_timeout(15_000)
            p.goto(stack["origin"] + "/app/")
            yield p
        finally:
            with contextlib.suppress(Exception):
                browser.close()


def _verify(stack: dict[str, Any], token: str) -> dict[str, Any]:
    """PyJWT against the issuer's JWKS; `iss` is the gateway origin the issuer announces."""
    keyset = pyjwt.PyJWKSet.from_dict(stack["issuer"].jwks())
    header = pyjwt.get_unverified_header(token)
    return dict(pyjwt.decode(token, keyset[header["kid"]].key, algorithms=[header["alg"]],
                             audience="api", issuer=stack["origin"]))


def _access_cookie(page: Any) -> str:
    return next(c["value"] for c in page.context.cookies() if c["name"] == names.ACCESS)


def test_browser_signs_in_and_calls_the_dpop_route(stack: dict[str, Any], page: Any) -> None:
    api: Upstream = stack["api"]
    jkt = page.evaluate("WardgateDpop.thumbprint()")
    out = page.evaluate("WardgateDpop.login('alice', 'correct horse')")
    assert out["status"] == 200, out
    assert out["body"]["token_type"] == "DPoP" and "access_token" not in out["body"]
    access = _access_cookie(page)
    claims = _verify(stack, access)
    assert claims["cnf"] == {"jkt": jkt} and claims["iss"] == stack["origin"]

    # the private key cannot be read out, not even by the page's own script
    key_facts = page.evaluate("""async () => {
        const db = await new Promise((ok, no) => { const r = indexedDB.open('wardgate-dpop', 1);
            r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); });
        const pair = await new Promise((ok, no) => {
            const q = db.transaction('keys').objectStore('keys').get('default');
            q.onsuccess = () => ok(q.result); q.onerror = () => no(q.error); });
        let exported = true;
        try { await crypto.subtle.exportKey('jwk', pair.privateKey); }
        catch (e) { exported = false; }
        return {extractable: pair.privateKey.extractable, exported: exported,
                alg: pair.privateKey.algorithm.namedCurve};
    }""")
    assert key_facts == {"extractable": False, "exported": False, "alg": "P-256"}

    # the first call learns the gateway's nonce (401 use_dpop_nonce, one retry), the next
    # ones send it at once
    calls = page.evaluate("""async () => {
        let n = 0; const real = window.fetch;
        window.fetch = (...a) => { n++; return real(...a); };
        try {
            const first = (await WardgateDpop.fetch('/api/orders?x=1')).status;
            const after = n;
            const second = (await WardgateDpop.fetch('/api/orders?x=2')).status;
            return {first, second, firstCalls: after, secondCalls: n - after};
        } finally { window.fetch = real; }
    }""")
    assert calls == {"first": 200, "second": 200, "firstCalls": 2, "secondCalls": 1}
    seen = api.requests[-1]
    assert seen.header("x-user-id") == claims["sub"]
    assert seen.header("dpop") is None  # the proof was for the gateway
    assert names.ACCESS not in (seen.header("cookie") or "")  # and the token is not forwarded
    # an unsafe method: the helper adds the CSRF header as well
    assert page.evaluate(
        "WardgateDpop.fetch('/api/orders', {method: 'POST', body: 'x'}).then(r => r.status)") == 200
    # the browser's own fetch sends the cookie but no proof: refused
    plain = page.evaluate("""fetch('/api/orders').then(async r =>
        ({status: r.status, challenge: r.headers.get('www-authenticate')}))""")
    assert plain["status"] == 401 and plain["challenge"].startswith("DPoP ")
    assert 'error="invalid_dpop_proof"' in plain["challenge"]


def test_key_survives_a_reload_and_refresh_rotates(stack: dict[str, Any], page: Any) -> None:
    jkt = page.evaluate("WardgateDpop.thumbprint()")
    page.reload()
    assert page.evaluate("WardgateDpop.thumbprint()") == jkt  # the same key from IndexedDB
    assert page.evaluate("WardgateDpop.fetch('/api/a').then(r => r.status)") == 200
    before = _access_cookie(page)
    out = page.evaluate("WardgateDpop.refresh()")
    assert out["status"] == 200 and out["body"]["token_type"] == "DPoP", out
    after = _access_cookie(page)
    assert after != before
    assert _verify(stack, after)["cnf"] == {"jkt": jkt}
    assert page.evaluate("WardgateDpop.fetch('/api/b').then(r => r.status)") == 200


def test_cookie_copied_out_of_the_browser_is_useless(stack: dict[str, Any], page: Any) -> None:
    access = _access_cookie(page)
    url = stack["origin"] + "/api/stolen"
    cookie = {"Cookie": f"{names.ACCESS}={access}"}
    r = httpx.get(url, headers={**cookie, "X-Request-Id": (rid := uuid.uuid4().hex)})
    assert r.status_code == 401 and outcome(stack["gw"], rid) == "dpop_missing_proof"
    # a proof made with the thief's own key names another key than cnf.jkt
    thief = DpopKey("ES256").proof("GET", url, token=access)
    r = httpx.get(url, headers={**cookie, "DPoP": thief, "X-Request-Id": (rid := uuid.uuid4().hex)})
    assert r.status_code == 401 and outcome(stack["gw"], rid) == "dpop_key_mismatch"


def test_dpop_js_is_served_as_script(stack: dict[str, Any]) -> None:
    r = httpx.get(stack["issuer"].url + "/dpop.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert '{name: "ECDSA", namedCurve: "P-256"}, false,' in r.text  # extractable: false
