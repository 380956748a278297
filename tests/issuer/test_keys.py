"""Signing algorithms, key files, rotation with publish-before-sign and retired keys kept."""

from __future__ import annotations

import asyncio
import os
import stat
import time

import jwt as pyjwt
import pytest

from wardgate.issuer import admin


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_each_algorithm_verifies_with_pyjwt(make_issuer, alg: str) -> None:  # type: ignore[no-untyped-def]
    iss = make_issuer(start=False, keys={"algorithm": alg})
    iss.add_user("u", "pw", [])
    iss.start()
    with iss.client() as http:
        at = iss.login(http, "u", "pw").json()["access_token"]
    assert pyjwt.get_unverified_header(at)["alg"] == alg  # EdDSA, not Ed25519
    assert iss.verify(at)["sub"]
    (jwk,) = iss.jwks()["keys"]
    assert jwk["alg"] == alg
    key_files = list((iss.workdir / "keys").iterdir())
    assert len(key_files) == 1
    assert stat.S_IMODE(os.stat(key_files[0]).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(iss.workdir / "keys").st_mode) == 0o700


def test_rotation_publishes_before_signing_and_keeps_retired_key(make_issuer) -> None:  # type: ignore[no-untyped-def]
    iss = make_issuer(start=False, keys={"algorithm": "ES256", "reload_interval_s": 0.2},
                      tokens={"access_ttl_s": 10, "id_token_ttl_s": 10})
    iss.add_user("u", "pw", [])
    iss.start()
    with iss.client() as http:
        def kid() -> str:
            at = iss.login(http, "u", "pw").json()["access_token"]
            iss.verify(at)
            return str(pyjwt.get_unverified_header(at)["kid"])

        old = kid()
        new = asyncio.run(admin.rotate_key(iss.cfg, "EdDSA", lead_s=3))
        time.sleep(0.6)  # the running issuer reloads its key table every 0.2 s
        published = {k["kid"] for k in iss.jwks()["keys"]}
        assert published == {old, new.kid}  # published first...
        signer = kid()
        if time.time() < new.activate_at - 0.2:  # (a very slow machine may be past it)
            assert signer == old  # ...but not yet signing
        time.sleep(max(0.0, new.activate_at + 1.0 - time.time()))
        assert kid() == new.kid
        assert old in {k["kid"] for k in iss.jwks()["keys"]}  # retired, still verifiable
    rows = {r.kid: r for r in asyncio.run(admin.list_keys(iss.cfg))}
    assert rows[old].remove_at is not None and rows[old].retire_at is not None
    # Kept until every token it signed has expired (plus a margin for clock skew).
    assert rows[old].remove_at >= rows[old].retire_at + 10


def test_generate_refuses_when_a_key_signs(make_issuer) -> None:  # type: ignore[no-untyped-def]
    iss = make_issuer()
    with pytest.raises(ValueError, match="rotate"):
        asyncio.run(admin.generate_key(iss.cfg))
