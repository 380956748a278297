"""JWT routes through the real gateway process: RFC 6750 answers, identity headers, stripping."""

from __future__ import annotations

import http.client
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.support.gateway import raw_exchange, status_of

ISS = "http://127.0.0.1:9/issuer"


@pytest.fixture(scope="module")
def signing_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def mint(key, kid="k1", typ="at+jwt", **claims) -> str:
    now = int(time.time())
    body = {"iss": ISS, "aud": "api", "sub": "alice", "iat": now, "nbf": now, "exp": now + 300,
            "jti": uuid.uuid4().hex, "scope": "orders:read", "roles": ["user"],
            "tenant": "acme"}
    body.update(claims)
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid, "typ": typ})


def jwks_config(tmp_path, signing_key, upstream, routes: list[dict]) -> dict:
    """A gateway config trusting one provider whose JWKS file holds the test key."""
    jwk = json.loads(RSAAlgorithm.to_jwk(signing_key.public_key()))
    jwk.update(kid="k1", alg="RS256", use="sig")
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    return {
        "providers": [{"name": "main", "issuer": ISS, "audiences": ["api"],
                       "jwks_file": str(tmp_path / "jwks.json")}],
        "upstreams": [{"name": "up", "targets": [upstream.url]}],
        "routes": routes,
    }


@pytest.fixture
def jwt_gateway(upstream, gateway_factory, signing_key, tmp_path):
    route = {"upstream": "up", "claims_to_headers": {"sub": "X-User-Id", "roles": "X-User-Roles"}}
    cfg = jwks_config(tmp_path, signing_key, upstream, [
            {**route, "name": "orders", "match": {"path_prefix": "/orders"},
             "auth": {"providers": ["main"], "require": {"scopes": ["orders:read"]},
                      "methods": {"POST": {"scopes": ["orders:write"]}}}},
            {**route, "name": "reports", "match": {"path_prefix": "/reports"},
             "auth": {"providers": ["main"], "require": {"roles": ["admin"]}}},
            {**route, "name": "tenant", "match": {"path": "/t/{tenant}/items"},
             "auth": {"providers": ["main"],
                      "require": {"claims": [{"claim": "tenant", "equals_param": "tenant"}]}}},
            {**route, "name": "public", "match": {"path_prefix": "/public"}, "auth": "none"},
    ])
    return gateway_factory(cfg)


def call(port, path, token=None, method="GET", headers=None):
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request(method, path, headers=h, body=b"" if method == "POST" else None)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def test_missing_token_is_401_without_error_code(jwt_gateway, upstream):
    status, headers, body = call(jwt_gateway.port, "/orders")
    assert status == 401
    assert headers["www-authenticate"] == 'Bearer realm="orders"'
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["status"] == 401
    assert upstream.requests == []


def test_valid_token_forwards_identity_and_drops_token(jwt_gateway, upstream, signing_key):
    token = mint(signing_key)
    status, _, body = call(jwt_gateway.port, "/orders/1", token,
                           headers={"X-User-Id": "admin", "X-Wardgate-Sub": "admin"})
    assert status == 200
    h = json.loads(body)["headers"]
    d = dict(h)
    assert d["x-user-id"] == "alice"
    assert d["x-user-roles"] == "user"
    assert [n for n, _ in h].count("x-user-id") == 1
    assert "authorization" not in d
    assert "x-wardgate-sub" not in d
    log = jwt_gateway.access_log(wait_for=1)[-1]
    assert log["auth"] == "ok" and log["provider"] == "main" and log["sub_hash"]
    assert token not in jwt_gateway.log_path.read_text()


def test_invalid_and_expired_tokens_are_401_invalid_token(jwt_gateway, upstream, signing_key):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for token in (mint(other), mint(signing_key, exp=int(time.time()) - 3600),
                  mint(signing_key, aud="other"), mint(signing_key, typ="dpop+jwt"),
                  "not.a.jwt", mint(signing_key)[:-4]):
        status, headers, body = call(jwt_gateway.port, "/orders", token)
        assert status == 401, token
        assert 'error="invalid_token"' in headers["www-authenticate"]
        assert token not in body.decode()
    assert upstream.requests == []


