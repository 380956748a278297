"""Administrative operations behind `wardgate users|clients|keys`, usable from code (the demo).

Each function opens the database named by the config, runs one transaction and closes it.
Example (issue 5's demo):

    cfg = IssuerConfig(database_url="sqlite:///demo/issuer.db", keys={"dir": "demo/keys"})
    asyncio.run(admin.add_user(cfg, "alice", "wonderland", ["orders-reader"]))
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from wardgate.config.issuer import IssuerConfig
from wardgate.issuer import audit, clients, keys, revocations, sessions, users
from wardgate.issuer.db import open_database
from wardgate.issuer.passwords import Passwords
from wardgate.revoke.events import Revocation


@asynccontextmanager
async def _tx(cfg: IssuerConfig) -> AsyncIterator[AsyncConnection]:
    db = await open_database(cfg.database_url)
    try:
        async with db.begin() as conn:
            await users.sync_roles(conn, cfg.roles)
            yield conn
    finally:
        await db.close()


def _now() -> int:
    return int(time.time())


async def add_user(cfg: IssuerConfig, username: str, password: str, roles: list[str]) -> int:
    if not password:
        raise ValueError("empty password")
    pw_hash = await Passwords(cfg.password_hash).hash(password)
    async with _tx(cfg) as conn:
        uid = await users.add_user(conn, username, pw_hash, roles, _now())
        await audit.record(conn, _now(), "user_added", username=username, roles=roles)
    return uid


async def set_password(cfg: IssuerConfig, username: str, password: str) -> None:
    if not password:
        raise ValueError("empty password")
    pw_hash = await Passwords(cfg.password_hash).hash(password)
    async with _tx(cfg) as conn:
        await users.set_password_hash(conn, username, pw_hash)
        user = await users.get_by_name(conn, username)
        assert user is not None
        # whoever knew the old password may hold a session or a refresh token: both end, so
        # nothing issued before the change can mint new tokens after it
        await sessions.end_for_user(conn, user.id)
        # tokens issued with the old password stop at every gateway (wardgate.revoke)
        await revocations.emit_subject(conn, str(user.id), now=_now(),
                                       max_ttl_s=max_token_ttl(cfg), reason="password_changed")
        await audit.record(conn, _now(), "password_changed", username=username)


async def set_disabled(cfg: IssuerConfig, username: str, disabled: bool = True) -> None:
    async with _tx(cfg) as conn:
        uid = await users.set_disabled(conn, username, disabled)
        if disabled:
            await sessions.end_for_user(conn, uid)
            await revocations.emit_subject(conn, str(uid), now=_now(),
                                           max_ttl_s=max_token_ttl(cfg), reason="user_disabled")
        await audit.record(conn, _now(), "user_disabled" if disabled else "user_enabled",
                           username=username)


async def set_roles(cfg: IssuerConfig, username: str, roles: list[str]) -> None:
    """Replace a user's roles; the next refresh already carries the new ones."""
    async with _tx(cfg) as conn:
        user = await users.get_by_name(conn, username)
        if user is None:
            raise users.NoSuchUser(username)
        await users.set_roles(conn, user.id, roles)
        await audit.record(conn, _now(), "roles_changed", username=username, roles=roles)


async def list_users(cfg: IssuerConfig) -> list[users.User]:
    async with _tx(cfg) as conn:
        return await users.list_users(conn)


async def add_client(cfg: IssuerConfig, client_id: str, *, name: str | None = None,
                     auth_method: str = "client_secret_basic",
                     grant_types: list[str] | None = None, scopes: list[str] | None = None,
                     audiences: list[str] | None = None, redirect_uris: list[str] | None = None,
                     jwks: dict[str, Any] | None = None, dpop_bound: bool = False) -> str | None:
    """Register a client; returns its generated secret (shown once) for client_secret_*."""
    async with _tx(cfg) as conn:
        secret = await clients.add_client(
            conn, client_id=client_id, name=name or client_id, auth_method=auth_method,
            grant_types=grant_types or ["client_credentials"], scopes=scopes or [],
            audiences=audiences or [cfg.tokens.default_audience],
            redirect_uris=redirect_uris or [], jwks=jwks, now=_now(), dpop_bound=dpop_bound)
        await audit.record(conn, _now(), "client_added", client_id=client_id,
                           auth_method=auth_method)
    return secret


async def set_client_secret(cfg: IssuerConfig, client_id: str, secret: str) -> bool:
    """Give a client_secret_* client a known secret (the demo's own client); False: none."""
    async with _tx(cfg) as conn:
        done = await clients.set_secret(conn, client_id, secret)
        if done:
            await audit.record(conn, _now(), "client_secret_set", client_id=client_id)
    return done


async def list_clients(cfg: IssuerConfig) -> list[clients.Client]:
    async with _tx(cfg) as conn:
        return await clients.list_clients(conn)


def max_token_ttl(cfg: IssuerConfig) -> int:
    return max(cfg.tokens.access_ttl_s, cfg.tokens.id_token_ttl_s)


async def revoke(cfg: IssuerConfig, *, jti: str | None = None, exp: int | None = None,
                 sub: str | None = None, client_id: str | None = None) -> Revocation:
    """`wardgate revoke`: one event for the feed (exactly one of jti, sub, client_id).

    A jti is kept until `exp` (the token's own, when known), else for the longest token
    lifetime from now, which covers any token this issuer has issued."""
    if sum(x is not None for x in (jti, sub, client_id)) != 1:
        raise ValueError("give exactly one of --jti, --sub, --client")
    now = _now()
    ttl = max_token_ttl(cfg)
    async with _tx(cfg) as conn:
        if jti is not None:
            until = exp if exp is not None else now + ttl
            if until <= now:
                raise ValueError("that token has expired already")
            ev = await revocations.emit(conn, "jti", jti, now=now, until=until, reason="admin")
        elif sub is not None:
            ev = await revocations.emit_subject(conn, sub, now=now, max_ttl_s=ttl,
                                                reason="admin")
        else:
            assert client_id is not None
            ev = await revocations.emit_client(conn, client_id, now=now, max_ttl_s=ttl,
                                               reason="admin")
        await audit.record(conn, now, "revocation", kind=ev.kind, seq=ev.seq,
                           value=ev.value if ev.kind != "jti" else None)
    return ev


async def generate_key(cfg: IssuerConfig, algorithm: str | None = None) -> keys.KeyRow:
    """Create a key that signs at once; only when no key signs yet (otherwise rotate)."""
    now = _now()
    async with _tx(cfg) as conn:
        if keys.current_signer(await keys.list_keys(conn), now) is not None:
            raise ValueError("a signing key already exists; use `wardgate keys rotate`")
        row = await keys.create_key(conn, cfg.keys.dir, algorithm or cfg.keys.algorithm, now, now)
        await audit.record(conn, now, "key_generated", kid=row.kid, alg=row.alg)
    return row


async def rotate_key(cfg: IssuerConfig, algorithm: str | None = None,
                     lead_s: int | None = None) -> keys.KeyRow:
    now = _now()
    lead = cfg.keys.rotation_lead_s if lead_s is None else lead_s
    async with _tx(cfg) as conn:
        row = await keys.rotate(conn, cfg.keys.dir, algorithm or cfg.keys.algorithm, now, lead,
                                max_token_ttl(cfg))
        await audit.record(conn, now, "key_rotated", kid=row.kid, alg=row.alg,
                           activate_at=row.activate_at)
    return row


async def list_keys(cfg: IssuerConfig) -> list[keys.KeyRow]:
    async with _tx(cfg) as conn:
        return await keys.list_keys(conn)
