"""Issuer and gateway together: login -> protected route -> refresh -> logout, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.issuer.support import IssuerProcess
from tests.support.gateway import GatewayProcess
from tests.support.upstream import Upstream
from wardgate.issuer import cookies as names


@pytest.fixture
def stack(issuer: IssuerProcess, tmp_path: Path) -> Iterator[tuple[GatewayProcess, Upstream]]:
    up = Upstream("orders").start()
    route = {"upstream": "orders", "claims_to_headers": {"sub": "X-User-Id",
                                                          "roles": "X-User-Roles"}}
    cfg = {
        "providers": [{"name": "main", "issuer": issuer.url, "audiences": ["api"],
                       "jwks_uri": issuer.url + "/.well-known/jwks.json"}],
        "upstreams": [{"name": "orders", "targets": [up.url]}],
        "routes": [
            {**route, "name": "orders", "match": {"path_prefix": "/orders"},
             "auth": {"providers": ["main"], "require": {"scopes": ["orders:read"]}}},
            {**route, "name": "web", "match": {"path_prefix": "/web"},
             "auth": {"providers": ["main"], "token": {"cookie": names.ACCESS}}},
        ],
    }
    gw = GatewayProcess(cfg, tmp_path / "gw")
    try:
        gw.start()
        yield gw, up
    finally:
        gw.stop()
        up.stop()


def test_login_route_refresh_logout(issuer: IssuerProcess,
                                    stack: tuple[GatewayProcess, Upstream]) -> None:
    gw, up = stack
    base = f"http://127.0.0.1:{gw.port}"
    with issuer.client() as http:
        tokens = issuer.login(http, "alice", "correct horse").json()
        r = httpx.get(base + "/orders/1",
                      headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert r.status_code == 200, r.text
        sub = issuer.verify(tokens["access_token"])["sub"]
        assert up.requests[-1].header("x-user-id") == sub

        # No token at all: 401 (RFC 6750 §3.1).
        assert httpx.get(base + "/orders/1").status_code == 401

        new = http.post("/token", data={"grant_type": "refresh_token",
                                        "refresh_token": tokens["refresh_token"]}).json()
        r = httpx.get(base + "/orders/2",
                      headers={"Authorization": f"Bearer {new['access_token']}"})
        assert r.status_code == 200

        assert http.post("/logout", headers={
            "Authorization": f"Bearer {new['access_token']}"}).status_code == 200
        r = http.post("/token", data={"grant_type": "refresh_token",
                                      "refresh_token": new["refresh_token"]})
        assert r.json()["error"] == "invalid_grant"


def test_browser_cookie_reaches_the_gateway(issuer: IssuerProcess,
                                            stack: tuple[GatewayProcess, Upstream]) -> None:
    gw, up = stack
    with issuer.client() as http:
        r = issuer.login(http, "bob", "battery staple", mode="cookie")
    access = next(v.split(";")[0].split("=", 1)[1] for v in r.headers.get_list("set-cookie")
                  if v.startswith(names.ACCESS + "="))
    got = httpx.get(f"http://127.0.0.1:{gw.port}/web/home",
                    headers={"Cookie": f"{names.ACCESS}={access}; other=1"})
    assert got.status_code == 200, got.text
    assert up.requests[-1].header("x-user-roles") == "admin"


def test_token_for_another_audience_is_refused(issuer: IssuerProcess,
                                               stack: tuple[GatewayProcess, Upstream]) -> None:
    gw, _ = stack
    secret = issuer.add_client("gw-other-aud", grant_types=["client_credentials"],
                               scopes=["orders:read"], audiences=["elsewhere"])
    with issuer.client() as http:
        at = http.post("/token", data={"grant_type": "client_credentials"},
                       auth=("gw-other-aud", secret or "")).json()["access_token"]
    r = httpx.get(f"http://127.0.0.1:{gw.port}/orders/1",
                  headers={"Authorization": f"Bearer {at}"})
    assert r.status_code == 401