def test_scope_and_role_failures_are_403_insufficient_scope(jwt_gateway, upstream, signing_key):
    token = mint(signing_key)
    status, headers, _ = call(jwt_gateway.port, "/orders", token, method="POST")
    assert status == 403
    assert 'error="insufficient_scope"' in headers["www-authenticate"]
    assert 'scope="orders:write"' in headers["www-authenticate"]
    status, _, _ = call(jwt_gateway.port, "/reports", token)
    assert status == 403
    status, _, _ = call(jwt_gateway.port, "/reports", mint(signing_key, roles=["admin"]))
    assert status == 200


def test_claim_bound_to_path_parameter(jwt_gateway, signing_key):
    token = mint(signing_key, tenant="acme")
    assert call(jwt_gateway.port, "/t/acme/items", token)[0] == 200
    assert call(jwt_gateway.port, "/t/other/items", token)[0] == 403


def test_malformed_authorization_is_400_invalid_request(jwt_gateway, signing_key):
    token = mint(signing_key)
    req = (b"GET /orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode() +
           b"\r\nAuthorization: Bearer " + mint(signing_key).encode() + b"\r\n\r\n")
    out, _ = raw_exchange(jwt_gateway.port, req)
    assert status_of(out) == 400
    assert b'error="invalid_request"' in out


def test_public_route_still_strips_spoofed_identity(jwt_gateway):
    status, _, body = call(jwt_gateway.port, "/public", headers={"X-Wardgate-Roles": "admin"})
    assert status == 200
    assert "x-wardgate-roles" not in dict(json.loads(body)["headers"])


@pytest.fixture
def cookie_gateway(upstream, gateway_factory, signing_key, tmp_path):
    return gateway_factory(jwks_config(tmp_path, signing_key, upstream, [
        {"name": "app", "match": {"path_prefix": "/app"}, "upstream": "up",
         "auth": {"providers": ["main"], "token": {"cookie": "__Host-wg_at"}}}]))


def test_cookie_token_needs_csrf_header_for_unsafe_methods(cookie_gateway, upstream, signing_key):
    token = mint(signing_key)
    cookie = f"__Host-wg_at={token}; __Host-wg_csrf=c5rf"
    port = cookie_gateway.port
    assert call(port, "/app", headers={"Cookie": cookie})[0] == 200
    status, _, body = call(port, "/app", method="POST", headers={"Cookie": cookie})
    assert status == 403 and json.loads(body)["code"] == "csrf_failed"
    status, _, _ = call(port, "/app", method="POST",
                        headers={"Cookie": cookie, "X-CSRF-Token": "wrong"})
    assert status == 403
    status, _, body = call(port, "/app", method="POST",
                           headers={"Cookie": cookie, "X-CSRF-Token": "c5rf"})
    assert status == 200
    forwarded = dict(json.loads(body)["headers"])
    assert "__Host-wg_at" not in forwarded.get("cookie", "")
    # A bearer header is not sent by browsers cross-site: no CSRF token needed.
    assert call(port, "/app", token, method="POST")[0] == 200
    assert [r.method for r in upstream.requests] == ["GET", "POST", "POST"]


@pytest.fixture
def cors_gateway(upstream, gateway_factory, signing_key, tmp_path):
    return gateway_factory(jwks_config(tmp_path, signing_key, upstream, [
        {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "up",
         "auth": {"providers": ["main"]},
         "cors": {"allow_origins": ["https://app.example"],
                  "allow_headers": ["Authorization", "Content-Type"],
                  "expose_headers": ["X-Request-Id"], "allow_credentials": True}}]))


def test_cors_preflight_answered_without_token_and_headers_on_responses(cors_gateway, upstream,
                                                                       signing_key):
    port = cors_gateway.port
    pre = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "authorization, content-type"}
    status, headers, _ = call(port, "/api/x", method="OPTIONS", headers=pre)
    assert status == 204
    assert headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in headers["access-control-allow-methods"]
    assert headers["access-control-allow-credentials"] == "true"
    assert upstream.requests == []  # answered by the gateway itself
    status, _, _ = call(port, "/api/x", method="OPTIONS",
                        headers={**pre, "Origin": "https://evil.example"})
    assert status == 403
    status, headers, _ = call(port, "/api/x", mint(signing_key),
                              headers={"Origin": "https://app.example"})
    assert status == 200
    assert headers["access-control-allow-origin"] == "https://app.example"
    assert headers["access-control-expose-headers"] == "X-Request-Id"
    # A plain OPTIONS (not a preflight) still needs a token.
    assert call(port, "/api/x", method="OPTIONS")[0] == 401
    # Errors carry CORS headers too, so the browser app can see its 401.
    status, headers, _ = call(port, "/api/x", headers={"Origin": "https://app.example"})
    assert status == 401
    assert headers["access-control-allow-origin"] == "https://app.example"


