"""Browser (cookie) mode with DPoP, end to end: a real issuer binds the cookie-mode login to
the proof's key, a real gateway takes the bound token from the cookie only with a proof whose
`ath` covers the cookie's token, and the bound refresh cookie rotates only with a proof."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.issuer.support import IssuerProcess, set_cookies
from tests.support.dpop import DpopKey, ath
from tests.support.gateway import GatewayProcess
from tests.support.upstream import Upstream
from wardgate.issuer import cookies as names
from wardgate.issuer import csrf

from .test_gateway_dpop import outcome


@pytest.fixture(scope="module")
def gateway(issuer: IssuerProcess, upstream: Upstream,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    route = {"upstream": "orders", "claims_to_headers": {"sub": "X-User-Id"}}
    cookie = {"cookie": names.ACCESS}
    cfg = {
        "providers": [{"name": "main", "issuer": issuer.url, "audiences": ["api"],
                       "jwks_uri": issuer.url + "/.well-known/jwks.json"}],
        "upstreams": [{"name": "orders", "targets": [upstream.url]}],
        "routes": [
            {**route, "name": "web", "match": {"path_prefix": "/web"},
             "auth": {"providers": ["main"], "token": cookie}},
            {**route, "name": "webdpop", "match": {"path_prefix": "/secure"},
             "auth": {"providers": ["main"], "token": cookie, "dpop": "required"}},
        ],
    }
    gw = GatewayProcess(cfg, tmp_path_factory.mktemp("dpop-cookie-gw"))
    try:
        yield gw.start()
    finally:
        gw.stop()


def cookie_login(issuer: IssuerProcess, key: DpopKey | None) -> httpx.Response:
    headers = {"DPoP": key.proof("POST", issuer.url + "/login")} if key else {}
    with issuer.client() as http:
        r = http.post("/login", json={"username": "alice", "password": "correct horse",
                                      "mode": "cookie"}, headers=headers)
    assert r.status_code == 200, r.text
    return r


@pytest.fixture(scope="module")
def key() -> DpopKey:
    return DpopKey("ES256")


@pytest.fixture(scope="module")
def jar(issuer: IssuerProcess, key: DpopKey) -> dict[str, dict[str, str]]:
    r = cookie_login(issuer, key)
    assert r.json()["token_type"] == "DPoP"
    return set_cookies(r)


def send(gw: GatewayProcess, access: str, proof: str | None, *, path: str = "/web/home",
         method: str = "GET", extra: dict[str, str] | None = None) -> tuple[httpx.Response, str]:
    rid = uuid.uuid4().hex
    headers = {"Cookie": f"{names.ACCESS}={access}; other=1", "X-Request-Id": rid}
    if proof is not None:
        headers["DPoP"] = proof
    headers.update(extra or {})
    return httpx.request(method, f"http://127.0.0.1:{gw.port}{path}", headers=headers), rid


def u(gw: GatewayProcess, path: str = "/web/home") -> str:
    return f"http://127.0.0.1:{gw.port}{path}"


def test_cookie_login_binds_the_cookies(issuer: IssuerProcess, key: DpopKey,
                                        jar: dict[str, dict[str, str]]) -> None:
    assert issuer.verify(jar[names.ACCESS]["value"])["cnf"] == {"jkt": key.jkt}
    # the answer names the token's hash (a page cannot read the HttpOnly cookie), never it
    r = cookie_login(issuer, key)
    body = r.json()
    at = set_cookies(r)[names.ACCESS]["value"]
    assert body["ath"] == ath(at) and "access_token" not in body
    assert "ath" not in cookie_login(issuer, None).json()
    assert "httponly" in jar[names.ACCESS] and "secure" in jar[names.ACCESS]


def test_bound_cookie_with_a_proof_passes(gateway: GatewayProcess, upstream: Upstream,
                                          key: DpopKey, jar: dict[str, dict[str, str]]) -> None:
    at = jar[names.ACCESS]["value"]
    for path in ("/web/home", "/secure/page"):
        r, rid = send(gateway, at, key.proof("GET", u(gateway, path), token=at), path=path)
        assert r.status_code == 200, r.text
        assert outcome(gateway, rid) == "ok"
        seen = upstream.requests[-1]
        assert seen.header("dpop") is None  # the proof was for the gateway
        assert seen.header("cookie") == "other=1"  # the token cookie is not forwarded


@pytest.mark.parametrize("case", ["missing_proof", "missing_ath", "bad_ath", "key_mismatch",
                                  "bad_htu"])
def test_bound_cookie_checks(gateway: GatewayProcess, key: DpopKey,
                             jar: dict[str, dict[str, str]], case: str) -> None:
    at = jar[names.ACCESS]["value"]
    proof = {
        "missing_proof": None,
        "missing_ath": key.proof("GET", u(gateway)),
        "bad_ath": key.proof("GET", u(gateway), token=at + "x"),
        "key_mismatch": DpopKey("ES256").proof("GET", u(gateway), token=at),
        "bad_htu": key.proof("GET", u(gateway, "/web/other"), token=at),
    }[case]
    r, rid = send(gateway, at, proof)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("DPoP ")
    assert 'error="invalid_dpop_proof"' in r.headers["www-authenticate"]
    assert outcome(gateway, rid) == "dpop_" + case


def test_bound_cookie_proof_replay_refused(gateway: GatewayProcess, key: DpopKey,
                                           jar: dict[str, dict[str, str]]) -> None:
    at = jar[names.ACCESS]["value"]
    proof = key.proof("GET", u(gateway), token=at)
    assert send(gateway, at, proof)[0].status_code == 200
    r, rid = send(gateway, at, proof)
    assert r.status_code == 401 and outcome(gateway, rid) == "dpop_replayed"


def test_bound_cookie_copied_into_a_bearer_header_refused(
        gateway: GatewayProcess, key: DpopKey, jar: dict[str, dict[str, str]]) -> None:
    at = jar[names.ACCESS]["value"]
    r, rid = send(gateway, at, key.proof("GET", u(gateway), token=at),
                  extra={"Authorization": f"Bearer {at}"})
    assert r.status_code == 401 and outcome(gateway, rid) == "dpop_bound_as_bearer"


def test_unsafe_method_still_needs_the_csrf_header(
        gateway: GatewayProcess, key: DpopKey, jar: dict[str, dict[str, str]]) -> None:
    at = jar[names.ACCESS]["value"]
    token = jar[names.CSRF]["value"]
    r, rid = send(gateway, at, key.proof("POST", u(gateway), token=at), method="POST")
    assert r.status_code == 403 and outcome(gateway, rid) == "csrf_failed"
    r, _ = send(gateway, at + f"; {names.CSRF}={token}",
                key.proof("POST", u(gateway), token=at), method="POST",
                extra={"X-CSRF-Token": token})
    assert r.status_code == 200, r.text


def test_unbound_cookie_unchanged(gateway: GatewayProcess, issuer: IssuerProcess) -> None:
    r = cookie_login(issuer, None)
    assert r.json()["token_type"] == "Bearer"
    at = set_cookies(r)[names.ACCESS]["value"]
    assert send(gateway, at, None)[0].status_code == 200
    r, rid = send(gateway, at, None, path="/secure/page")
    assert r.status_code == 401 and outcome(gateway, rid) == "dpop_required"


def _refresh(issuer: IssuerProcess, jar: dict[str, dict[str, str]],
             proof: str | None) -> httpx.Response:
    headers: dict[str, Any] = {
        "Cookie": f"{names.REFRESH}={jar[names.REFRESH]['value']}; "
                  f"{names.CSRF}={jar[names.CSRF]['value']}",
        csrf.HEADER: jar[names.CSRF]["value"]}
    if proof is not None:
        headers["DPoP"] = proof
    with issuer.client() as http:
        return http.post(names.REFRESH_PATH, headers=headers)


def test_bound_refresh_cookie_needs_a_proof(issuer: IssuerProcess, gateway: GatewayProcess,
                                            key: DpopKey) -> None:
    jar = set_cookies(cookie_login(issuer, key))
    refresh_url = issuer.url + names.REFRESH_PATH
    for proof in (None, DpopKey("ES256").proof("POST", refresh_url)):
        r = _refresh(issuer, jar, proof)
        assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof", r.text
    r = _refresh(issuer, jar, key.proof("POST", refresh_url))  # the refusals burnt nothing
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "DPoP"
    new = set_cookies(r)
    at = new[names.ACCESS]["value"]
    assert issuer.verify(at)["cnf"] == {"jkt": key.jkt}
    assert send(gateway, at, key.proof("GET", u(gateway), token=at))[0].status_code == 200
    assert send(gateway, at, None)[0].status_code == 401
