"""The dashboard in real Chromium against a real `wardgate run` (2 workers, admin listener,
two upstream processes with active health checks): sign in, live numbers under load, a target
stopped by PID turns red, screenshots at desktop and phone width."""

from __future__ import annotations

import contextlib
import http.client
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.admin.support import TOKEN, TOKEN_ENV, admin_json, admin_port, wait_admin, with_admin
from tests.gateway.test_jwt_routes import jwks_config, mint
from tests.support.upstream_proc import UpstreamProcess

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"
ACTIVE = {"path": "/healthz", "interval_s": 0.5, "timeout_s": 0.4, "healthy_threshold": 1,
          "unhealthy_threshold": 2}
RED = "rgb(220, 38, 38)"

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium not installed")]


@pytest.fixture
def targets() -> Iterator[list[UpstreamProcess]]:
    ups = [UpstreamProcess("a"), UpstreamProcess("b")]
    yield ups
    for u in ups:
        u.stop()


@pytest.fixture
def signing_key():
    from cryptography.hazmat.primitives.asymmetric import rsa
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def live(targets, gateway_factory, signing_key, tmp_path, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    cfg = jwks_config(tmp_path, signing_key, targets[0], [
        {"name": "orders", "match": {"path_prefix": "/orders"}, "upstream": "up",
         "auth": {"providers": ["main"], "require": {"scopes": ["orders:read"]}}},
        {"name": "public", "match": {"path_prefix": "/public"}, "upstream": "up",
         "auth": "none",
         "rate_limits": [{"name": "per-ip", "key": "ip", "rate": "600/m", "burst": 20}]},
    ])
    cfg["upstreams"][0]["targets"] = [t.url for t in targets]
    cfg["upstreams"][0]["health"] = {"active": ACTIVE}
    cfg["workers"] = 2
    with_admin(cfg)
    gw = gateway_factory(cfg)
    wait_admin(cfg)
    return gw, cfg


class Load:
    """Bounded background traffic: at most `count` requests and `seconds` of time."""

    def __init__(self, port: int, headers: dict[str, str], count: int = 1500,
                 seconds: float = 12.0) -> None:
        self.port, self.headers, self.count, self.seconds = port, headers, count, seconds
        self.done = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        plan = [("/orders", self.headers), ("/orders", {}), ("/public/x", {}),
                ("/orders", {"Authorization": "Bearer not-a-jwt"})]
        while self.done < self.count and time.monotonic() < deadline and not self._stop.is_set():
            path, h = plan[self.done % len(plan)]
            with contextlib.suppress(OSError):
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", path, headers=h)
                c.getresponse().read()
                c.close()
            self.done += 1
            time.sleep(0.004)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            with contextlib.suppress(Exception):
                b.close()


def _text(page, selector: str) -> str:
    return page.locator(selector).first.inner_text()


def test_dashboard_live_in_chromium(live, targets, browser, signing_key):
    gw, cfg = live
    base = f"http://127.0.0.1:{admin_port(cfg)}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    failed: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: failed.append(f"{r.url} {r.failure}"))
    page.on("response", lambda r: failed.append(f"{r.url} {r.status}") if r.status >= 400
            else None)

    # sign in through the form; the cookie is HttpOnly (the page's script cannot read it)
    page.goto(base + "/")
    assert page.locator("form[action='/login'] input[name=token]").is_visible()
    page.screenshot(path=str(ARTIFACTS / "login-1280x800.png"))
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_selector("#routes li.route")
    assert page.evaluate("document.cookie") == ""
    cookie = next(c for c in context.cookies() if c["name"] == "wardgate_admin")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] != TOKEN

    routes = page.locator("#routes li.route").all_inner_texts()
    assert routes == ["orders", "public"]
    for t in targets:  # both targets listed, and healthy (green) once the checks passed
        page.wait_for_selector(f"#targets li.target.healthy[data-url='{t.url}']")
    assert _text(page, "#detections") == "none"

    before = _text(page, "#requests")
    token = mint(signing_key)
    with Load(gw.port, {"Authorization": f"Bearer {token}"}) as load:
        page.wait_for_function(
            "b => document.getElementById('requests').textContent !== b "
            "&& parseFloat(document.getElementById('rate').textContent) > 0", arg=before)
        first = int(_text(page, "#requests"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and int(_text(page, "#requests")) <= first:
            time.sleep(0.2)
        assert int(_text(page, "#requests")) > first  # it keeps moving, without a reload
        page.wait_for_selector("#auth tbody td:text('no_token')")  # auth outcomes shown
        page.wait_for_function(
            "() => document.querySelector('#chart-rate polyline') !== null")
        assert _text(page, "#p50") != "–"
    assert load.done > 0
    page.wait_for_selector("#top-refused tbody td:text('127.0.0.1')")
    page.screenshot(path=str(ARTIFACTS / "dashboard-1280x800.png"), full_page=True)

    # a target stopped by PID turns red within its health interval (plus one poll)
    down = targets[1]
    down.stop()
    assert down.proc.poll() is not None
    budget = ACTIVE["interval_s"] * (ACTIVE["unhealthy_threshold"] + 1) + 1.5 + 2.0
    page.wait_for_selector(f"#targets li.target.down[data-url='{down.url}']",
                           timeout=budget * 1000)
    dot = page.locator(f"#targets li.target.down[data-url='{down.url}'] .dot")
    assert dot.evaluate("e => getComputedStyle(e).backgroundColor") == RED
    assert page.locator(f"#targets li.target.healthy[data-url='{targets[0].url}']").count() == 1
    healthy = {t["url"]: t["healthy"] for u in admin_json(cfg, "/admin/upstreams")["upstreams"]
               for t in u["targets"]}
    assert healthy[down.url] is False

    # phone width: one column, nothing wider than the screen
    page.set_viewport_size({"width": 375, "height": 812})
    page.wait_for_timeout(300)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.screenshot(path=str(ARTIFACTS / "dashboard-375x812.png"), full_page=True)
    assert (ARTIFACTS / "dashboard-375x812.png").stat().st_size > 10_000

    assert errors == [], errors
    assert failed == [], failed

    # sign out: the dashboard is gone, the login form is back
    page.click("form.logout button")
    page.wait_for_selector("input[name=token]")
    context.close()
