"""Users and roles in the database (used by the server and by `wardgate users ...`)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from wardgate.issuer.schema import roles, sessions, user_roles, users


class UserExists(ValueError):
    pass


class NoSuchUser(LookupError):
    pass


@dataclass(frozen=True)
class User:
    id: int
    username: str
    password_hash: str
    disabled: bool
    roles: tuple[str, ...]
    scopes: tuple[str, ...]


def valid_username(name: str) -> bool:
    return 0 < len(name) <= 150 and name.isprintable() and name == name.strip()


async def sync_roles(conn: AsyncConnection, config_roles: dict[str, list[str]]) -> None:
    """Make the role table hold the configured roles' scopes (roles from the CLI are kept)."""
    for name, scopes in config_roles.items():
        await ensure_role(conn, name)
        await conn.execute(update(roles).where(roles.c.name == name)
                           .values(scopes=json.dumps(sorted(set(scopes)))))


async def ensure_role(conn: AsyncConnection, name: str) -> None:
    found = (await conn.execute(select(roles.c.name).where(roles.c.name == name))).first()
    if found is None:
        await conn.execute(insert(roles).values(name=name, scopes="[]"))


async def add_user(conn: AsyncConnection, username: str, password_hash: str,
                   role_names: list[str], now: int) -> int:
    if not valid_username(username):
        raise ValueError("username must be 1-150 printable characters without surrounding spaces")
    try:
        res = await conn.execute(insert(users).values(
            username=username, password_hash=password_hash, disabled=False, created_at=now))
    except IntegrityError:
        raise UserExists(username) from None
    pk = res.inserted_primary_key
    assert pk is not None
    user_id = int(pk[0])
    await set_roles(conn, user_id, role_names)
    return user_id


def valid_role(name: str) -> bool:
    return 0 < len(name) <= 100 and name.isprintable() and not any(c.isspace() for c in name)


async def set_roles(conn: AsyncConnection, user_id: int, role_names: list[str]) -> None:
    for name in role_names:
        if not valid_role(name):
            raise ValueError(f"role {name!r}: 1-100 printable characters, no whitespace")
    await conn.execute(delete(user_roles).where(user_roles.c.user_id == user_id))
    for name in sorted(set(role_names)):
        await ensure_role(conn, name)
        await conn.execute(insert(user_roles).values(user_id=user_id, role=name))


async def _load(conn: AsyncConnection, row: object) -> User:
    r = row._mapping  # type: ignore[attr-defined]
    rs = (await conn.execute(
        select(roles.c.name, roles.c.scopes).join(user_roles, user_roles.c.role == roles.c.name)
        .where(user_roles.c.user_id == r["id"]).order_by(roles.c.name))).all()
    scopes: set[str] = set()
    for _, s in rs:
        scopes.update(json.loads(s))
    return User(id=r["id"], username=r["username"], password_hash=r["password_hash"],
                disabled=bool(r["disabled"]), roles=tuple(n for n, _ in rs),
                scopes=tuple(sorted(scopes)))


@dataclass(frozen=True)
class Standing:
    """What a refresh needs to know about a user, read in one query."""
    disabled: bool
    roles: tuple[str, ...]
    session_live: bool


async def standing(conn: AsyncConnection, user_id: int, sid: str | None,
                   now: int) -> Standing | None:
    role_list = (select(func.aggregate_strings(user_roles.c.role, " "))
                 .where(user_roles.c.user_id == users.c.id).scalar_subquery())
    q = (select(users.c.disabled, sessions.c.ended, sessions.c.expires_at,
                role_list.label("roles"))
         .select_from(users.outerjoin(sessions, sessions.c.sid == sid))
         .where(users.c.id == user_id))
    r = (await conn.execute(q)).first()
    if r is None:
        return None
    m = r._mapping
    live = sid is None or (m["ended"] is not None and not m["ended"] and m["expires_at"] > now)
    return Standing(disabled=bool(m["disabled"]),
                    roles=tuple(sorted((m["roles"] or "").split())), session_live=live)


async def get_by_name(conn: AsyncConnection, username: str) -> User | None:
    row = (await conn.execute(select(users).where(users.c.username == username))).first()
    return None if row is None else await _load(conn, row)


async def get_by_id(conn: AsyncConnection, user_id: int) -> User | None:
    row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
    return None if row is None else await _load(conn, row)


async def set_password_hash(conn: AsyncConnection, username: str, password_hash: str) -> None:
    res = await conn.execute(update(users).where(users.c.username == username)
                             .values(password_hash=password_hash))
    if res.rowcount == 0:
        raise NoSuchUser(username)


async def set_disabled(conn: AsyncConnection, username: str, disabled: bool) -> int:
    res = await conn.execute(update(users).where(users.c.username == username)
                             .values(disabled=disabled))
    if res.rowcount == 0:
        raise NoSuchUser(username)
    row = (await conn.execute(select(users.c.id).where(users.c.username == username))).one()
    return int(row[0])


async def list_users(conn: AsyncConnection) -> list[User]:
    rows = (await conn.execute(select(users).order_by(users.c.username))).all()
    return [await _load(conn, r) for r in rows]
