"""Detection through the real gateway (`wardgate run`), a real upstream and real loopback
source addresses: each action's outcome as the client and the upstream see it, the
detection on the admin API, in /metrics and in the log, and normal traffic left alone."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.admin.support import admin_json, sample, scrape, wait_admin
from tests.detect.support import call, gateway_config, mint, until
from tests.support.gateway import GatewayProcess
from tests.support.redis import RedisServer
from tests.support.upstream import Upstream

OWNER, THIEF = "127.0.0.1", "127.0.1.1"  # different /24 networks
Factory = Callable[..., GatewayProcess]


def start(gateway_factory: Factory, cfg: dict[str, Any]) -> GatewayProcess:
    gw = gateway_factory(cfg)
    wait_admin(cfg)
    return gw


def detections(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    return admin_json(cfg, "/admin/detections")["detections"]


@pytest.mark.parametrize("access_log", [True, False])
def test_stolen_token_replayed_from_another_client_is_denied(
        tmp_path: Path, signing_key: rsa.RSAPrivateKey, upstream: Upstream,
        gateway_factory: Factory, access_log: bool) -> None:
    # without an access log the worker's finished-request path is one closure with the
    # metrics (observe/http.py finisher): the detector must still see every request
    cfg = gateway_config(tmp_path, signing_key, upstream, {"action": "log"},
                         route_detection={"action": "deny"})
    if not access_log:
        cfg["access_log"] = {"enabled": False}
    gw = start(gateway_factory, cfg)
    token = mint(signing_key)
    for _ in range(3):
        assert call(gw.port, "/api/orders", token, OWNER)[0] == 200
    # the thief's first request is served (it is what the detector learns from) ...
    assert call(gw.port, "/api/orders", token, THIEF, ua="curl/8.5")[0] == 200
    # ... and from then on the token is refused, for the thief and for the owner alike
    got = until(lambda: call(gw.port, "/api/orders", token, THIEF, ua="curl/8.5")[0] == 403)
    assert got, "the replayed token was never refused"
    status, headers, body = call(gw.port, "/api/orders", token, OWNER)
    assert status == 403 and headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["code"] == "detection_denied" and token not in body.decode()
    # the owner signs in again: a new token works at once
    assert call(gw.port, "/api/orders", mint(signing_key), OWNER)[0] == 200
    (d,) = detections(cfg)
    assert d["kind"] == "token_replay" and d["action"] == "deny" and d["client"] == THIEF
    assert d["score"] >= 1 and d["features"]["networks"] == 2
    assert d["features"]["networks_seen"] == ["127.0.0.0/24", "127.0.1.0/24"]
    assert d["sub"] and d["sub"] != "alice"  # the keyed hash, never the subject
    assert "token_replay" in d["reason"]
    s = scrape(cfg)
    assert sample(s, "wardgate_detections_total", kind="token_replay", action="deny") == 1
    assert sample(s, "wardgate_detection_enforced_total", route="api", action="deny") >= 2
    summary = admin_json(cfg, "/admin/summary")
    assert [x["kind"] for x in summary["detections"]] == ["token_replay"]
    log = [json.loads(x) for x in gw.stderr().splitlines() if '"event":"detection"' in x]
    assert len(log) == 1 and log[0]["kind"] == "token_replay"
    assert token not in gw.stderr()
    denied = admin_json(cfg, "/admin/denials")["denials"]
    assert any(x["outcome"] == "detection_denied" for x in denied)


def test_step_up_answers_rfc9470_insufficient_user_authentication(
        tmp_path: Path, signing_key: rsa.RSAPrivateKey, upstream: Upstream,
        gateway_factory: Factory) -> None:
    cfg = gateway_config(tmp_path, signing_key, upstream, {"action": "step_up"})
    gw = start(gateway_factory, cfg)
    token = mint(signing_key)
    assert call(gw.port, "/api/x", token, OWNER)[0] == 200
    call(gw.port, "/api/x", token, THIEF, ua="python-requests/2.31")
    got = until(lambda: call(gw.port, "/api/x", token, OWNER))
    got = until(lambda: (r := call(gw.port, "/api/x", token, OWNER))[0] == 401 and r)
    assert got, "no step-up"
    status, headers, body = got
    assert headers["www-authenticate"].startswith('Bearer realm="api", '
                                                  'error="insufficient_user_authentication"')
    assert json.loads(body)["code"] == "step_up"
    assert call(gw.port, "/items/1", token, OWNER)[0] == 401  # every watched route


def test_header_action_tells_the_upstream_and_cannot_be_spoofed(
        tmp_path: Path, signing_key: rsa.RSAPrivateKey, upstream: Upstream,
        gateway_factory: Factory) -> None:
    cfg = gateway_config(tmp_path, signing_key, upstream, {"action": "header"})
    gw = start(gateway_factory, cfg)
    honest = mint(signing_key, sub="bob")
    status, _, _ = call(gw.port, "/api/h", honest, OWNER, headers={"X-Wardgate-Risk": "0"})
    assert status == 200 and upstream.requests[-1].header("x-wardgate-risk") is None
    token = mint(signing_key)
    call(gw.port, "/api/h", token, OWNER)
    call(gw.port, "/api/h", token, THIEF, ua="curl/8.5")

    def risk() -> str | None:
        assert call(gw.port, "/api/h", token, OWNER)[0] == 200  # served: the upstream decides
        return upstream.requests[-1].header("x-wardgate-risk")

    value = until(risk)
    assert value is not None and value.endswith(";kind=token_replay")
    assert float(value.split(";")[0]) >= 1.0
    call(gw.port, "/api/h", honest, OWNER)
    assert upstream.requests[-1].header("x-wardgate-risk") is None


def test_log_action_serves_everything_and_reports(
        tmp_path: Path, signing_key: rsa.RSAPrivateKey, upstream: Upstream,
        gateway_factory: Factory) -> None:
    cfg = gateway_config(tmp_path, signing_key, upstream, {"action": "log"})
    gw = start(gateway_factory, cfg)
    token = mint(signing_key)
    call(gw.port, "/api/l", token, OWNER)
    call(gw.port, "/api/l", token, THIEF, ua="curl/8.5")
    assert until(lambda: detections(cfg))
    for src in (OWNER, THIEF):
        assert call(gw.port, "/api/l", token, src)[0] == 200
    assert sample(scrape(cfg), "wardgate_detections_total", kind="token_replay",
                  action="log") == 1


def test_burst_and_enumeration_are_denied(
        tmp_path: Path, signing_key: rsa.RSAPrivateKey, upstream: Upstream,
        gateway_factory: Factory) -> None:
    cfg = gateway_config(tmp_path, signing_key, upstream,
                         {"action": "deny", "rate": {"min_requests": 40},
                          "enumeration": {"sequential_run": 8}})
    gw = start(gateway_factory, cfg)
    scraper = mint(signing_key, sub="scraper")
    statuses = [call(gw.port, f"/items/{1000 + i}", scraper, OWNER)[0] for i in range(10)]
    assert statuses[:8] == [200] * 8
    assert until(lambda: call(gw.port, "/items/7", scraper, OWNER)[0] == 403)
    burster = mint(signing_key, sub="burster")
    for _ in range(45):
        call(gw.port, "/api/b", burster, OWNER)
    assert until(lambda: call(gw.port, "/api/b", burster, OWNER)[0] == 403)
    kinds = {d["kind"] for d in detections(cfg)}
    assert kinds == {"enumeration", "rate"}
    # another user on the same address is not affected
    assert call(gw.port, "/api/b", mint(signing_key, sub="carol"), OWNER)[0] == 200


def test_key_probing_from_one_network(
        tmp_path: Path, signing_key: rsa.RSAPrivateKey, upstream: Upstream,
        gateway_factory: Factory) -> None:
    cfg = gateway_config(tmp_path, signing_key, upstream,
                         {"action": "deny", "refused": {"min_refusals": 10}})
    gw = start(gateway_factory, cfg)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    prober = "127.0.2.1"
    for i in range(10):
        forged = mint(other, kid=f"k{i}") if i % 2 else mint(other)
        assert call(gw.port, "/api/p", forged, prober)[0] == 401
    (d,) = until(lambda: detections(cfg))
    assert d["kind"] == "key_probing" and d["key"] == "network:127.0.2.0/24"
    # the network's valid tokens are refused for the verdict's time; other networks are not
    valid = mint(signing_key, sub="dave")
    assert call(gw.port, "/api/p", valid, "127.0.2.7")[0] == 403
    assert call(gw.port, "/api/p", valid, OWNER)[0] == 200


def test_an_office_sharing_one_address_raises_no_detection(
        tmp_path: Path, signing_key: rsa.RSAPrivateKey, upstream: Upstream,
        gateway_factory: Factory) -> None:
    cfg = gateway_config(tmp_path, signing_key, upstream, {"action": "deny"})
    gw = start(gateway_factory, cfg)
    office = "127.0.3.10"
    users = [(mint(signing_key, sub=f"user{u}"), f"browser/{u % 5}") for u in range(40)]
    for rnd in range(5):
        for u, (token, ua) in enumerate(users):
            path = f"/items/{(u * 7 + rnd) % 13}" if u % 2 else "/api/home"
            assert call(gw.port, path, token, office, ua=ua)[0] == 200
    # and one of them moves to the mobile network once: still normal
    token, ua = users[0]
    for _ in range(3):
        assert call(gw.port, "/api/home", token, "127.0.4.20", ua=ua)[0] == 200
    gw.wait_event("worker_ready")
    import time
    time.sleep(0.5)  # several detector runs
    assert detections(cfg) == []
    assert sample(scrape(cfg), "wardgate_detection_events_total") >= 200


def test_dry_run_reports_but_enforces_nothing(
        tmp_path: Path, signing_key: rsa.RSAPrivateKey, upstream: Upstream,
        gateway_factory: Factory) -> None:
    cfg = gateway_config(tmp_path, signing_key, upstream, {"action": "deny", "dry_run": True})
    gw = start(gateway_factory, cfg)
    token = mint(signing_key)
    call(gw.port, "/api/d", token, OWNER)
    call(gw.port, "/api/d", token, THIEF, ua="curl/8.5")
    (d,) = until(lambda: detections(cfg))
    assert d["dry_run"] is True and d["action"] == "deny"
    assert call(gw.port, "/api/d", token, THIEF, ua="curl/8.5")[0] == 200
    assert sample(scrape(cfg), "wardgate_detections_total", kind="token_replay",
                  action="dry_run") == 1


def test_replay_across_workers_is_shared_through_redis(
        tmp_path: Path, signing_key: rsa.RSAPrivateKey, upstream: Upstream,
        gateway_factory: Factory, redis_server: RedisServer) -> None:
    """Two gateways on one Redis: the owner uses one, the thief (copying the user agent,
    so only alternation gives it away) the other; both refuse the token afterwards."""
    state = {"redis_url": redis_server.url}
    cfg_a = gateway_config(tmp_path / "a", signing_key, upstream, {"action": "deny"},
                           state=state)
    cfg_b = gateway_config(tmp_path / "b", signing_key, upstream, {"action": "deny"},
                           state=state)
    gw_a, gw_b = start(gateway_factory, cfg_a), start(gateway_factory, cfg_b)
    token = mint(signing_key)
    import time
    seen = []
    for _ in range(4):  # owner on A, thief on B, alternating; each side reports once a second
        seen.append(call(gw_a.port, "/api/s", token, OWNER)[0])
        time.sleep(0.3)
        seen.append(call(gw_b.port, "/api/s", token, THIEF)[0])
        time.sleep(1.1)
        if 403 in seen:
            break
    assert until(lambda: call(gw_b.port, "/api/s", token, THIEF)[0] == 403)
    assert until(lambda: call(gw_a.port, "/api/s", token, OWNER)[0] == 403)
    records = detections(cfg_a) + detections(cfg_b)
    assert any(d["kind"] == "token_replay" and d["features"].get("shared") for d in records)
