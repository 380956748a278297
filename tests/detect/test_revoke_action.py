"""`action: revoke` end to end: a real issuer, a real redis-server, two real gateway
processes. A token replayed from a second loopback network is detected at one gateway,
revoked through the revocation feed, and refused (401 invalid_token, outcome `revoked`) at
both; the revocation is logged by fingerprint only, and once (idempotent). Without Redis the
verdict goes to the issuer's POST /revocations and comes back through the polling feed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.admin.support import TOKEN_ENV, admin_json, sample, scrape, wait_admin, with_admin
from tests.detect.support import call, until
from tests.issuer.support import IssuerProcess
from tests.revoke.support import FEED_TOKEN, gateway_config, login
from tests.support.gateway import GatewayProcess
from tests.support.redis import RedisServer
from tests.support.upstream import Upstream

OWNER, THIEF = "127.0.0.1", "127.0.1.1"  # two /24 networks
Factory = Callable[..., GatewayProcess]
REPORT_TOKEN = "report-token-for-tests-0123456789"


def _gateway(iss: IssuerProcess, up: Upstream, redis_url: str | None,
             **revoke: Any) -> dict[str, Any]:
    cfg = gateway_config(iss, up.url, redis_url=redis_url)
    cfg["detection"] = {"action": "revoke", "revoke": revoke}
    return with_admin(cfg, token_env=TOKEN_ENV)


def _refused_as_revoked(port: int, token: str, source: str = OWNER) -> bool:
    status, headers, body = call(port, "/orders/1", token, source)
    if status != 401:
        return False
    assert 'error="invalid_token"' in headers["www-authenticate"], headers
    assert token not in body.decode()
    return True


def _revoked_outcomes(cfg: dict[str, Any]) -> float:
    return sample(scrape(cfg), "wardgate_auth_decisions_total", route="orders",
                  outcome="revoked") or 0.0


def _replay(port: int, token: str) -> None:
    for _ in range(3):
        assert call(port, "/orders/1", token, OWNER)[0] == 200
    call(port, "/orders/1", token, THIEF, ua="curl/8.5")  # the detector learns from it


def test_replayed_token_is_revoked_at_every_gateway_through_redis(
        issuer_factory: Callable[..., IssuerProcess], upstream: Upstream,
        gateway_factory: Factory, redis_server: RedisServer) -> None:
    iss = issuer_factory(redis_server.url)
    cfgs = [_gateway(iss, upstream, redis_server.url) for _ in range(2)]
    gws = [gateway_factory(c) for c in cfgs]
    for c in cfgs:
        wait_admin(c)
    token = login(iss)["access_token"]
    other = login(iss, "bob", "battery staple")["access_token"]
    # the token works at both gateways; the replay happens at the first only
    assert call(gws[1].port, "/orders/1", token, OWNER)[0] == 200
    _replay(gws[0].port, token)
    for gw in gws:
        assert until(lambda gw=gw: _refused_as_revoked(gw.port, token)), \
            f"gateway {gw.port} still accepts the revoked token"
        assert _refused_as_revoked(gw.port, token, THIEF)
        assert call(gw.port, "/orders/1", other, OWNER)[0] == 200  # nobody else's
    for c in cfgs:
        assert _revoked_outcomes(c) >= 2
    (d,) = admin_json(cfgs[0], "/admin/detections")["detections"]
    assert d["kind"] == "token_replay" and d["action"] == "revoke"
    s = scrape(cfgs[0])
    assert sample(s, "wardgate_detection_revocations_total", result="revoked") == 1
    log = [json.loads(x) for x in gws[0].stderr().splitlines()
           if '"event":"detection_revocation"' in x]
    assert [x["result"] for x in log] == ["sent"] and log[0]["via"] == "redis"
    assert log[0]["kind"] == "jti" and len(log[0]["fingerprint"]) == 12
    assert "value" not in log[0]  # what was revoked is named by its fingerprint only
    for gw in gws:
        assert token not in gw.stderr()
    # an issuer without a report token has no POST /revocations
    assert httpx.post(iss.url + "/revocations", json={"kind": "sub", "value": "alice"},
                      headers={"Authorization": f"Bearer {FEED_TOKEN}"}).status_code == 404
    # the relay's seqs are untouched: the issuer's own revocations still reach every gateway
    with iss.client() as http:
        assert http.post("/revoke", data={"token": other,
                                          "client_id": "wardgate-login"}).status_code == 200
    for gw in gws:
        assert until(lambda gw=gw: _refused_as_revoked(gw.port, other))


def test_without_redis_the_issuer_takes_the_report(
        issuer_factory: Callable[..., IssuerProcess], upstream: Upstream,
        gateway_factory: Factory, tmp_path: Path) -> None:
    report = tmp_path / "report.token"
    report.write_text(REPORT_TOKEN)
    iss = issuer_factory(None, revocations={
        "token_file": str(tmp_path / "issuer0" / "feed.token"), "relay_interval_s": 0.05,
        "report": {"token_file": str(report)}})
    cfgs = [_gateway(iss, upstream, None, token_file=str(report)) for _ in range(2)]
    gws = [gateway_factory(c) for c in cfgs]
    for c in cfgs:
        wait_admin(c)
    token = login(iss)["access_token"]
    _replay(gws[0].port, token)
    for gw in gws:
        assert until(lambda gw=gw: _refused_as_revoked(gw.port, token)), gw.port
    log = [json.loads(x) for x in gws[0].stderr().splitlines()
           if '"event":"detection_revocation"' in x]
    assert [x["result"] for x in log] == ["sent"] and log[0]["via"] == "issuer"
    # the endpoint wants its own token: not the feed's, not none
    body = {"kind": "sub", "value": "alice"}
    for auth in ({}, {"Authorization": f"Bearer {FEED_TOKEN}"}):
        assert httpx.post(iss.url + "/revocations", json=body, headers=auth).status_code == 401
    bad = httpx.post(iss.url + "/revocations", json={"kind": "client", "value": "x"},
                     headers={"Authorization": f"Bearer {REPORT_TOKEN}"})
    assert bad.status_code == 400
