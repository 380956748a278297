"""The hosted login page driven in real Chromium: sign in, PKCE exchange, SSO, CSRF."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.issuer.support import IssuerProcess, pkce_pair

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]

class _App(BaseHTTPRequestHandler):
    """A client application's callback: it just has to answer so the browser lands."""

    def do_GET(self) -> None:
        body = b"client app"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def apps() -> Iterator[list[tuple[str, str]]]:
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _App) for _ in range(2)]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    yield [(f"web-{i}", f"http://127.0.0.1:{s.server_address[1]}/cb")
           for i, s in enumerate(servers)]
    for s in servers:
        s.shutdown()
        s.server_close()

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium not installed")]


@pytest.fixture(scope="module")
def browser_issuer(issuer: IssuerProcess, apps: list[tuple[str, str]]) -> IssuerProcess:
    for cid, uri in apps:
        issuer.add_client(cid, name=f"App {cid}", auth_method="none",
                          grant_types=["authorization_code", "refresh_token"],
                          scopes=["openid", "orders:read"], audiences=[f"{cid}-api"],
                          redirect_uris=[uri])
    return issuer


@pytest.fixture(scope="module")
def page() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            p = browser.new_context().new_page()
            p.set_default_timeout(10_000)
            yield p
        finally:
            with contextlib.suppress(Exception):
                browser.close()


def _authorize_url(issuer: IssuerProcess, app: tuple[str, str], challenge: str) -> str:
    return issuer.url + "/authorize?" + urlencode({
        "response_type": "code", "client_id": app[0], "redirect_uri": app[1],
        "scope": "openid orders:read", "state": "s1", "nonce": "n1",
        "code_challenge": challenge, "code_challenge_method": "S256"})


def _exchange(issuer: IssuerProcess, app: tuple[str, str], url: str,
              verifier: str) -> dict[str, object]:
    q = parse_qs(urlsplit(url).query)
    assert q["state"] == ["s1"] and q["iss"] == [issuer.url]
    r = httpx.post(issuer.url + "/token", data={
        "grant_type": "authorization_code", "code": q["code"][0], "redirect_uri": app[1],
        "client_id": app[0], "code_verifier": verifier})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_sign_in_in_chromium_then_sso(browser_issuer: IssuerProcess, page,  # type: ignore[no-untyped-def]
                                      apps: list[tuple[str, str]]) -> None:
    iss = browser_issuer
    APP_A, APP_B = apps
    verifier, challenge = pkce_pair()
    page.goto(_authorize_url(iss, APP_A, challenge))
    assert page.title() == "Sign in"
    page.fill("#username", "alice")
    page.fill("#password", "wrong")
    page.click("button[type=submit]")
    assert page.locator("[role=alert]").inner_text() == "Invalid username or password."
    page.fill("#password", "correct horse")
    with page.expect_navigation(url=APP_A[1] + "?**"):
        page.click("button[type=submit]")
    tokens = _exchange(iss, APP_A, page.url, verifier)
    claims = iss.verify(str(tokens["access_token"]), audience="web-0-api")
    assert iss.verify(str(tokens["id_token"]), audience="web-0", typ="JWT")["nonce"] == "n1"

    # Second application: the issuer session cookie signs the user in without a form.
    v2, c2 = pkce_pair()
    page.goto(_authorize_url(iss, APP_B, c2))
    assert page.url.startswith(APP_B[1] + "?")
    claims_b = iss.verify(str(_exchange(iss, APP_B, page.url, v2)["access_token"]),
                          audience="web-1-api")
    assert claims_b["sub"] == claims["sub"] and claims_b["sid"] == claims["sid"]


def test_tampered_csrf_field_is_refused(browser_issuer: IssuerProcess, page,  # type: ignore[no-untyped-def]
                                        apps: list[tuple[str, str]]) -> None:
    page.context.clear_cookies()
    _, challenge = pkce_pair()
    page.goto(_authorize_url(browser_issuer, apps[0], challenge))
    page.locator("input[name=csrf_token]").evaluate("e => e.value = 'forged.x'")
    page.fill("#username", "alice")
    page.fill("#password", "correct horse")
    page.click("button[type=submit]")
    assert "form expired" in page.locator("[role=alert]").inner_text()
    assert page.url.startswith(browser_issuer.url)
