"""Login detection through a real issuer (`wardgate issuer`) from real loopback source
addresses: stuffing from one network detected and, with `deny`, refused (before any password
is checked, correct ones too); an office where many people sign in raises nothing; the
`detection` log line names the network and fingerprints, never a username or password."""

from __future__ import annotations

import http.client
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.admin.support import admin_json, sample, scrape, wait_admin
from tests.detect.support import call, gateway_config, mint, until
from tests.issuer.support import IssuerProcess, base_config, pkce_pair
from tests.support.gateway import GatewayProcess
from tests.support.redis import RedisServer
from tests.support.upstream import Upstream


def login(iss: IssuerProcess, username: str, password: str, source: str
          ) -> tuple[int, dict[str, str], dict[str, Any]]:
    host, port = iss.cfg.listen.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=10, source_address=(source, 0))
    c.request("POST", "/login", body=json.dumps({"username": username, "password": password}),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, json.loads(body or b"{}")


def detections(iss: IssuerProcess) -> list[dict[str, Any]]:
    out = []
    for line in (iss.workdir / "issuer.log").read_text().splitlines():
        if line.startswith("{") and '"event":"detection"' in line:
            out.append(json.loads(line))
    return out


@pytest.fixture
def issuer_with(tmp_path: Path) -> Iterator[Any]:
    made: list[IssuerProcess] = []

    def make(detection: dict[str, Any], users: int = 0, **kw: Any) -> IssuerProcess:
        d = tmp_path / f"iss{len(made)}"
        d.mkdir()
        p = IssuerProcess(base_config(d, detection=detection, **kw), d)
        made.append(p)
        p.add_user("alice", "correct horse", ["reader"])
        for i in range(users):
            p.add_user(f"staff{i}", f"pw-{i}", ["reader"])
        return p.start()

    yield make
    for p in made:
        p.stop()


def test_stuffing_from_one_network_is_detected_and_refused(issuer_with: Any) -> None:
    iss = issuer_with({"action": "deny", "deny_s": 60})
    # a leaked list tried from several addresses of one /24, one attempt per username
    for i in range(10):
        status, _, body = login(iss, f"leaked{i}@example.com", f"hunter{i}", f"127.0.5.{i + 1}")
        assert status == 403 and body["error"] == "access_denied"
        assert body["error_description"] == "invalid username or password"
    # refused from then on, for every address of the network, correct password or not
    status, headers, body = login(iss, "alice", "correct horse", "127.0.5.200")
    assert status == 403 and body["error"] == "access_denied"
    assert "refused for a while" in body["error_description"]
    assert "credential stuffing" in body["error_description"]
    assert 1 <= int(headers["retry-after"]) <= 60
    # another network signs in as ever
    status, _, body = login(iss, "alice", "correct horse", "127.0.6.1")
    assert status == 200 and body["access_token"]
    (d,) = until(lambda: detections(iss))
    assert d["kind"] == "credential_stuffing" and d["action"] == "deny"
    assert d["key"] == "network:127.0.5.0/24" and d["network"] == "127.0.5.0/24"
    assert d["client"] == "127.0.5.10" and d["route"] == "/login" and d["source"] == "issuer"
    assert d["features"]["usernames"] == 10 and d["features"]["distinct_passwords"] == 10
    assert d["score"] == 1.0 and d["detected_at"] > 0
    log = (iss.workdir / "issuer.log").read_text()
    assert "leaked3@example.com" not in log and "hunter3" not in log
    # the durable record: a `detection` row in the audit table
    def audited() -> list[Any]:
        with sqlite3.connect(iss.workdir / "issuer.db") as db:
            return db.execute("SELECT address, detail FROM wg_audit_events "
                              "WHERE event = 'detection'").fetchall()

    (address, detail), = until(audited)
    assert address == "127.0.5.10"
    assert json.loads(detail)["kind"] == "credential_stuffing"
    assert json.loads(detail)["key"] == "network:127.0.5.0/24"


def test_password_spraying_from_one_network_and_slow_down(issuer_with: Any) -> None:
    iss = issuer_with({"action": "slow_down", "deny_s": 30})
    for i in range(10):
        assert login(iss, f"user{i}", "Winter2026!", "127.0.7.9")[0] == 403
    status, headers, body = login(iss, "alice", "correct horse", "127.0.7.9")
    assert status == 429 and body["error"] == "slow_down" and int(headers["retry-after"]) >= 1
    (d,) = until(lambda: detections(iss))
    assert d["kind"] == "password_spraying" and d["features"]["distinct_passwords"] == 1
    assert "Winter2026!" not in (iss.workdir / "issuer.log").read_text()


def test_one_username_from_many_networks_is_reported_not_locked_out(issuer_with: Any) -> None:
    iss = issuer_with({"action": "deny"})
    for n in range(5):
        # the per-username throttle answers 429 after 3 failures; those attempts count too
        assert login(iss, "alice", f"guess{n}", f"127.0.{20 + n}.1")[0] in (403, 429)
    (d,) = until(lambda: detections(iss))
    assert d["kind"] == "password_spraying" and d["action"] == "log"
    assert d["key"].startswith("user:") and "alice" not in d["key"]
    assert d["features"]["networks"] == 5
    # alice herself still signs in (after the per-username throttle's delay, not a lockout)
    ok = until(lambda: login(iss, "alice", "correct horse", "127.0.30.1")[0] == 200, 10.0)
    assert ok


def test_an_office_where_many_users_sign_in_raises_nothing(issuer_with: Any) -> None:
    iss = issuer_with({"action": "deny"}, users=30)
    office = "127.0.8.10"
    for i in range(30):
        if i % 3 == 0:  # a third mistype once first
            assert login(iss, f"staff{i}", "oops", office)[0] == 403
        assert login(iss, f"staff{i}", f"pw-{i}", office)[0] == 200
    assert login(iss, "alice", "correct horse", office)[0] == 200
    assert detections(iss) == []


def test_dry_run_and_the_allow_list(issuer_with: Any) -> None:
    iss = issuer_with({"action": "deny", "dry_run": True, "allow_networks": ["127.0.9.0/24"]})
    for i in range(10):
        login(iss, f"x{i}", "nope", "127.0.9.1")      # allowed: no network signal
        login(iss, f"y{i}", f"nope{i}", "127.0.10.1")  # dry run: reported, not refused
    assert login(iss, "alice", "correct horse", "127.0.10.1")[0] == 200
    (d,) = until(lambda: detections(iss))
    assert d["dry_run"] is True and d["network"] == "127.0.10.0/24"


def test_the_hosted_login_form_is_watched_and_refused_with_a_page(issuer_with: Any) -> None:
    from tests.issuer.test_authorize import APP1, _sign_in

    iss = issuer_with({"action": "deny"})
    iss.add_client(APP1[0], name="The Shop", auth_method="none",
                   grant_types=["authorization_code", "refresh_token"],
                   scopes=["openid", "orders:read"], audiences=["shop-api"],
                   redirect_uris=[APP1[1]])
    _, challenge = pkce_pair()
    with iss.client() as http_:  # from 127.0.0.1: the network 127.0.0.0/24
        for i in range(10):
            r, _ = _sign_in(http_, APP1, challenge, user=f"form{i}", password=f"pw{i}")
            assert r.status_code == 401
        r, _ = _sign_in(http_, APP1, challenge)  # alice, the right password
    assert r.status_code == 403 and "Sign-in from your network is paused" in r.text
    assert int(r.headers["retry-after"]) >= 1
    (d,) = until(lambda: detections(iss))
    assert d["route"] == "/authorize" and d["kind"] == "credential_stuffing"


def test_issuer_detections_reach_the_gateway_through_redis(
        tmp_path: Path, issuer_with: Any, redis_server: RedisServer, upstream: Upstream,
        signing_key: rsa.RSAPrivateKey, gateway_factory: Callable[..., GatewayProcess]) -> None:
    """Issuer + two-worker gateway + redis-server: a stuffing run and a refresh-token reuse
    at the issuer show once each in the gateway's /admin/detections, metrics and log."""
    state = {"redis_url": redis_server.url, "timeout_ms": 500}
    cfg = gateway_config(tmp_path / "gw", signing_key, upstream, {"action": "log"},
                         route_detection={"action": "deny"}, workers=2, state=state)
    gw = gateway_factory(cfg)
    wait_admin(cfg)
    time.sleep(1.0)  # the workers' feeds take the stream's newest id before anything is sent
    iss = issuer_with({"action": "deny"}, state=state)
    for i in range(10):
        login(iss, f"leaked{i}", f"pw{i}", f"127.0.12.{i + 1}")
    # refresh-token reuse (detected by the grant; the family is revoked)
    status, _, tokens = login(iss, "alice", "correct horse", "127.0.13.1")
    assert status == 200
    with iss.client() as http_:
        form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        assert http_.post("/token", data=form).status_code == 200
        r = http_.post("/token", data=form)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"

    def seen() -> list[dict[str, Any]]:
        got = admin_json(cfg, "/admin/detections")["detections"]
        return got if len(got) >= 2 else []

    got = until(seen, 10.0)
    assert sorted(d["kind"] for d in got) == ["credential_stuffing", "refresh_reuse"], got
    stuffing = next(d for d in got if d["kind"] == "credential_stuffing")
    assert stuffing["source"] == "issuer" and stuffing["action"] == "deny"
    assert stuffing["key"] == "network:127.0.12.0/24" and stuffing["features"]["usernames"] == 10
    reuse = next(d for d in got if d["kind"] == "refresh_reuse")
    assert reuse["action"] == "revoke" and reuse["key"].startswith("family:")
    assert reuse["features"]["client_id"] == "wardgate-login"
    assert tokens["refresh_token"] not in json.dumps(got)
    time.sleep(1.5)  # a second worker would have shown them by now: once per gateway
    assert len(admin_json(cfg, "/admin/detections")["detections"]) == 2
    s = scrape(cfg)
    assert sample(s, "wardgate_detections_total", kind="credential_stuffing",
                  action="deny") == 1
    assert sample(s, "wardgate_detections_total", kind="refresh_reuse", action="revoke") == 1
    assert '"event":"detection"' in gw.stderr() and '"source":"issuer"' in gw.stderr()
    # the stuffing network is flagged at the gateway too: tokens from it are refused on the
    # deny route (every worker: several new connections), elsewhere served
    token = mint(signing_key)
    for _ in range(4):
        status, _, body = call(gw.port, "/api/orders", token, "127.0.12.50")
        assert status == 403 and json.loads(body)["code"] == "detection_denied"
    assert call(gw.port, "/api/orders", token, "127.0.13.1")[0] == 200
    assert call(gw.port, "/items/1", token, "127.0.12.50")[0] == 200  # a `log` route
