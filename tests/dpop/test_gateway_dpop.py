"""End to end: the real issuer binds a token to a DPoP key (POST /login with a proof), the real
gateway checks a proof on every request and the real upstream sees only what passed. Each
RFC 9449 §4.3 check fails its own case, named by the access log's auth outcome."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt as pyjwt
import pytest

from tests.issuer.support import IssuerProcess
from tests.support.dpop import DROP, DpopKey, ath, b64
from tests.support.gateway import GatewayProcess
from tests.support.upstream import Upstream
from wardgate.observe.http import AUTH_OUTCOMES

from .conftest import gateway_config, login


@pytest.fixture(scope="module")
def key() -> DpopKey:
    return DpopKey("ES256")


@pytest.fixture(scope="module")
def bound(issuer: IssuerProcess, key: DpopKey) -> dict[str, Any]:
    r = login(issuer, key)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def gateway(issuer: IssuerProcess, upstream: Upstream,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(gateway_config(issuer, upstream), tmp_path_factory.mktemp("dpop-gw"))
    try:
        yield gw.start()
    finally:
        gw.stop()


def url(gw: GatewayProcess, path: str = "/dpop/orders/1") -> str:
    return f"http://127.0.0.1:{gw.port}{path}"


def call(gw: GatewayProcess, token: str, proofs: list[str], *, scheme: str = "DPoP",
         path: str = "/dpop/orders/1", method: str = "GET") -> tuple[httpx.Response, str]:
    rid = uuid.uuid4().hex
    headers = [("Authorization", f"{scheme} {token}"), ("X-Request-Id", rid)]
    headers += [("DPoP", p) for p in proofs]
    r = httpx.request(method, url(gw, path), headers=headers)
    return r, rid


def outcome(gw: GatewayProcess, rid: str) -> str:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in gw.access_log(wait_for=1, timeout=0.2):
            if line["request_id"] == rid:
                return str(line["auth"])
        time.sleep(0.05)
    raise AssertionError(f"no access log line for {rid}")


def test_issuer_binds_the_token(bound: dict[str, Any], key: DpopKey) -> None:
    assert bound["token_type"] == "DPoP"
    claims = pyjwt.decode(bound["access_token"], options={"verify_signature": False})
    assert claims["cnf"] == {"jkt": key.jkt}


def test_valid_proof_passes_end_to_end(gateway: GatewayProcess, upstream: Upstream,
                                       bound: dict[str, Any], key: DpopKey) -> None:
    at = bound["access_token"]
    for path in ("/dpop/orders/1", "/any/thing"):
        seen = len(upstream.requests)
        r, rid = call(gateway, at, [key.proof("GET", url(gateway, path), token=at)], path=path)
        assert r.status_code == 200, r.text
        assert outcome(gateway, rid) == "ok"
        got = upstream.requests[seen]
        assert got.header("authorization") is None and got.header("dpop") is None
        assert got.header("x-user-id") is not None
    # a POST with its own proof on the same keep-alive connection
    with httpx.Client() as http:
        for _ in range(3):
            r = http.post(url(gateway), headers={
                "Authorization": f"DPoP {at}",
                "DPoP": key.proof("POST", url(gateway), token=at)}, content=b"{}")
            assert r.status_code == 200, r.text


def _cases(key: DpopKey, gw_url: str, at: str) -> dict[str, tuple[list[str], str]]:
    """name -> (the DPoP fields sent, the auth outcome the gateway must log)."""
    def p(**kw: Any) -> str:
        return key.proof("GET", gw_url, token=at, **kw)

    other = DpopKey("ES256")
    hs = key.sign({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": b64(b"k" * 32)}},
                  {"jti": "h", "htm": "GET", "htu": gw_url, "iat": int(time.time()),
                   "ath": ath(at)}, alg="HS256", key=b"k" * 32)
    none_head = b64(b'{"typ":"dpop+jwt","alg":"none"}')
    none_body = b64(json.dumps({"jti": "n", "htm": "GET", "htu": gw_url,
                                "iat": int(time.time())}).encode())
    good = p()
    head, body, sig = good.split(".")
    bad_sig = ".".join((head, body, sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]))
    host = gw_url.split("/")[2]
    return {
        "missing proof": ([], "dpop_missing_proof"),
        "two proofs": ([p(), p()], "dpop_multiple_proofs"),
        "wrong typ": ([p(header={"typ": "JWT"})], "dpop_bad_typ"),
        "HS256 proof": ([hs], "dpop_bad_alg"),
        "none proof": ([f"{none_head}.{none_body}."], "dpop_bad_alg"),
        "private key in jwk": ([p(header={"jwk": key.private_jwk})], "dpop_private_key"),
        "bad signature": ([bad_sig], "dpop_bad_signature"),
        "wrong htm": ([key.proof("POST", gw_url, token=at)], "dpop_bad_htm"),
        "htu other host": ([p(claims={"htu": gw_url.replace(host, "evil.example")})],
                           "dpop_bad_htu"),
        "htu other path": ([p(claims={"htu": gw_url.replace("/orders/1", "/orders/2")})],
                           "dpop_bad_htu"),
        "htu with query": ([p(claims={"htu": gw_url + "?a=1"})], "dpop_bad_htu"),
        "iat too old": ([p(iat=int(time.time()) - 600)], "dpop_iat_too_old"),
        "iat in the future": ([p(iat=int(time.time()) + 600)], "dpop_iat_in_future"),
        "wrong ath": ([p(claims={"ath": ath("some.other.token")})], "dpop_bad_ath"),
        "no ath": ([p(claims={"ath": DROP})], "dpop_missing_ath"),
        "another key's proof": ([other.proof("GET", gw_url, token=at)], "dpop_key_mismatch"),
    }


CASES = ["missing proof", "two proofs", "wrong typ", "HS256 proof", "none proof",
         "private key in jwk", "bad signature", "wrong htm", "htu other host", "htu other path",
         "htu with query", "iat too old", "iat in the future", "wrong ath", "no ath",
         "another key's proof"]


@pytest.mark.parametrize("case", CASES)
def test_each_check_fails_its_own_case(gateway: GatewayProcess, upstream: Upstream,
                                       bound: dict[str, Any], key: DpopKey, case: str) -> None:
    at = bound["access_token"]
    proofs, expected = _cases(key, url(gateway), at)[case]
    seen = len(upstream.requests)
    r, rid = call(gateway, at, proofs)
    assert r.status_code == 401, r.text
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith("DPoP ") and 'error="invalid_dpop_proof"' in challenge
    assert 'algs="ES256 EdDSA RS256 PS256"' in challenge
    assert r.json()["code"] == "invalid_dpop_proof"
    assert outcome(gateway, rid) == expected
    assert expected in AUTH_OUTCOMES  # counted under its own label on /metrics
    assert len(upstream.requests) == seen  # nothing reached the upstream


def test_replayed_jti_refused(gateway: GatewayProcess, bound: dict[str, Any],
                              key: DpopKey) -> None:
    at = bound["access_token"]
    proof = key.proof("GET", url(gateway), token=at)
    first, _ = call(gateway, at, [proof])
    assert first.status_code == 200
    again, rid = call(gateway, at, [proof])
    assert again.status_code == 401 and 'error="invalid_dpop_proof"' in again.headers[
        "www-authenticate"]
    assert outcome(gateway, rid) == "dpop_replayed"
    # the same bytes again on one keep-alive connection: the connection's auth memo must not
    # let the second one through
    fresh = key.proof("GET", url(gateway), token=at)
    with httpx.Client() as http:
        h = {"Authorization": f"DPoP {at}", "DPoP": fresh}
        assert http.get(url(gateway), headers=h).status_code == 200
        assert http.get(url(gateway), headers=h).status_code == 401


def test_bound_token_as_bearer_refused(gateway: GatewayProcess, bound: dict[str, Any],
                                       key: DpopKey) -> None:
    at = bound["access_token"]
    for path in ("/dpop/orders/1", "/any/thing"):  # also where the route says nothing of DPoP
        r, rid = call(gateway, at, [key.proof("GET", url(gateway, path), token=at)],
                      scheme="Bearer", path=path)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("DPoP ")
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
        assert outcome(gateway, rid) == "dpop_bound_as_bearer"


def test_required_route_refuses_bearer_and_advertises_dpop(
        gateway: GatewayProcess, issuer: IssuerProcess, key: DpopKey) -> None:
    plain = login(issuer, None).json()
    assert plain["token_type"] == "Bearer"
    r, rid = call(gateway, plain["access_token"], [], scheme="Bearer")
    assert r.status_code == 401 and outcome(gateway, rid) == "dpop_required"
    # an unbound token may not use the DPoP scheme either
    at = plain["access_token"]
    r, rid = call(gateway, at, [key.proof("GET", url(gateway), token=at)])
    assert r.status_code == 401 and outcome(gateway, rid) == "dpop_unbound_token"
    # the default route still takes it as Bearer
    r, _ = call(gateway, at, [], scheme="Bearer", path="/any/x")
    assert r.status_code == 200
    missing = httpx.get(url(gateway))
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'DPoP realm="dpop", algs="ES256 EdDSA RS256 PS256"'


def test_trusted_forwarded_names_the_htu(issuer: IssuerProcess, upstream: Upstream,
                                         gateway_factory: Callable[..., GatewayProcess],
                                         bound: dict[str, Any], key: DpopKey) -> None:
    gw = gateway_factory(gateway_config(issuer, upstream, trusted_proxies=["127.0.0.1/32"]))
    at = bound["access_token"]
    public = "https://api.example/dpop/orders/1"
    fwd = 'for=198.51.100.7;proto=https;host="api.example"'
    r = httpx.get(url(gw), headers={"Authorization": f"DPoP {at}", "Forwarded": fwd,
                                    "DPoP": key.proof("GET", public, token=at)})
    assert r.status_code == 200, r.text
    # the listener's own URI is not what the client used any more
    r = httpx.get(url(gw), headers={"Authorization": f"DPoP {at}", "Forwarded": fwd,
                                    "DPoP": key.proof("GET", url(gw), token=at)})
    assert r.status_code == 401


def test_nonce_flow(issuer: IssuerProcess, upstream: Upstream,
                    gateway_factory: Callable[..., GatewayProcess], bound: dict[str, Any],
                    key: DpopKey) -> None:
    gw = gateway_factory(gateway_config(issuer, upstream, dpop={"nonce": {"lifetime_s": 60}}))
    at = bound["access_token"]
    r, rid = call(gw, at, [key.proof("GET", url(gw), token=at)])
    assert r.status_code == 401
    assert 'error="use_dpop_nonce"' in r.headers["www-authenticate"]
    nonce = r.headers["dpop-nonce"]
    assert outcome(gw, rid) == "dpop_nonce_required"
    r, _ = call(gw, at, [key.proof("GET", url(gw), token=at, nonce=nonce)])
    assert r.status_code == 200, r.text
    r, rid = call(gw, at, [key.proof("GET", url(gw), token=at, nonce="A" * 32)])
    assert r.status_code == 401 and r.headers["dpop-nonce"] == nonce
    assert outcome(gw, rid) == "dpop_bad_nonce"
