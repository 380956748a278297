"""aiosqlite connections that cross to their thread once per statement, not four times.

aiosqlite runs every call on the connection's own thread and hands the result back to the
event loop; each hand-off costs tens of microseconds of CPU (two thread switches, a wake-up of
the loop). SQLAlchemy's aiosqlite adapter makes four per statement: open a cursor, execute,
fetch the rows, close the cursor. Here the execute hand-off also creates the cursor, fetches
every row and closes the cursor, so a statement costs one. `commit` and `rollback` skip the
hand-off when the connection has no open transaction, which is exactly when sqlite3 would do
nothing (after a commit, SQLAlchemy's pool still calls rollback on every check-in).

The refresh grant's hot path does not come here: it uses its own connections below
SQLAlchemy (`rawsql`).

SQLAlchemy stays the only user of these objects (`create_async_engine(async_creator=...)`);
it uses only the cursor methods below. Rows are always fetched in full (the issuer's queries
return a few rows), so server-side cursors behave like client-side ones. Tied to aiosqlite
0.22 (pinned in pyproject): `_execute` (run on the thread) and `_conn` (the sqlite3
connection, touched only on that thread, except for `in_transaction`).
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from typing import Any

import aiosqlite

_Rows = tuple[list[Any], Any, int, int | None]


class Cursor:
    """The part of aiosqlite's cursor that SQLAlchemy's adapter uses, one hand-off each."""

    arraysize = 1

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._rows: deque[Any] = deque()
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    def __await__(self) -> Generator[Any, None, Cursor]:
        return self._self().__await__()

    async def _self(self) -> Cursor:
        return self

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _run(self, call: Callable[[sqlite3.Cursor], object]) -> _Rows:
        # On the connection's thread: the sqlite3 cursor lives and dies within this call.
        cur = self._conn._conn.cursor()
        try:
            call(cur)
            rows = cur.fetchall() if cur.description is not None else []
            return rows, cur.description, cur.rowcount, cur.lastrowid
        finally:
            cur.close()

    async def _go(self, call: Callable[[sqlite3.Cursor], object]) -> Cursor:
        rows, self.description, self.rowcount, self.lastrowid = await self._conn._execute(
            self._run, call)
        self._rows = deque(rows)
        return self

    async def execute(self, sql: str, parameters: Any = None) -> Cursor:
        params = () if parameters is None else parameters
        return await self._go(lambda cur: cur.execute(sql, params))

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> Cursor:
        return await self._go(lambda cur: cur.executemany(sql, parameters))

    async def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        n = min(self.arraysize if size is None else size, len(self._rows))
        return [self._rows.popleft() for _ in range(n)]

    async def fetchall(self) -> Sequence[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows

    async def close(self) -> None:
        self._rows.clear()


class Connection(aiosqlite.Connection):
    def cursor(self) -> Cursor:  # type: ignore[override]
        return Cursor(self)

    async def commit(self) -> None:
        if self.in_transaction:
            await super().commit()

    async def rollback(self) -> None:
        if self.in_transaction:
            await super().rollback()


async def connect(args: Sequence[Any], kwargs: Mapping[str, Any]) -> Connection:
    """sqlite3.connect(*args, **kwargs) behind aiosqlite (for `async_creator`)."""
    conn = Connection(lambda: sqlite3.connect(*args, **kwargs), iter_chunk_size=64)
    conn._thread.daemon = True  # as SQLAlchemy does for the connections it makes itself
    await conn
    return conn
