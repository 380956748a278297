"""The gateway's side of the feed with real processes: cached and kept-alive tokens, a
gateway started after the revocation, the feed going down (on_feed_error, the staleness
bound, the one-time log, /metrics), and the issuer endpoint's protection."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest

from tests.issuer.support import IssuerProcess
from tests.revoke.support import (
    FEED_TOKEN,
    KeepAlive,
    gateway_config,
    login,
    status,
    wait_refused,
)
from tests.support.gateway import GatewayProcess, free_port
from tests.support.upstream import Upstream
from wardgate.issuer import admin


def _revoke(iss: IssuerProcess, token: str) -> None:
    with iss.client() as http:
        r = http.post("/revoke", data={"token": token, "client_id": "wardgate-login"})
        assert r.status_code == 200


def test_cached_token_on_a_kept_alive_connection_is_refused(
        issuer_factory: Callable[..., IssuerProcess], upstream: Upstream,
        gateways: Callable[..., GatewayProcess]) -> None:
    iss = issuer_factory()
    gw = gateways(gateway_config(iss, upstream.url, workers=1))
    tok = login(iss)["access_token"]
    conn = KeepAlive(gw.port)
    try:
        # the second verification admits it to the verified-token cache, the third request
        # on this connection is served from the connection's auth memo
        assert [conn.get(tok) for _ in range(4)] == [200] * 4
        _revoke(iss, tok)
        deadline = time.monotonic() + 2.0
        code = 200
        while code == 200 and time.monotonic() < deadline:
            code = conn.get(tok)  # the same connection throughout
            time.sleep(0.02)
        assert code == 401
    finally:
        conn.close()


def test_gateway_started_after_the_revocation_refuses_from_its_first_request(
        issuer_factory: Callable[..., IssuerProcess], upstream: Upstream,
        gateways: Callable[..., GatewayProcess]) -> None:
    iss = issuer_factory()
    tok, other = login(iss)["access_token"], login(iss, "bob", "battery staple")["access_token"]
    _revoke(iss, tok)
    gw = gateways(gateway_config(iss, upstream.url, workers=2, poll_interval_s=30))
    # a long poll interval: only the worker's first sync (before it serves) can know it
    assert status(gw.port, tok) == 401
    assert status(gw.port, other) == 200


def test_feed_down_deny_routes_503_allow_routes_serve_and_metrics(
        issuer_factory: Callable[..., IssuerProcess], upstream: Upstream,
        gateways: Callable[..., GatewayProcess]) -> None:
    iss = issuer_factory()
    admin_port = free_port()
    gw = gateways(gateway_config(iss, upstream.url, workers=1, admin_port=admin_port,
                                 max_staleness_s=1))
    tok = login(iss)["access_token"]
    assert status(gw.port, tok, "/strict/1") == 200
    metrics = httpx.get(f"http://127.0.0.1:{admin_port}/metrics").text
    assert 'wardgate_revocation_feed_workers{source="poll",state="fresh"} 1' in metrics
    iss.stop()
    deadline = time.monotonic() + 5
    while status(gw.port, tok, "/strict/1") != 503:
        assert time.monotonic() < deadline, "deny route never refused"
        time.sleep(0.1)
    r = httpx.get(f"http://127.0.0.1:{gw.port}/strict/1", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 503 and r.headers.get("retry-after") == "5"
    assert r.json()["code"] == "revocation_state_stale"
    assert status(gw.port, tok) == 200  # on_feed_error: allow (the default) serves
    time.sleep(1.0)  # more failed polls: still one log line for the transition
    assert gw.stderr().count('"event":"revocation_feed_stale"') == 1
    metrics = httpx.get(f"http://127.0.0.1:{admin_port}/metrics").text
    assert 'wardgate_revocation_feed_workers{source="poll",state="stale"} 1' in metrics
    errors = [line for line in metrics.splitlines()
              if line.startswith("wardgate_revocation_feed_errors_total")]
    assert errors and int(float(errors[0].split()[-1])) >= 1
    assert 'outcome="revocation_stale"' in metrics
    # the feed returns: fresh again, logged once more
    iss.start()
    deadline = time.monotonic() + 5
    while status(gw.port, tok, "/strict/1") != 200:
        assert time.monotonic() < deadline, "deny route never came back"
        time.sleep(0.1)
    assert gw.stderr().count('"event":"revocation_feed_fresh"') == 2


def test_entries_metrics_and_cache_drops(issuer_factory: Callable[..., IssuerProcess],
                                         upstream: Upstream,
                                         gateways: Callable[..., GatewayProcess]) -> None:
    iss = issuer_factory()
    admin_port = free_port()
    gw = gateways(gateway_config(iss, upstream.url, workers=1, admin_port=admin_port))
    tok = login(iss)["access_token"]
    assert [status(gw.port, tok) for _ in range(3)] == [200] * 3  # cached
    _revoke(iss, tok)
    asyncio.run(admin.revoke(iss.cfg, sub="nobody"))
    wait_refused(gw.port, tok)
    want = ('wardgate_revocation_entries{kind="jti"} 1',
            'wardgate_revocation_entries{kind="sub"} 1', "wardgate_revocation_cache_drops_total 1")
    deadline = time.monotonic() + 5.0  # the worker's sweeper writes the gauges, on its own time
    while True:
        m = httpx.get(f"http://127.0.0.1:{admin_port}/metrics").text
        if all(w in m for w in want) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert 'wardgate_revocation_entries{kind="jti"} 1' in m
    assert 'wardgate_revocation_entries{kind="sub"} 1' in m
    assert "wardgate_revocation_cache_drops_total 1" in m


@pytest.mark.parametrize("auth", [None, "Bearer wrong-token-wrong-token-00", "Basic x"])
def test_feed_endpoint_needs_its_token(issuer_factory: Callable[..., IssuerProcess],
                                       auth: str | None) -> None:
    iss = issuer_factory()
    headers = {"Authorization": auth} if auth else {}
    r = httpx.get(iss.url + "/revocations", headers=headers)
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    ok = httpx.get(iss.url + "/revocations?since=0",
                   headers={"Authorization": f"Bearer {FEED_TOKEN}"})
    assert ok.status_code == 200 and ok.json()["events"] == []
    bad = httpx.get(iss.url + "/revocations?since=-1",
                    headers={"Authorization": f"Bearer {FEED_TOKEN}"})
    assert bad.status_code == 400


def test_feed_endpoint_absent_without_a_token(issuer_factory: Callable[..., IssuerProcess]) -> None:
    iss = issuer_factory(revocations={})
    r = httpx.get(iss.url + "/revocations", headers={"Authorization": f"Bearer {FEED_TOKEN}"})
    assert r.status_code == 404


def test_feed_pages_and_cursor(issuer_factory: Callable[..., IssuerProcess]) -> None:
    iss = issuer_factory()
    for i in range(3):
        asyncio.run(admin.revoke(iss.cfg, jti=f"j{i}"))
    h = {"Authorization": f"Bearer {FEED_TOKEN}"}
    page = httpx.get(iss.url + "/revocations?since=0", headers=h).json()
    assert [e["value"] for e in page["events"]] == ["j0", "j1", "j2"]
    seqs = [e["seq"] for e in page["events"]]
    assert page["cursor"] == seqs[-1] and not page["more"] and page["epoch"]
    rest = httpx.get(iss.url + f"/revocations?since={seqs[0]}", headers=h).json()
    assert [e["value"] for e in rest["events"]] == ["j1", "j2"]
