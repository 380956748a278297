"""Signing keys: generation, private key files (mode 0600), and the rotation schedule.

A key row moves through: published (created) -> signing (activate_at) -> retired, still
published (retire_at) -> removed from the JWKS (remove_at, once every token it signed has
expired). Rotation publishes the next key `rotation_lead_s` before it signs, so verifiers that
cache the JWKS already hold it when the first token signed by it arrives.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey, OKPKey, RSAKey
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wardgate.issuer.schema import signing_keys

PrivateKey = RSAKey | ECKey | OKPKey
# Tokens may still be in flight (and verifiers allow leeway) for a little after they expire.
REMOVAL_MARGIN_S = 300


@dataclass(frozen=True)
class KeyRow:
    kid: str
    alg: str
    public_jwk: dict[str, Any]
    private_path: str
    created_at: int
    activate_at: int
    retire_at: int | None
    remove_at: int | None

    def signs_at(self, now: int) -> bool:
        return self.activate_at <= now and (self.retire_at is None or now < self.retire_at)

    def published_at(self, now: int) -> bool:
        return self.remove_at is None or now < self.remove_at

    def state(self, now: int) -> str:
        if not self.published_at(now):
            return "removed"
        if self.signs_at(now):
            return "signing"
        return "next" if now < self.activate_at else "retired"


def generate(alg: str) -> PrivateKey:
    if alg == "RS256":
        return RSAKey.generate_key(2048)
    if alg == "ES256":
        return ECKey.generate_key("P-256")
    if alg == "EdDSA":
        return OKPKey.generate_key("Ed25519")
    raise ValueError(f"unsupported algorithm {alg!r}")


def import_private(alg: str, pem: bytes) -> PrivateKey:
    # Costs ~28 ms for RSA: done once per key by the KeyRing, never per token.
    if alg == "RS256":
        return RSAKey.import_key(pem)
    if alg == "ES256":
        return ECKey.import_key(pem)
    return OKPKey.import_key(pem)


def public_jwk(key: PrivateKey, alg: str, kid: str) -> dict[str, Any]:
    jwk = dict(key.as_dict(private=False))
    # `alg` on every JWK: a key without it verifies any algorithm of its type (jose-facts §8).
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    return jwk


def write_private(directory: str, kid: str, key: PrivateKey) -> str:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = d / f"{kid}.pem"
    # O_EXCL + 0600 at creation: the key is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.as_pem(private=True))
    return str(path)


def _row(r: Any) -> KeyRow:
    m = r._mapping
    return KeyRow(kid=m["kid"], alg=m["alg"], public_jwk=json.loads(m["public_jwk"]),
                  private_path=m["private_path"], created_at=m["created_at"],
                  activate_at=m["activate_at"], retire_at=m["retire_at"],
                  remove_at=m["remove_at"])


async def list_keys(conn: AsyncConnection) -> list[KeyRow]:
    rows = (await conn.execute(select(signing_keys).order_by(signing_keys.c.created_at,
                                                             signing_keys.c.kid))).all()
    return [_row(r) for r in rows]


async def create_key(conn: AsyncConnection, directory: str, alg: str, now: int,
                     activate_at: int) -> KeyRow:
    # RSA generation takes tens of ms and the file write blocks: keep both off the loop.
    key = await asyncio.to_thread(generate, alg)
    kid = key.thumbprint()[:16]
    path = await asyncio.to_thread(write_private, directory, kid, key)
    jwk = public_jwk(key, alg, kid)
    try:
        await conn.execute(insert(signing_keys).values(
            kid=kid, alg=alg, public_jwk=json.dumps(jwk), private_path=path, created_at=now,
            activate_at=activate_at, retire_at=None, remove_at=None))
    except Exception:
        # No orphan key file when the row is not written.
        await asyncio.to_thread(Path(path).unlink, missing_ok=True)
        raise
    return KeyRow(kid, alg, jwk, path, now, activate_at, None, None)


async def rotate(conn: AsyncConnection, directory: str, alg: str, now: int, lead_s: int,
                 max_token_ttl_s: int) -> KeyRow:
    """Add the next key (signs at now+lead); schedule the current signers' retirement."""
    new = await create_key(conn, directory, alg, now, now + lead_s)
    switch = now + lead_s
    for k in await list_keys(conn):
        if k.kid != new.kid and k.retire_at is None:
            await conn.execute(update(signing_keys).where(signing_keys.c.kid == k.kid).values(
                retire_at=switch, remove_at=switch + max_token_ttl_s + REMOVAL_MARGIN_S))
    return new


async def destroy_retired(conn: AsyncConnection, now: int) -> list[str]:
    """Delete private key files of keys that no longer sign; their public JWK stays published.

    A retired private key has no use left, only risk: if it leaked it could still mint tokens
    that verify until the key leaves the JWKS.
    """
    gone = []
    for k in await list_keys(conn):
        if k.retire_at is not None and k.retire_at <= now and k.private_path:
            await asyncio.to_thread(Path(k.private_path).unlink, missing_ok=True)
            await conn.execute(update(signing_keys).where(signing_keys.c.kid == k.kid)
                               .values(private_path=""))
            gone.append(k.kid)
    return gone


def current_signer(rows: list[KeyRow], now: int) -> KeyRow | None:
    """The newest key that signs now; None means no usable key (answer 503, never guess)."""
    live = [k for k in rows if k.signs_at(now)]
    return max(live, key=lambda k: (k.activate_at, k.created_at)) if live else None