def test_one_connection_switching_tokens_and_routes_gets_each_identity(jwt_gateway, upstream,
                                                                       signing_key):
    # The gateway reuses the last identity rewrite when a client repeats its fields and token;
    # a new token, a new route or a spoofed identity header must each be seen.
    alice = mint(signing_key, sub="alice")
    bob = mint(signing_key, sub="bob", roles=["admin"])
    c = http.client.HTTPConnection("127.0.0.1", jwt_gateway.port, timeout=5)
    plan = [("/orders/echo", alice, {}), ("/orders/echo", alice, {}), ("/orders/echo", bob, {}),
            ("/reports/echo", bob, {}), ("/orders/echo", alice, {"X-User-Id": "mallory"}),
            ("/orders/echo", alice, {}), ("/public/echo", None, {"X-User-Id": "mallory"})]
    seen = []
    for path, token, extra in plan:
        headers = dict(extra)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        c.request("GET", path, headers=headers)
        r = c.getresponse()
        assert r.status == 200, (path, r.status)
        seen.append(dict(json.loads(r.read())["headers"]))
    c.close()
    assert [h.get("x-user-id") for h in seen] == ["alice", "alice", "bob", "bob", "alice",
                                                  "alice", None]
    assert [h.get("x-user-roles") for h in seen[:4]] == ["user", "user", "admin", "admin"]
    assert not any("authorization" in h for h in seen)


def _orders_config(tmp_path, signing_key, upstream) -> dict:
    return jwks_config(tmp_path, signing_key, upstream, [
        {"name": "orders", "match": {"path_prefix": "/orders"}, "upstream": "up",
         "auth": {"providers": ["main"], "require": {"scopes": ["orders:read"]}}}])


def test_sub_hash_is_keyed_and_one_per_run_across_workers_and_reloads(
        upstream, gateway_factory, signing_key, tmp_path):
    """The logged sub_hash is an HMAC under one random key per `wardgate run`: the same caller
    has the same hash in every worker and after a reload, and nobody without the key can
    confirm a guessed sub by hashing it."""
    import hashlib
    import signal

    cfg = _orders_config(tmp_path, signing_key, upstream)
    cfg["workers"] = 2
    gw = gateway_factory(cfg)
    token = mint(signing_key)
    for _ in range(40):  # fresh connections: SO_REUSEPORT spreads them over both workers
        assert call(gw.port, "/orders", token)[0] == 200
    before = {line["sub_hash"] for line in gw.access_log(wait_for=40)}
    assert len(before) == 1
    assert before != {hashlib.sha256(b"main\0alice").hexdigest()[:16]}  # not the bare hash
    gw.signal(signal.SIGHUP)
    gw.wait_event("reloaded")
    for _ in range(10):
        assert call(gw.port, "/orders", token)[0] == 200
    assert {line["sub_hash"] for line in gw.access_log(wait_for=50)} == before


def test_configured_sub_hash_key_gives_a_stable_hash(upstream, gateway_factory, signing_key,
                                                     tmp_path, monkeypatch):
    """access_log.sub_hash_key_env: the hash is HMAC-SHA256(key, provider NUL sub), the same in
    every run, so logs of several runs or machines can be joined by whoever holds the key."""
    import hashlib
    import hmac

    key = "a-log-correlation-key-of-32-bytes"
    monkeypatch.setenv("WG_TEST_SUB_KEY", key)
    gw = gateway_factory(_orders_config(tmp_path, signing_key, upstream), start=False)
    gw.config["access_log"]["sub_hash_key_env"] = "WG_TEST_SUB_KEY"
    gw.start()
    assert call(gw.port, "/orders", mint(signing_key))[0] == 200
    expected = hmac.new(key.encode(), b"main\0alice", hashlib.sha256).hexdigest()[:16]
    assert gw.access_log(wait_for=1)[-1]["sub_hash"] == expected
