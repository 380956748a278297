"""The issuer's revocation events (the feed every gateway applies, wardgate.revoke).

Emitted inside the transaction of the change that causes them, so an event exists exactly
when its change committed:

    RFC 7009 /revoke      an access token: its jti; a refresh token: its family's access jtis
    refresh-token reuse   the family's access jtis (and a replayed authorization code's)
    logout                the session's access jtis
    user disabled,        every token of the subject issued before now (`sub`)
    password changed
    `wardgate revoke`     --jti, --sub or --client, by hand

"Before" is the next whole second: `iat` has second resolution, so a token minted in the
same second as the event, before it, is covered (one minted in that second after it is too;
its client refreshes a second later).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from wardgate.issuer.schema import issued_access, revocation_events
from wardgate.revoke.events import Revocation

PAGE = 1000
#: set on a connection whose transaction emitted an event (wardgate.revoke.relay listens)
EMITTED = "wardgate_revocation_emitted"
ACCESS_INSERT = insert(issued_access).inline()
ACCESS_COLUMNS = ("jti", "family_id", "sid", "expires_at")
#: the PostgreSQL advisory lock that orders event inserts (any constant; "wgrevoke" in ASCII)
_EVENTS_LOCK = 0x7767726576_6F6B65


def access_row(claims: dict[str, Any], family_id: str | None) -> dict[str, Any] | None:
    """The row that remembers an access token's jti for its session and family."""
    sid = claims.get("sid")
    if sid is None and family_id is None:
        return None  # client_credentials: no session, no family; revoked by jti or client
    return {"jti": claims["jti"], "family_id": family_id, "sid": sid,
            "expires_at": int(claims["exp"])}


async def remember_access(conn: AsyncConnection, claims: dict[str, Any],
                          family_id: str | None) -> None:
    row = access_row(claims, family_id)
    if row is not None:
        await conn.execute(ACCESS_INSERT, row)


async def emit(conn: AsyncConnection, kind: str, value: str, *, now: int, until: int,
               reason: str) -> Revocation:
    before = now + 1 if kind != "jti" else 0
    ev = Revocation(kind=kind, value=value, until=until, before=before)  # validates
    if conn.dialect.name == "postgresql":
        # Seqs must become visible in the order they are given (see `since`). SQLite gives
        # that for free (one writer from its first write to its commit); on PostgreSQL two
        # transactions could take seqs 10 and 11 and commit 11 first, and a poll in between
        # would move its cursor past 10 for good. This lock, held to the commit, orders them
        # (taken again by a later event of the same transaction: it stacks, one release).
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _EVENTS_LOCK})
    conn.info[EMITTED] = True  # the relay (if any) wakes when this transaction commits
    res = await conn.execute(insert(revocation_events).values(
        kind=kind, value=value, before=before, until=until, at=now, reason=reason))
    seq = res.inserted_primary_key[0] if res.inserted_primary_key else 0
    return Revocation(kind=ev.kind, value=ev.value, until=ev.until, before=ev.before,
                      seq=int(seq))


async def settle(before: float, clock: Callable[[], float] = time.time) -> None:
    """Return when a token minted from now on is no longer covered by a subject or client
    event made with `before` (the next whole second: iat has one-second resolution, so the
    event covers the whole second it was made in). Called after the event's transaction
    commits, by whoever asked for it (log out everywhere, a password change, a disabled user,
    `wardgate revoke`): once that call returns, every token issued before it is refused and
    every token issued after it works. At most a second; never inside a transaction."""
    wait = before - clock()
    if wait > 0:
        await asyncio.sleep(wait)


async def emit_subject(conn: AsyncConnection, sub: str, *, now: int, max_ttl_s: int,
                       reason: str) -> Revocation:
    return await emit(conn, "sub", sub, now=now, until=now + 1 + max_ttl_s, reason=reason)


async def emit_client(conn: AsyncConnection, client_id: str, *, now: int, max_ttl_s: int,
                      reason: str) -> Revocation:
    return await emit(conn, "client", client_id, now=now, until=now + 1 + max_ttl_s,
                      reason=reason)


async def _emit_jtis(conn: AsyncConnection, where: Any, now: int, reason: str) -> int:
    rows = (await conn.execute(select(issued_access.c.jti, issued_access.c.expires_at)
                               .where(where, issued_access.c.expires_at > now))).all()
    for jti, exp in rows:
        await emit(conn, "jti", jti, now=now, until=int(exp), reason=reason)
    return len(rows)


async def emit_family(conn: AsyncConnection, family_id: str, *, now: int, reason: str) -> int:
    """Every live access token issued in the refresh family, by jti."""
    return await _emit_jtis(conn, issued_access.c.family_id == family_id, now, reason)


async def emit_session(conn: AsyncConnection, sid: str, *, now: int, reason: str) -> int:
    """Every live access token issued in the session, by jti."""
    return await _emit_jtis(conn, issued_access.c.sid == sid, now, reason)


async def since(conn: AsyncConnection, seq: int, *, now: int, grace_s: int,
                limit: int = PAGE) -> tuple[list[Revocation], int]:
    """Events after `seq` still covering a live token; and the newest seq of the table (a
    gateway whose cursor is ahead of it talks to a new database and starts again). Every live
    event in (`seq`, newest] is returned (or the page is full): a caller may move its cursor
    to newest when no event came back.

    `newest` is read first and bounds the events read: the two SELECTs are two separate reads
    (sqlite3 opens no transaction for a SELECT, so each sees the commits made before it
    started). Read the other way round, an event committed between them (`wardgate revoke`
    from another process) was missing from the events but counted in newest, the feed's cursor
    moved past it and that gateway never applied it. Seqs become visible in order (SQLite: one
    writer holds the lock from its INSERT to its COMMIT; PostgreSQL: `emit` takes an advisory
    lock held to the commit), so an event this read misses has a seq above newest and comes
    with the next poll."""
    col = revocation_events.c.seq
    newest = int((await conn.execute(select(func.max(col)))).scalar() or 0)
    rows = (await conn.execute(
        select(revocation_events).where(col > seq, col <= newest,
                                        revocation_events.c.until + grace_s > now)
        .order_by(col).limit(limit))).mappings().all()
    events = [Revocation(kind=r["kind"], value=r["value"], until=r["until"],
                         before=r["before"], seq=r["seq"]) for r in rows]
    return events, newest


async def purge(conn: AsyncConnection, now: int, grace_s: int) -> None:
    await conn.execute(delete(revocation_events)
                       .where(revocation_events.c.until + grace_s < now))
    await conn.execute(delete(issued_access).where(issued_access.c.expires_at < now))
