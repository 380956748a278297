"""client_credentials (secret and private_key_jwt), revocation, introspection, userinfo, logout."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.issuer.support import IssuerProcess


@pytest.fixture(scope="module")
def svc(issuer: IssuerProcess) -> tuple[str, str]:
    secret = issuer.add_client("svc-a", grant_types=["client_credentials"],
                               scopes=["orders:read", "orders:write"],
                               audiences=["orders", "billing"])
    assert secret
    return "svc-a", secret


@pytest.fixture(scope="module")
def device(issuer: IssuerProcess) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(pyjwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "dev1", "alg": "ES256", "use": "sig"})
    issuer.add_client("device-1", auth_method="private_key_jwt",
                      grant_types=["client_credentials"], scopes=["telemetry:write"],
                      audiences=["iot"], jwks={"keys": [jwk]})
    return key


def test_client_credentials_basic_and_post(issuer: IssuerProcess, svc: tuple[str, str]) -> None:
    cid, secret = svc
    with issuer.client() as http:
        a = http.post("/token", data={"grant_type": "client_credentials",
                                      "scope": "orders:read"}, auth=(cid, secret))
        b = http.post("/token", data={"grant_type": "client_credentials", "client_id": cid,
                                      "client_secret": secret, "audience": "billing"})
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    assert "refresh_token" not in a.json()  # RFC 6749 §4.4.3
    ca = issuer.verify(a.json()["access_token"], audience="orders")
    assert ca["sub"] == cid and ca["client_id"] == cid and ca["scope"] == "orders:read"
    cb = issuer.verify(b.json()["access_token"], audience="billing")
    assert cb["scope"] == "orders:read orders:write"


@pytest.mark.parametrize(("data", "auth", "status", "error"), [
    ({}, ("svc-a", "wrong"), 401, "invalid_client"),
    ({}, ("nobody", "x"), 401, "invalid_client"),
    ({"client_id": "svc-a"}, None, 401, "invalid_client"),
    ({"scope": "admin:all"}, "ok", 400, "invalid_scope"),
    ({"audience": "payroll"}, "ok", 400, "invalid_target"),
    ({"client_secret": "x"}, "ok", 400, "invalid_request"),  # two auth methods at once
    ({"client_id": "wardgate-login"}, None, 401, "invalid_client"),  # public client
])
def test_client_credentials_failures(issuer: IssuerProcess, svc: tuple[str, str], data: dict,
                                     auth: object, status: int, error: str) -> None:
    if auth == "ok":
        auth = svc
    with issuer.client() as http:
        r = http.post("/token", data={"grant_type": "client_credentials", **data},
                      auth=auth)  # type: ignore[arg-type]
    assert r.status_code == status and r.json()["error"] == error, r.text
    if status == 401:
        assert r.headers["www-authenticate"].startswith("Basic")


def _assertion(issuer: IssuerProcess, key: ec.EllipticCurvePrivateKey, **over: object) -> str:
    now = int(time.time())
    claims = {"iss": "device-1", "sub": "device-1", "aud": issuer.url + "/token",
              "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex, **over}
    return pyjwt.encode(claims, key, algorithm="ES256", headers={"kid": "dev1"})


def _jwt_grant(http: httpx.Client, assertion: str) -> httpx.Response:
    return http.post("/token", data={
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion})


def test_private_key_jwt(issuer: IssuerProcess, device: ec.EllipticCurvePrivateKey) -> None:
    a = _assertion(issuer, device)
    with issuer.client() as http:
        ok = _jwt_grant(http, a)
        assert ok.status_code == 200, ok.text
        assert issuer.verify(ok.json()["access_token"], audience="iot")["sub"] == "device-1"
        replay = _jwt_grant(http, a)  # RFC 7523 §3: jti is single-use
        assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"
        other = ec.generate_private_key(ec.SECP256R1())
        for bad in (_assertion(issuer, other),
                    _assertion(issuer, device, aud="https://elsewhere"),
                    _assertion(issuer, device, exp=int(time.time()) + 3600),
                    _assertion(issuer, device, exp=int(time.time()) - 120),
                    _assertion(issuer, device, sub="svc-a"),
                    "not.a.jwt", "x" * 9000):
            r = _jwt_grant(http, bad)
            assert r.status_code in (401, 413) and r.json()["error"] in (
                "invalid_client", "invalid_request"), r.text


def test_revoke_refresh_token_and_access_token(issuer: IssuerProcess,
                                               svc: tuple[str, str]) -> None:
    with issuer.client() as http:
        tokens = issuer.login(http, "alice", "correct horse").json()
        # Another client cannot revoke alice's token (RFC 7009 §2.1): 200, but nothing happens.
        r = http.post("/revoke", data={"token": tokens["refresh_token"]}, auth=svc)
        assert r.status_code == 200
        intro = http.post("/introspect", data={"token": tokens["refresh_token"]}, auth=svc)
        assert intro.json()["active"] is True and intro.json()["token_type"] == "refresh_token"
        r = http.post("/revoke", data={"token": tokens["refresh_token"],
                                       "client_id": "wardgate-login"})
        assert r.status_code == 200
        again = http.post("/token", data={"grant_type": "refresh_token",
                                          "refresh_token": tokens["refresh_token"]})
        assert again.json()["error"] == "invalid_grant"
        # Access token revocation is recorded by jti: introspection then says inactive.
        at = tokens["access_token"]
        assert http.post("/introspect", data={"token": at}, auth=svc).json()["active"] is True
        http.post("/revoke", data={"token": at, "token_type_hint": "access_token",
                                   "client_id": "wardgate-login"})
        assert http.post("/introspect", data={"token": at}, auth=svc).json() == {"active": False}
        # Unknown tokens: still 200 (§2.2).
        assert http.post("/revoke", data={"token": "nonsense", "client_id": "wardgate-login"}
                         ).status_code == 200


def test_introspection(issuer: IssuerProcess, svc: tuple[str, str]) -> None:
    with issuer.client() as http:
        at = issuer.login(http, "bob", "battery staple").json()["access_token"]
        r = http.post("/introspect", data={"token": at}, auth=svc)
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        body = r.json()
        assert body["active"] is True and body["roles"] == ["admin"]
        assert body["scope"] == "orders:read orders:write"
        assert http.post("/introspect", data={"token": at[:-4] + "AAAA"},
                         auth=svc).json() == {"active": False}
        # Public clients may not introspect (RFC 7662 §2.1: the endpoint is protected).
        pub = http.post("/introspect", data={"token": at, "client_id": "wardgate-login"})
        assert pub.status_code == 401 and pub.json()["error"] == "invalid_client"
        anon = http.post("/introspect", data={"token": at})
        assert anon.status_code == 401


def test_userinfo_and_logout(issuer: IssuerProcess, svc: tuple[str, str]) -> None:
    with issuer.client() as http:
        tokens = issuer.login(http, "bob", "battery staple").json()
        at = tokens["access_token"]
        u = http.get("/userinfo", headers={"Authorization": f"Bearer {at}"})
        assert u.status_code == 200
        assert u.json()["preferred_username"] == "bob" and u.json()["roles"] == ["admin"]
        bad = http.get("/userinfo", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401 and "invalid_token" in bad.headers["www-authenticate"]
        assert http.get("/userinfo").status_code == 401
        # A service's client_credentials token is not a user's: no userinfo for it.
        svc_at = http.post("/token", data={"grant_type": "client_credentials"},
                           auth=svc).json()["access_token"]
        assert http.get("/userinfo", headers={"Authorization": f"Bearer {svc_at}"}
                        ).status_code == 401
        out = http.post("/logout", headers={"Authorization": f"Bearer {at}"})
        assert out.status_code == 200
        # The session ended: its refresh family is revoked and userinfo refuses the token.
        r = http.post("/token", data={"grant_type": "refresh_token",
                                      "refresh_token": tokens["refresh_token"]})
        assert r.json()["error"] == "invalid_grant"
        assert http.get("/userinfo", headers={"Authorization": f"Bearer {at}"}).status_code == 401
        assert http.post("/introspect", data={"token": at}, auth=svc).json()["active"] is False


def test_logout_with_refresh_token_body(issuer: IssuerProcess) -> None:
    with issuer.client() as http:
        tokens = issuer.login(http, "alice", "correct horse").json()
        assert http.post("/logout", json={"refresh_token": tokens["refresh_token"]}
                         ).status_code == 200
        r = http.post("/token", data={"grant_type": "refresh_token",
                                      "refresh_token": tokens["refresh_token"]})
        assert r.json()["error"] == "invalid_grant"
        assert http.post("/logout", json={}).status_code == 400
