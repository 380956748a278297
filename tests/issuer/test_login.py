"""POST /login, access tokens checked by PyJWT against the JWKS, refresh rotation, bad input."""

from __future__ import annotations

import asyncio
import time

import httpx
import jwt as pyjwt
import pytest

from tests.issuer.support import IssuerProcess
from wardgate.issuer import audit
from wardgate.issuer.db import open_database


def test_login_issues_rfc9068_access_token(issuer: IssuerProcess) -> None:
    with issuer.client() as http:
        r = issuer.login(http, "alice", "correct horse")
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 600
    assert len(body["refresh_token"]) >= 43  # 256 bits, base64url
    header = pyjwt.get_unverified_header(body["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "RS256" and header["kid"]
    claims = issuer.verify(body["access_token"])
    for name in ("iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope", "roles"):
        assert name in claims, name
    assert claims["exp"] - claims["iat"] == 600
    assert claims["roles"] == ["reader"] and claims["scope"] == "orders:read"
    assert claims["aud"] == "api" and claims["client_id"] == "wardgate-login"
    assert abs(claims["iat"] - time.time()) < 30


def test_wrong_password_and_unknown_user_look_the_same(issuer: IssuerProcess) -> None:
    with issuer.client() as http:
        a = issuer.login(http, "bob", "wrong password")
        b = issuer.login(http, "nobody-at-all", "wrong password")
    assert a.status_code == b.status_code == 403
    assert a.json() == b.json() == {"error": "access_denied",
                                    "error_description": "invalid username or password"}


def test_unknown_user_costs_as_much_as_a_wrong_password(make_issuer) -> None:  # type: ignore[no-untyped-def]
    # argon2 heavy enough to dominate the HTTP round trip, so a shortcut would show.
    iss = make_issuer(start=False, password_hash={"time_cost": 2, "memory_cost_kib": 32768,
                                                  "parallelism": 1})
    iss.add_user("timing-user", "the-real-password", [])
    iss.start()

    def best_of_3(user: str) -> float:
        best = 1e9
        with iss.client() as http:
            for _ in range(3):
                s = time.perf_counter()
                assert iss.login(http, user, "nope").status_code == 403
                best = min(best, time.perf_counter() - s)
        return best
    with iss.client() as http:  # warm up the connection path and the dummy hash
        iss.login(http, "warm-up", "x")
    known, unknown = best_of_3("timing-user"), best_of_3("timing-nobody")
    assert unknown > known * 0.7, (known, unknown)


@pytest.mark.parametrize(("kwargs", "status"), [
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
    ({"content": b"[1,2]", "headers": {"content-type": "application/json"}}, 400),
    ({"content": b'{"username":"a","username":"b","password":"x"}',
      "headers": {"content-type": "application/json"}}, 400),
    ({"json": {"username": "alice"}}, 400),
    ({"json": {"username": 5, "password": "x"}}, 400),
    ({"json": {"username": "alice", "password": "x", "mode": "other"}}, 400),
    ({"data": {"username": "alice", "password": "x"}}, 400),
    ({"content": b"\xff\xfe", "headers": {"content-type": "application/json"}}, 400),
    ({"content": b"x" * 70_000, "headers": {"content-type": "application/json"}}, 413),
])
def test_bad_login_input_is_a_4xx_oauth_error(issuer: IssuerProcess, kwargs: dict,
                                              status: int) -> None:
    with issuer.client() as http:
        r = http.post("/login", **kwargs)
    assert r.status_code == status, r.text
    assert r.json()["error"] == "invalid_request"


def test_refresh_rotates_and_reuse_revokes_the_family(issuer: IssuerProcess) -> None:
    with issuer.client() as http:
        first = issuer.login(http, "alice", "correct horse").json()
        r1 = http.post("/token", data={"grant_type": "refresh_token",
                                       "refresh_token": first["refresh_token"]})
        assert r1.status_code == 200, r1.text
        second = r1.json()
        assert second["refresh_token"] != first["refresh_token"]
        assert issuer.verify(second["access_token"])["sub"] == \
            issuer.verify(first["access_token"])["sub"]
        # The old token again: reuse. Family revoked, so the fresh one dies as well.
        reuse = http.post("/token", data={"grant_type": "refresh_token",
                                          "refresh_token": first["refresh_token"]})
        assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
        fresh = http.post("/token", data={"grant_type": "refresh_token",
                                          "refresh_token": second["refresh_token"]})
        assert fresh.status_code == 400 and fresh.json()["error"] == "invalid_grant"
    events = asyncio.run(_audit(issuer, "refresh_reuse"))
    assert events, "reuse must be audited"


async def _audit(issuer: IssuerProcess, event: str) -> list[dict]:
    db = await open_database(issuer.cfg.database_url)
    try:
        async with db.begin() as conn:
            return await audit.recent(conn, event)
    finally:
        await db.close()


def test_refresh_with_explicit_public_client_id(issuer: IssuerProcess) -> None:
    with issuer.client() as http:
        rt = issuer.login(http, "alice", "correct horse").json()["refresh_token"]
        ok = http.post("/token", data={"grant_type": "refresh_token", "refresh_token": rt,
                                       "client_id": "wardgate-login"})
        assert ok.status_code == 200
        wrong = http.post("/token", data={"grant_type": "refresh_token",
                                          "refresh_token": ok.json()["refresh_token"],
                                          "client_id": "no-such-client"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"


@pytest.mark.parametrize(("data", "error"), [
    ({"grant_type": "password", "username": "a", "password": "b"}, "unsupported_grant_type"),
    ({}, "invalid_request"),
    ({"grant_type": "refresh_token"}, "invalid_request"),
    ({"grant_type": "refresh_token", "refresh_token": "garbage"}, "invalid_grant"),
])
def test_token_endpoint_errors(issuer: IssuerProcess, data: dict, error: str) -> None:
    with issuer.client() as http:
        r = http.post("/token", data=data)
    assert 400 <= r.status_code < 500 and r.json()["error"] == error


def test_token_endpoint_refuses_json_and_repeated_params(issuer: IssuerProcess) -> None:
    with issuer.client() as http:
        a = http.post("/token", json={"grant_type": "refresh_token"})
        b = http.post("/token", content=b"grant_type=x&grant_type=y",
                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert a.status_code == b.status_code == 400
    assert a.json()["error"] == b.json()["error"] == "invalid_request"


def test_discovery_and_jwks(issuer: IssuerProcess) -> None:
    d = httpx.get(issuer.url + "/.well-known/openid-configuration").json()
    assert d["issuer"] == issuer.url
    for k in ("jwks_uri", "token_endpoint", "revocation_endpoint", "introspection_endpoint",
              "userinfo_endpoint", "authorization_endpoint", "end_session_endpoint"):
        assert d[k].startswith(issuer.url + "/")
    assert d["code_challenge_methods_supported"] == ["S256"]
    r = httpx.get(d["jwks_uri"])
    assert "max-age=" in r.headers["cache-control"]
    for k in r.json()["keys"]:
        assert k["alg"] and k["kid"] and k["use"] == "sig" and "d" not in k


def test_unknown_path_and_method_are_4xx(issuer: IssuerProcess) -> None:
    with issuer.client() as http:
        assert http.get("/nope").status_code == 404
        assert http.get("/token").status_code == 405
        assert http.get("/login").json()["error"] == "invalid_request"


def test_disabled_user_cannot_log_in_or_refresh(issuer: IssuerProcess) -> None:
    from wardgate.issuer import admin

    issuer.add_user("gina", "pw-gina", ["reader"])
    with issuer.client() as http:
        rt = issuer.login(http, "gina", "pw-gina").json()["refresh_token"]
        asyncio.run(admin.set_disabled(issuer.cfg, "gina"))
        r = issuer.login(http, "gina", "pw-gina")
        assert r.status_code == 403 and r.json()["error_description"] == \
            "invalid username or password"
        r = http.post("/token", data={"grant_type": "refresh_token", "refresh_token": rt})
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_concurrent_use_of_one_refresh_token_has_one_winner(issuer: IssuerProcess) -> None:
    async with httpx.AsyncClient(base_url=issuer.url, timeout=20) as http:
        rt = (await http.post("/login", json={"username": "alice", "password": "correct horse"})
              ).json()["refresh_token"]
        results = await asyncio.gather(*(
            http.post("/token", data={"grant_type": "refresh_token", "refresh_token": rt})
            for _ in range(8)))
    codes = sorted(r.status_code for r in results)
    assert codes.count(200) <= 1 and all(c in (200, 400) for c in codes), codes
    assert all(r.json()["error"] == "invalid_grant" for r in results if r.status_code == 400)


def test_refresh_may_narrow_but_never_widen_scope(issuer: IssuerProcess) -> None:
    with issuer.client() as http:
        rt = issuer.login(http, "bob", "battery staple").json()["refresh_token"]
        wide = http.post("/token", data={"grant_type": "refresh_token", "refresh_token": rt,
                                         "scope": "orders:read admin:everything"})
        assert wide.status_code == 400 and wide.json()["error"] == "invalid_scope"
        # Refused before rotation: the token is still good.
        narrow = http.post("/token", data={"grant_type": "refresh_token", "refresh_token": rt,
                                           "scope": "orders:read"})
        assert narrow.status_code == 200, narrow.text
        assert issuer.verify(narrow.json()["access_token"])["scope"] == "orders:read"
        full = http.post("/token", data={"grant_type": "refresh_token",
                                         "refresh_token": narrow.json()["refresh_token"]})
        assert issuer.verify(full.json()["access_token"])["scope"] == "orders:read orders:write"


def test_changes_from_another_process_apply_to_the_very_next_refresh(
        issuer: IssuerProcess) -> None:
    """Roles, an ended session and a disabled user, changed here (another process, as the CLI
    does) between two grants: the next grant sees each change, nothing is cached."""
    from wardgate.issuer import admin, sessions

    issuer.add_user("hugo", "pw-hugo", ["reader"])
    with issuer.client() as http:
        rt = issuer.login(http, "hugo", "pw-hugo").json()["refresh_token"]

        def grant() -> httpx.Response:
            return http.post("/token", data={"grant_type": "refresh_token", "refresh_token": rt})

        r = grant()
        assert r.status_code == 200 and issuer.verify(r.json()["access_token"])["roles"] == [
            "reader"]
        rt = r.json()["refresh_token"]
        asyncio.run(admin.set_roles(issuer.cfg, "hugo", ["admin"]))
        r = grant()
        assert r.status_code == 200 and issuer.verify(r.json()["access_token"])["roles"] == [
            "admin"]
        rt = r.json()["refresh_token"]
        sid = issuer.verify(r.json()["access_token"])["sid"]

        async def end_session() -> None:
            db = await open_database(issuer.cfg.database_url)
            try:
                async with db.begin() as conn:
                    await sessions.end(conn, sid)
            finally:
                await db.close()

        asyncio.run(end_session())
        assert grant().json()["error"] == "invalid_grant"
        rt = issuer.login(http, "hugo", "pw-hugo").json()["refresh_token"]
        asyncio.run(admin.set_disabled(issuer.cfg, "hugo"))
        assert grant().json()["error"] == "invalid_grant"
