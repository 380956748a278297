"""Delete what nobody can use any more: expired codes, refresh tokens, sessions, jti records,
and the private key files of retired signing keys.

Refresh rows are kept until their family's absolute expiry, so reuse of a rotated token is
still detected (and its family revoked) for as long as any member could be valid.
"""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncConnection

from wardgate.issuer import keys, revocations
from wardgate.issuer.schema import (
    auth_codes,
    refresh_tokens,
    revoked_jti,
    sessions,
    used_assertions,
)


async def purge_expired(conn: AsyncConnection, now: int, grace_s: int = 300) -> None:
    await conn.execute(delete(auth_codes).where(auth_codes.c.expires_at < now))
    await conn.execute(delete(refresh_tokens).where(refresh_tokens.c.family_expires_at < now))
    await conn.execute(delete(revoked_jti).where(revoked_jti.c.expires_at < now))
    await conn.execute(delete(used_assertions).where(used_assertions.c.expires_at < now))
    await conn.execute(delete(sessions).where(sessions.c.expires_at < now))
    await revocations.purge(conn, now, grace_s)
    await keys.destroy_retired(conn, now)
