"""Issuer sessions (one per login; the SSO cookie points at one) and opaque secrets."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wardgate.issuer.schema import refresh_tokens, sessions


def new_secret() -> str:
    return secrets.token_urlsafe(32)  # 256 bits (issue 4: refresh tokens >= 256 bits)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Session:
    sid: str
    user_id: int
    auth_time: int
    expires_at: int


async def create(conn: AsyncConnection, user_id: int, now: int, ttl_s: int) -> tuple[str, Session]:
    """Return (cookie value, session). Only the cookie value's hash is stored."""
    value = new_secret()
    s = Session(sid=secrets.token_urlsafe(16), user_id=user_id, auth_time=now,
                expires_at=now + ttl_s)
    await conn.execute(insert(sessions).values(
        id_hash=digest(value), sid=s.sid, user_id=user_id, auth_time=now,
        expires_at=s.expires_at, ended=False))
    return value, s


async def lookup(conn: AsyncConnection, cookie_value: str, now: int) -> Session | None:
    if not cookie_value or len(cookie_value) > 256:
        return None
    row = (await conn.execute(select(sessions).where(
        sessions.c.id_hash == digest(cookie_value)))).first()
    if row is None:
        return None
    m = row._mapping
    if m["ended"] or m["expires_at"] <= now:
        return None
    return Session(sid=m["sid"], user_id=m["user_id"], auth_time=m["auth_time"],
                   expires_at=m["expires_at"])


async def is_live(conn: AsyncConnection, sid: str, now: int) -> bool:
    row = (await conn.execute(select(sessions.c.ended, sessions.c.expires_at)
                              .where(sessions.c.sid == sid))).first()
    return row is not None and not row[0] and row[1] > now


async def user_of(conn: AsyncConnection, sid: str) -> int | None:
    """The user a session (live or ended) belongs to."""
    row = (await conn.execute(select(sessions.c.user_id).where(sessions.c.sid == sid))).first()
    return None if row is None else int(row[0])


async def end(conn: AsyncConnection, sid: str) -> int:
    """End the session and revoke every refresh family it started; return families revoked."""
    await conn.execute(update(sessions).where(sessions.c.sid == sid).values(ended=True))
    res = await conn.execute(update(refresh_tokens).where(
        refresh_tokens.c.sid == sid, refresh_tokens.c.revoked.is_(False)).values(revoked=True))
    return int(res.rowcount or 0)


async def end_for_user(conn: AsyncConnection, user_id: int) -> None:
    """A disabled user's sessions and refresh tokens stop working at once."""
    await conn.execute(update(sessions).where(sessions.c.user_id == user_id).values(ended=True))
    await conn.execute(update(refresh_tokens).where(refresh_tokens.c.user_id == user_id)
                       .values(revoked=True))
