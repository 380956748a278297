"""Each kind of revocation, end to end: a real issuer process emits it, a real gateway
(`wardgate run`, two workers, polling the issuer: no Redis) refuses the token in < 2 s."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import pytest

from tests.issuer.support import IssuerProcess
from tests.revoke.support import client_token, gateway_config, login, status, wait_refused
from tests.support.gateway import GatewayProcess
from tests.support.upstream import Upstream
from wardgate.issuer import admin

BOUND_S = 2.0  # the loose test bound; `make bench` measures p50/p99


@pytest.fixture
def stack(issuer_factory: Callable[..., IssuerProcess], upstream: Upstream,
          gateways: Callable[..., GatewayProcess]) -> tuple[IssuerProcess, GatewayProcess]:
    iss = issuer_factory()
    gw = gateways(gateway_config(iss, upstream.url, workers=2))
    return iss, gw


def _cli(iss: IssuerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wardgate", "revoke", "-c", str(iss.path),
                           *args], capture_output=True, text=True, timeout=60)


def test_rfc7009_access_token(stack: tuple[IssuerProcess, GatewayProcess]) -> None:
    iss, gw = stack
    secret = iss.add_client("svc", grant_types=["client_credentials"], scopes=["orders:read"])
    tok = client_token(iss, "svc", secret or "")
    other = client_token(iss, "svc", secret or "")
    assert status(gw.port, tok) == 200
    with iss.client() as http:
        assert http.post("/revoke", data={"token": tok}, auth=("svc", secret or "")).status_code == 200
    assert wait_refused(gw.port, tok) < BOUND_S
    assert status(gw.port, other) == 200  # only that token
    r = httpx.get(f"http://127.0.0.1:{gw.port}/orders/1", headers={"Authorization": f"Bearer {tok}"})
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert tok not in r.text
    assert any(line.get("auth") == "revoked" for line in gw.access_log(wait_for=4))


def test_rfc7009_refresh_token_takes_its_access_tokens(
        stack: tuple[IssuerProcess, GatewayProcess]) -> None:
    iss, gw = stack
    t = login(iss)
    assert status(gw.port, t["access_token"]) == 200
    with iss.client() as http:
        assert http.post("/revoke", data={"token": t["refresh_token"],
                                          "client_id": "wardgate-login"}).status_code == 200
    assert wait_refused(gw.port, t["access_token"]) < BOUND_S


def test_refresh_token_reuse_revokes_the_family(
        stack: tuple[IssuerProcess, GatewayProcess]) -> None:
    iss, gw = stack
    t = login(iss)
    with iss.client() as http:
        new = http.post("/token", data={"grant_type": "refresh_token",
                                        "refresh_token": t["refresh_token"]}).json()
        assert status(gw.port, new["access_token"]) == 200
        assert status(gw.port, t["access_token"]) == 200
        reuse = http.post("/token", data={"grant_type": "refresh_token",
                                          "refresh_token": t["refresh_token"]})
        assert reuse.json()["error"] == "invalid_grant"
    # both access tokens of the family: the first login's and the rotated one
    assert wait_refused(gw.port, new["access_token"]) < BOUND_S
    assert status(gw.port, t["access_token"]) == 401
    assert status(gw.port, login(iss, "bob", "battery staple")["access_token"]) == 200


def test_logout_revokes_the_session(stack: tuple[IssuerProcess, GatewayProcess]) -> None:
    iss, gw = stack
    mine, elsewhere = login(iss), login(iss)
    assert status(gw.port, mine["access_token"]) == 200
    with iss.client() as http:
        r = http.post("/logout", headers={"Authorization": f"Bearer {mine['access_token']}"})
        assert r.status_code == 200
    assert wait_refused(gw.port, mine["access_token"]) < BOUND_S
    assert status(gw.port, elsewhere["access_token"]) == 200  # another session of alice


def test_logout_everywhere_ends_every_session_of_the_user(
        stack: tuple[IssuerProcess, GatewayProcess]) -> None:
    iss, gw = stack
    mine, elsewhere = login(iss), login(iss)
    bob = login(iss, "bob", "battery staple")["access_token"]
    assert status(gw.port, elsewhere["access_token"]) == 200
    with iss.client() as http:
        r = http.post("/logout", params={"everywhere": "true"},
                      headers={"Authorization": f"Bearer {mine['access_token']}"})
        assert r.status_code == 200 and r.json() == {"logged_out": True, "everywhere": True}
    assert wait_refused(gw.port, elsewhere["access_token"]) < BOUND_S  # the other session
    assert status(gw.port, mine["access_token"]) == 401
    assert status(gw.port, bob) == 200  # another user
    with iss.client() as http:
        # the other session's refresh token mints nothing any more
        r = http.post("/token", data={"grant_type": "refresh_token",
                                      "refresh_token": elsewhere["refresh_token"]})
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
        # a new login after it works (its tokens are not covered by the event)
        fresh = iss.login(http, "alice", "correct horse")
        assert fresh.status_code == 200
    # the logout answered once tokens minted after it are no longer covered (iat has
    # one-second resolution): the new login's token works at once, and keeps working
    token = fresh.json()["access_token"]
    assert status(gw.port, token) == 200
    time.sleep(1.1)
    assert status(gw.port, token) == 200


def test_logout_everywhere_refuses_bad_input(stack: tuple[IssuerProcess, GatewayProcess]) -> None:
    iss, gw = stack
    secret = iss.add_client("svc2", grant_types=["client_credentials"], scopes=["orders:read"])
    svc = client_token(iss, "svc2", secret or "")
    mine = login(iss)
    with iss.client() as http:
        auth = {"Authorization": f"Bearer {mine['access_token']}"}
        for bad in ("yes", "1", ""):
            r = http.post("/logout", params={"everywhere": bad}, headers=auth)
            assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
        r = http.post("/logout?everywhere=true&everywhere=false", headers=auth)
        assert r.status_code == 400
        # a service's token has no user to log out everywhere
        r = http.post("/logout", params={"everywhere": "true"},
                      headers={"Authorization": f"Bearer {svc}"})
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
    # nothing was half-done: alice's session still works
    assert status(gw.port, mine["access_token"]) == 200
    assert status(gw.port, svc) == 200


def test_user_disabled_and_password_changed(stack: tuple[IssuerProcess, GatewayProcess]) -> None:
    iss, gw = stack
    first = login(iss)
    alice, bob = first["access_token"], login(iss, "bob", "battery staple")["access_token"]
    asyncio.run(admin.set_password(iss.cfg, "alice", "new horse"))
    # a login with the new password right after the change is not caught by its event
    assert status(gw.port, login(iss, "alice", "new horse")["access_token"]) == 200
    assert wait_refused(gw.port, alice) < BOUND_S
    assert status(gw.port, bob) == 200
    # a refresh token from before the change mints nothing after it (a thief's copy included)
    with iss.client() as http:
        r = http.post("/token", data={"grant_type": "refresh_token",
                                      "refresh_token": first["refresh_token"]})
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    asyncio.run(admin.set_disabled(iss.cfg, "bob"))
    assert wait_refused(gw.port, bob) < BOUND_S


def test_cli_jti_sub_client(stack: tuple[IssuerProcess, GatewayProcess]) -> None:
    iss, gw = stack
    secret = iss.add_client("batch", grant_types=["client_credentials"], scopes=["orders:read"])
    by_client = client_token(iss, "batch", secret or "")
    by_jti, by_sub = login(iss), login(iss, "bob", "battery staple")
    claims_jti = iss.verify(by_jti["access_token"])
    # `--jti=`: a jti is base64url and may start with "-", which argparse would take for an option
    r = _cli(iss, f"--jti={claims_jti['jti']}", "--exp", str(claims_jti["exp"]))
    assert r.returncode == 0, r.stderr
    assert wait_refused(gw.port, by_jti["access_token"]) < BOUND_S
    r = _cli(iss, "--sub", iss.verify(by_sub["access_token"])["sub"])
    assert r.returncode == 0, r.stderr
    assert wait_refused(gw.port, by_sub["access_token"]) < BOUND_S
    r = _cli(iss, "--client", "batch")
    assert r.returncode == 0, r.stderr
    assert wait_refused(gw.port, by_client) < BOUND_S
    # nothing else went with them
    assert status(gw.port, login(iss)["access_token"]) == 200


def test_cli_refuses_bad_input(issuer_factory: Callable[..., IssuerProcess]) -> None:
    iss = issuer_factory(start=False)
    r = _cli(iss)
    assert r.returncode != 0
    r = _cli(iss, "--jti", "x", "--exp", "1")
    assert r.returncode == 1 and "expired" in r.stderr
    assert "Traceback" not in r.stderr
