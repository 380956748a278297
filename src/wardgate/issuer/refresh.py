"""Refresh tokens: opaque, stored as SHA-256, rotated on every use, revoked by family on reuse.

RFC 9700 §4.14.2 (refresh token rotation): presenting an already-rotated token means it was
stolen, or the legitimate client's copy was; either way the whole family is revoked.
Lifetimes: `expires_at` is the idle limit (reset by each rotation), capped by the family's
absolute limit, which rotation never extends.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, insert, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wardgate.issuer.schema import clients, refresh_tokens, sessions, user_roles, users
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
    jkt: str | None = None  # RFC 9449 §5: the DPoP key a public client's token is bound to


@dataclass(frozen=True)
class Rotation:
    outcome: Outcome
    row: RefreshRow | None = None
    new_token: str | None = None


@dataclass(frozen=True)
class Claim:
    """A token `claim` marked used, with what the grant decides on, read by the same statement.

    `owner_public`: its client is an enabled public client. `user_disabled` is None when no
    user row exists; the session fields are None when no session row exists.
    """
    row: RefreshRow
    owner_public: bool
    user_disabled: bool | None
    roles: tuple[str, ...]
    session_ended: bool | None
    session_expires_at: int | None


def _row(r: object) -> RefreshRow:
    m = r._mapping  # type: ignore[attr-defined]
    return RefreshRow(token_hash=m["token_hash"], family_id=m["family_id"], user_id=m["user_id"],
                      client_id=m["client_id"], sid=m["sid"], scope=m["scope"],
                      audience=m["audience"], expires_at=m["expires_at"],
                      family_expires_at=m["family_expires_at"], used=bool(m["used"]),
                      revoked=bool(m["revoked"]), jkt=m["jkt"])


INSERT = insert(refresh_tokens)  # built once; the values travel as parameters
COLUMNS = tuple(c.name for c in refresh_tokens.c)  # the keys of a `successor` row


def successor(*, user_id: int | None, client_id: str, sid: str | None, scope: str,
              audience: str, now: int, idle_s: int, absolute_s: int,
              family_id: str | None = None, parent_hash: str | None = None,
              family_expires_at: int | None = None,
              jkt: str | None = None) -> tuple[str, str, dict[str, Any]]:
    """A new refresh token: (token, family_id, the row for `INSERT`)."""
    token = new_secret()
    fam = family_id or secrets.token_hex(16)
    fam_exp = family_expires_at if family_expires_at is not None else now + absolute_s
    return token, fam, {
        "token_hash": digest(token), "family_id": fam, "parent_hash": parent_hash,
        "user_id": user_id, "client_id": client_id, "sid": sid, "scope": scope,
        "audience": audience, "created_at": now, "expires_at": min(now + idle_s, fam_exp),
        "family_expires_at": fam_exp, "used": False, "revoked": False, "jkt": jkt}


async def issue(conn: AsyncConnection, *, user_id: int | None, client_id: str, sid: str | None,
                scope: str, audience: str, now: int, idle_s: int, absolute_s: int,
                family_id: str | None = None, parent_hash: str | None = None,
                family_expires_at: int | None = None, jkt: str | None = None) -> tuple[str, str]:
    """Store a new refresh token; return (token, family_id)."""
    token, fam, row = successor(
        user_id=user_id, client_id=client_id, sid=sid, scope=scope, audience=audience,
        now=now, idle_s=idle_s, absolute_s=absolute_s, family_id=family_id,
        parent_hash=parent_hash, family_expires_at=family_expires_at, jkt=jkt)
    await conn.execute(INSERT, row)
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
        parent_hash=row.token_hash, family_expires_at=row.family_expires_at, jkt=row.jkt)
    return Rotation(Outcome.OK, row, new_token)


def _outer(name: str) -> ColumnElement[object]:
    # The claimed row's column, table-qualified by hand: SQLAlchemy's SQLite compiler drops
    # table names throughout a RETURNING clause, subqueries included, which would turn
    # `wg_sessions.sid = wg_refresh_tokens.sid` into the always-true `sid = sid`. The
    # subquery's own key column, left unqualified there, resolves to its own table first.
    return literal_column(f"{refresh_tokens.name}.{name}")


def _about(col: ColumnElement[Any], key: ColumnElement[Any], outer: str) -> ColumnElement[Any]:
    return select(col).where(key == _outer(outer)).scalar_subquery()


_rt = refresh_tokens.c
# The separator as SQL text: a Python str becomes a "literal execute" parameter, which
# SQLAlchemy renders into the statement's text anew on every execution.
_SPACE: Any = literal_column("' '")
# Compare-and-set and read in one statement: of two concurrent uses exactly one matches.
# Sent below SQLAlchemy's execution layer (`Database.claim_then`); `claim_from_row` reads it.
CLAIM = (
    update(refresh_tokens)
    .where(_rt.token_hash == bindparam("presented_hash"), _rt.used.is_(False),
           _rt.revoked.is_(False), _rt.expires_at > bindparam("now"),
           _rt.family_expires_at > bindparam("now"))
    .values(used=True)
    .returning(
        _rt.token_hash, _rt.family_id, _rt.user_id, _rt.client_id, _rt.sid, _rt.scope,
        _rt.audience, _rt.expires_at, _rt.family_expires_at, _rt.jkt,
        _about(clients.c.auth_method, clients.c.client_id, "client_id").label("c_auth_method"),
        _about(clients.c.disabled, clients.c.client_id, "client_id").label("c_disabled"),
        _about(users.c.disabled, users.c.id, "user_id").label("u_disabled"),
        _about(func.aggregate_strings(user_roles.c.role, _SPACE), user_roles.c.user_id,
               "user_id").label("u_roles"),
        _about(sessions.c.ended, sessions.c.sid, "sid").label("s_ended"),
        _about(sessions.c.expires_at, sessions.c.sid, "sid").label("s_expires_at"),
    ))


def claim_params(token: str, now: int) -> dict[str, Any] | None:
    """`CLAIM`'s parameters for a presented token; None when it cannot be one of ours."""
    if not token or len(token) > 256:
        return None
    return {"presented_hash": digest(token), "now": now}


def claim_from_row(r: Sequence[Any]) -> Claim:
    """The row `CLAIM` returned (positional, in its RETURNING order), read.

    A live token matched: it is marked used in the still open transaction. No row says nothing
    about why: the caller then takes the step-by-step path (`find_with_owner`, `rotate`),
    which tells unknown, expired, revoked and reused apart and revokes the family on reuse.
    """
    (token_hash, family_id, user_id, client_id, sid, scope, audience, expires_at,
     family_expires_at, jkt, c_auth_method, c_disabled, u_disabled, u_roles, s_ended,
     s_expires_at) = r
    row = RefreshRow(token_hash=token_hash, family_id=family_id, user_id=user_id,
                     client_id=client_id, sid=sid, scope=scope, audience=audience,
                     expires_at=expires_at, family_expires_at=family_expires_at, used=False,
                     revoked=False, jkt=jkt)
    return Claim(
        row=row,
        owner_public=c_auth_method == "none" and not c_disabled,
        user_disabled=None if u_disabled is None else bool(u_disabled),
        roles=tuple(sorted((u_roles or "").split())),
        session_ended=None if s_ended is None else bool(s_ended),
        session_expires_at=s_expires_at)
