"""OAuth clients: confidential (secret or private_key_jwt) and public (PKCE only).

Client secrets are generated here (256 bits), shown once, and stored as SHA-256: a
high-entropy secret needs no slow hash, and client_credentials stays fast.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from wardgate.issuer.schema import clients

AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post", "private_key_jwt")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._~-]{1,100}$")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")


class ClientExists(ValueError):
    pass


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    auth_method: str
    secret_hash: str | None
    jwks: dict[str, Any] | None
    grant_types: tuple[str, ...]
    scopes: tuple[str, ...]
    audiences: tuple[str, ...]
    redirect_uris: tuple[str, ...]
    disabled: bool
    dpop_bound: bool = False  # RFC 9449 §5.2: tokens only with a DPoP proof

    @property
    def public(self) -> bool:
        return self.auth_method == "none"

    def secret_matches(self, secret: str) -> bool:
        if self.secret_hash is None:
            return False
        return hmac.compare_digest(hash_secret(secret), self.secret_hash)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _check_redirect_uri(uri: str) -> None:
    # RFC 6749 §3.1.2: absolute, no fragment. Loopback http is allowed (RFC 8252 §7.3).
    p = urlsplit(uri)
    if p.fragment or not p.scheme or not p.netloc and p.scheme in ("http", "https"):
        raise ValueError(f"redirect URI {uri!r} must be absolute without a fragment")
    if p.scheme == "http" and p.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"redirect URI {uri!r}: plain http only for loopback")


async def add_client(conn: AsyncConnection, *, client_id: str, name: str, auth_method: str,
                     grant_types: list[str], scopes: list[str], audiences: list[str],
                     redirect_uris: list[str], jwks: dict[str, Any] | None, now: int,
                     dpop_bound: bool = False) -> str | None:
    """Insert a client; return the generated secret for client_secret_* methods (shown once)."""
    # RFC 6749 §2.2 allows more, but ids also appear in URLs, logs and the `sub` claim.
    # All-digit ids would collide with user subjects.
    if not _CLIENT_ID.match(client_id) or client_id.isdigit():
        raise ValueError("client id: 1-100 of A-Z a-z 0-9 . _ ~ -, not only digits")
    if auth_method not in AUTH_METHODS:
        raise ValueError(f"auth method must be one of {', '.join(AUTH_METHODS)}")
    for g in grant_types:
        if g not in GRANT_TYPES:
            raise ValueError(f"grant type {g!r} must be one of {', '.join(GRANT_TYPES)}")
    if auth_method == "none" and "client_credentials" in grant_types:
        raise ValueError("a public client cannot use client_credentials (RFC 6749 §4.4)")
    if auth_method == "private_key_jwt" and not (jwks and jwks.get("keys")):
        raise ValueError("private_key_jwt needs a JWKS with the client's public keys")
    if "authorization_code" in grant_types and not redirect_uris:
        raise ValueError("authorization_code needs at least one redirect URI")
    for uri in redirect_uris:
        _check_redirect_uri(uri)
    if not audiences:
        raise ValueError("a client needs at least one audience")
    secret = secrets.token_urlsafe(32) if auth_method.startswith("client_secret") else None
    try:
        await conn.execute(insert(clients).values(
            client_id=client_id, name=name, auth_method=auth_method,
            secret_hash=hash_secret(secret) if secret else None,
            jwks=json.dumps(jwks) if jwks else None,
            grant_types=json.dumps(sorted(set(grant_types))),
            scopes=json.dumps(sorted(set(scopes))), audiences=json.dumps(audiences),
            redirect_uris=json.dumps(redirect_uris), disabled=False, created_at=now,
            dpop_bound=dpop_bound))
    except IntegrityError:
        raise ClientExists(client_id) from None
    return secret


async def set_secret(conn: AsyncConnection, client_id: str, secret: str) -> bool:
    """Replace a client_secret_* client's secret (stored hashed); False: no such client."""
    if len(secret) < 32:
        raise ValueError("a client secret needs at least 32 characters")
    res = await conn.execute(update(clients).where(
        clients.c.client_id == client_id, clients.c.auth_method.like("client_secret%"))
        .values(secret_hash=hash_secret(secret)))
    return bool(res.rowcount)


def _from_row(row: Any) -> Client:
    r = row._mapping
    return Client(
        client_id=r["client_id"], name=r["name"], auth_method=r["auth_method"],
        secret_hash=r["secret_hash"], jwks=json.loads(r["jwks"]) if r["jwks"] else None,
        grant_types=tuple(json.loads(r["grant_types"])), scopes=tuple(json.loads(r["scopes"])),
        audiences=tuple(json.loads(r["audiences"])),
        redirect_uris=tuple(json.loads(r["redirect_uris"])), disabled=bool(r["disabled"]),
        dpop_bound=bool(r["dpop_bound"]))


async def get_client(conn: AsyncConnection, client_id: str) -> Client | None:
    row = (await conn.execute(select(clients).where(clients.c.client_id == client_id))).first()
    return None if row is None else _from_row(row)


async def list_clients(conn: AsyncConnection) -> list[Client]:
    rows = (await conn.execute(select(clients).order_by(clients.c.client_id))).all()
    return [_from_row(r) for r in rows]
