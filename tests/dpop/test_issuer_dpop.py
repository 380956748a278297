"""DPoP at the real issuer (RFC 9449 §5, §8, §9): bound tokens from /login and /token, refresh
tokens of public clients bound to the key, clients that require DPoP, nonces, discovery."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt
import pytest

from tests.issuer.support import IssuerProcess, base_config
from tests.support.dpop import DpopKey

from .conftest import login


def claims_of(token: str) -> dict[str, Any]:
    return pyjwt.decode(token, options={"verify_signature": False})


def refresh(issuer: IssuerProcess, rt: str, proof: str | None) -> httpx.Response:
    with issuer.client() as http:
        return http.post("/token", data={"grant_type": "refresh_token", "refresh_token": rt},
                         headers={"DPoP": proof} if proof else {})


def test_discovery_advertises_dpop(issuer: IssuerProcess) -> None:
    doc = httpx.get(issuer.url + "/.well-known/openid-configuration").json()
    assert doc["dpop_signing_alg_values_supported"] == ["ES256", "EdDSA", "RS256", "PS256"]


def test_login_binds_access_and_refresh_token(issuer: IssuerProcess) -> None:
    key = DpopKey("EdDSA")
    out = login(issuer, key).json()
    assert out["token_type"] == "DPoP"
    assert claims_of(out["access_token"])["cnf"] == {"jkt": key.jkt}
    # the refresh token is bound too: without a proof, or with another key's, it is refused
    other = DpopKey("ES256")
    token_url = issuer.url + "/token"
    for proof in (None, other.proof("POST", token_url)):
        r = refresh(issuer, out["refresh_token"], proof)
        assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof", r.text
    # ... and still good with the right key (the refused attempts did not use it up)
    r = refresh(issuer, out["refresh_token"], key.proof("POST", token_url))
    assert r.status_code == 200, r.text
    new = r.json()
    assert new["token_type"] == "DPoP"
    assert claims_of(new["access_token"])["cnf"] == {"jkt": key.jkt}
    # the rotated refresh token inherits the binding
    assert refresh(issuer, new["refresh_token"], None).json()["error"] == "invalid_dpop_proof"
    assert refresh(issuer, new["refresh_token"], key.proof("POST", token_url)).status_code == 200


def test_unbound_login_stays_bearer(issuer: IssuerProcess) -> None:
    out = login(issuer, None).json()
    assert out["token_type"] == "Bearer" and "cnf" not in claims_of(out["access_token"])
    assert refresh(issuer, out["refresh_token"], None).status_code == 200


def test_bad_proofs_at_the_token_endpoint(issuer: IssuerProcess) -> None:
    key = DpopKey("ES256")
    out = login(issuer, key).json()
    rt = out["refresh_token"]
    wrong_url = key.proof("POST", issuer.url + "/login")
    wrong_method = key.proof("GET", issuer.url + "/token")
    old = key.proof("POST", issuer.url + "/token", iat=1)
    for proof in (wrong_url, wrong_method, old, "garbage"):
        r = refresh(issuer, rt, proof)
        assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof"
    used = key.proof("POST", issuer.url + "/token")
    assert refresh(issuer, rt, used).status_code == 200
    r = refresh(issuer, rt, used)  # replayed proof: refused before the token is looked at
    assert r.json()["error"] == "invalid_dpop_proof"
    with issuer.client() as http:
        two = http.post("/token", data={"grant_type": "refresh_token", "refresh_token": rt},
                        headers=[("DPoP", key.proof("POST", issuer.url + "/token")),
                                 ("DPoP", key.proof("POST", issuer.url + "/token"))])
    assert two.json()["error"] == "invalid_dpop_proof"


def test_client_that_requires_dpop(issuer: IssuerProcess) -> None:
    secret = issuer.add_client("svc-dpop", grant_types=["client_credentials"],
                               scopes=["orders:read"], dpop_bound=True)
    key = DpopKey("ES256")
    with issuer.client() as http:
        r = http.post("/token", data={"grant_type": "client_credentials"},
                      auth=("svc-dpop", secret or ""))
        assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof"
        r = http.post("/token", data={"grant_type": "client_credentials"},
                      auth=("svc-dpop", secret or ""),
                      headers={"DPoP": key.proof("POST", issuer.url + "/token")})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["token_type"] == "DPoP"
        assert claims_of(out["access_token"])["cnf"] == {"jkt": key.jkt}
        intro = http.post("/introspect", data={"token": out["access_token"]},
                          auth=("svc-dpop", secret or "")).json()
        assert intro["active"] and intro["token_type"] == "DPoP"
        assert intro["cnf"] == {"jkt": key.jkt}


def test_bound_token_refused_as_bearer_at_userinfo(issuer: IssuerProcess) -> None:
    out = login(issuer, DpopKey("ES256")).json()
    r = httpx.get(issuer.url + "/userinfo",
                  headers={"Authorization": f"Bearer {out['access_token']}"})
    assert r.status_code == 401


@pytest.fixture
def nonce_issuer(tmp_path: Path) -> Iterator[IssuerProcess]:
    proc = IssuerProcess(base_config(tmp_path, dpop={"require_nonce": True}), tmp_path)
    proc.add_user("alice", "correct horse", ["reader"])
    proc.start()
    yield proc
    proc.stop()


def test_issuer_nonce_flow(nonce_issuer: IssuerProcess) -> None:
    key = DpopKey("ES256")
    r = login(nonce_issuer, key)
    assert r.status_code == 400 and r.json()["error"] == "use_dpop_nonce"
    nonce = r.headers["dpop-nonce"]
    r = login(nonce_issuer, key, nonce=nonce)
    assert r.status_code == 200, r.text
    assert r.headers["dpop-nonce"]  # the nonce for the next proof
    out = r.json()
    token_url = nonce_issuer.url + "/token"
    assert refresh(nonce_issuer, out["refresh_token"],
                   key.proof("POST", token_url)).json()["error"] == "use_dpop_nonce"
    assert refresh(nonce_issuer, out["refresh_token"],
                   key.proof("POST", token_url, nonce=nonce)).status_code == 200


def test_existing_database_gains_the_new_columns(tmp_path: Path) -> None:
    """A database made before DPoP (no refresh_tokens.jkt, no clients.dpop_bound) is
    migrated at start: the columns are added, the old rows read as unbound."""
    from wardgate.issuer.db import Database

    path = tmp_path / "old.db"
    db = Database(f"sqlite:///{path}")
    asyncio.run(_migrate_and_close(db))
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE wg_refresh_tokens DROP COLUMN jkt")
    conn.execute("ALTER TABLE wg_clients DROP COLUMN dpop_bound")
    conn.commit()
    assert "jkt" not in _columns(conn, "wg_refresh_tokens")
    conn.close()
    asyncio.run(_migrate_and_close(Database(f"sqlite:///{path}")))
    conn = sqlite3.connect(path)
    assert "jkt" in _columns(conn, "wg_refresh_tokens")
    assert "dpop_bound" in _columns(conn, "wg_clients")
    conn.close()


async def _migrate_and_close(db: Any) -> None:
    await db.migrate()
    await db.close()


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
