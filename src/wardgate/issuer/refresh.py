"""Refresh tokens: opaque, stored as SHA-256, rotated on every use, revoked by family on reuse.

RFC 9700 §4.14.2 (refresh token rotation): presenting an already-rotated token means it was
stolen, or the legitimate client's copy was; either way the whole family is revoked.
Lifetimes: `expires_at` is the idle limit (reset by each rotation), capped by the family's
absolute limit, which rotation never extends.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wardgate.issuer.schema import clients, refresh_tokens
from wardgate.issuer.sessions import digest, new_secret


class Outcome(enum.Enum):
    OK = "ok"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    REVOKED = "revoked"
    REUSED = "reused"
    WRONG_CLIENT = "wrong_client"


@dataclass(frozen=True)
class RefreshRow:
    token_hash: str
    family_id: str
    user_id: int | None
    client_id: str
    sid: str | None
    scope: str
    audience: str
    expires_at: int
    family_expires_at: int
    used: bool
    revoked: bool


@dataclass(frozen=True)
class Rotation:
    outcome: Outcome
    row: RefreshRow | None = None
    new_token: str | None = None


def _row(r: object) -> RefreshRow:
    m = r._mapping  # type: ignore[attr-defined]
    return RefreshRow(token_hash=m["token_hash"], family_id=m["family_id"], user_id=m["user_id"],
                      client_id=m["client_id"], sid=m["sid"], scope=m["scope"],
                      audience=m["audience"], expires_at=m["expires_at"],
                      family_expires_at=m["family_expires_at"], used=bool(m["used"]),
                      revoked=bool(m["revoked"]))


async def issue(conn: AsyncConnection, *, user_id: int | None, client_id: str, sid: str | None,
                scope: str, audience: str, now: int, idle_s: int, absolute_s: int,
                family_id: str | None = None, parent_hash: str | None = None,
                family_expires_at: int | None = None) -> tuple[str, str]:
    """Store a new refresh token; return (token, family_id)."""
    token = new_secret()
    fam = family_id or secrets.token_hex(16)
    fam_exp = family_expires_at if family_expires_at is not None else now + absolute_s
    await conn.execute(insert(refresh_tokens).values(
        token_hash=digest(token), family_id=fam, parent_hash=parent_hash, user_id=user_id,
        client_id=client_id, sid=sid, scope=scope, audience=audience, created_at=now,
        expires_at=min(now + idle_s, fam_exp), family_expires_at=fam_exp, used=False,
        revoked=False))
    return token, fam


async def find(conn: AsyncConnection, token: str) -> RefreshRow | None:
    if not token or len(token) > 256:
        return None
    row = (await conn.execute(select(refresh_tokens).where(
        refresh_tokens.c.token_hash == digest(token)))).first()
    return None if row is None else _row(row)


async def find_with_owner(conn: AsyncConnection, token: str) -> tuple[RefreshRow | None, bool]:
    """The token's row and whether its client is an enabled public client (one query)."""
    if not token or len(token) > 256:
        return None, False
    q = (select(refresh_tokens, clients.c.auth_method, clients.c.disabled.label("c_disabled"))
         .select_from(refresh_tokens.outerjoin(
             clients, clients.c.client_id == refresh_tokens.c.client_id))
         .where(refresh_tokens.c.token_hash == digest(token)))
    r = (await conn.execute(q)).first()
    if r is None:
        return None, False
    m = r._mapping
    return _row(r), m["auth_method"] == "none" and not m["c_disabled"]


async def revoke_family(conn: AsyncConnection, family_id: str) -> None:
    await conn.execute(update(refresh_tokens).where(refresh_tokens.c.family_id == family_id)
                       .values(revoked=True))


async def rotate(conn: AsyncConnection, token: str, client_id: str | None, now: int,
                 idle_s: int, row: RefreshRow | None = None) -> Rotation:
    """Use `token` once. The caller commits even on REUSED, so the family revocation sticks.

    `row` is the token's row when the caller already looked it up.
    """
    row = row if row is not None else await find(conn, token)
    if row is None:
        return Rotation(Outcome.UNKNOWN)
    if client_id is not None and row.client_id != client_id:
        # RFC 6749 §6: the token is bound to the client it was issued to.
        return Rotation(Outcome.WRONG_CLIENT, row)
    if row.revoked:
        return Rotation(Outcome.REVOKED, row)
    if row.used:
        await revoke_family(conn, row.family_id)
        return Rotation(Outcome.REUSED, row)
    if row.expires_at <= now or row.family_expires_at <= now:
        return Rotation(Outcome.EXPIRED, row)
    # Compare-and-set: of two concurrent uses exactly one wins; the loser is a reuse.
    res = await conn.execute(update(refresh_tokens).where(
        refresh_tokens.c.token_hash == row.token_hash, refresh_tokens.c.used.is_(False),
        refresh_tokens.c.revoked.is_(False)).values(used=True))
    if res.rowcount != 1:
        await revoke_family(conn, row.family_id)
        return Rotation(Outcome.REUSED, row)
    new_token, _ = await issue(
        conn, user_id=row.user_id, client_id=row.client_id, sid=row.sid, scope=row.scope,
        audience=row.audience, now=now, idle_s=idle_s, absolute_s=0, family_id=row.family_id,
        parent_hash=row.token_hash, family_expires_at=row.family_expires_at)
    return Rotation(Outcome.OK, row, new_token)
