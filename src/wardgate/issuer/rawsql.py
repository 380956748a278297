"""A refresh grant's transaction below SQLAlchemy's execution layer.

The statements are SQLAlchemy Core (`refresh._CLAIM`, `refresh.INSERT`, `audit.INSERT`),
compiled once per dialect when the database opens (`Compiled`); a grant then sends the
compiled SQL straight to the async driver connection, aiosqlite or asyncpg, in one
transaction. What this skips per grant is SQLAlchemy's per-execution work (connection and
transaction objects, execution contexts, parameter processing, result objects, the pool's
checkout and reset events, the greenlet that bridges its sync core to the async driver), which
cost more than the statements themselves.

`RawPool.claim_then(claim, params, then)`:

1. BEGIN and run `claim` (an UPDATE ... RETURNING); no row: ROLLBACK, return None.
2. `then(row)` decides, synchronously, and returns (result, writes); if it raises, ROLLBACK.
3. The writes (INSERTs), then COMMIT; any failure: ROLLBACK, and the error is raised.

So a grant commits everything or nothing. On SQLite each numbered step is one hand-off to the
connection's thread (steps 1 and 3; step 2 runs on the event loop). A cancelled grant, or a
connection whose rollback fails, is rolled back in the background (or dropped) before the
connection is used again: a pooled connection is never inside a transaction.

Driver errors surface as SQLAlchemy `DBAPIError`s, as from the rest of the issuer's storage.
The pools are small and separate from SQLAlchemy's (SQLite: its own aiosqlite connections,
each with its thread and the same pragmas; PostgreSQL: asyncpg connections); both see every
change other connections and processes commit, as nothing is cached.
"""

from __future__ import annotations

import asyncio
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

T = TypeVar("T")
Row = Sequence[Any]
Writes = list[tuple["Compiled", Mapping[str, Any]]]
Then = Callable[[Row], tuple[T, Writes]]


class Compiled:
    """A Core statement compiled for one dialect: its SQL and its positional parameters.

    Values fixed in the statement itself (`.values(used=True)`) are taken from it; the rest
    come from the caller's mapping by name. The dialect's bind processors, where it has any,
    apply as SQLAlchemy would apply them.
    """

    __slots__ = ("sql", "_names", "_fixed", "_procs")
    _procs: tuple[tuple[int, Callable[[Any], Any]], ...]

    def __init__(self, stmt: ClauseElement, dialect: Dialect,
                 column_keys: Sequence[str] | None = None) -> None:
        c = stmt.compile(dialect=dialect,
                         column_keys=list(column_keys) if column_keys is not None else None)
        assert isinstance(c, SQLCompiler)
        self.sql = str(c)
        names = c.positiontup
        if names is None:
            raise ValueError(f"dialect {dialect.name} has no positional parameters")
        self._names = tuple(names)
        procs: Mapping[str, Any] = c._bind_processors or {}
        self._fixed: dict[str, Any] = {}
        for n in self._names:
            bind = c.binds[n]
            if not bind.required and bind.callable is None:
                v = bind.effective_value
                self._fixed[n] = procs[n](v) if n in procs and v is not None else v
        self._procs = tuple((i, procs[n]) for i, n in enumerate(self._names)
                            if n in procs and n not in self._fixed)

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        fixed = self._fixed
        values = [fixed[n] if n in fixed else params[n] for n in self._names]
        for i, proc in self._procs:
            if values[i] is not None:
                values[i] = proc(values[i])
        return values


class RawPool(ABC):
    """At most `size` driver connections, none of them inside a transaction while idle."""

    #: the driver's exceptions, raised as SQLAlchemy `DBAPIError`s
    driver_errors: tuple[type[Exception], ...] = ()

    def __init__(self, size: int) -> None:
        self.size = size
        self._sem = asyncio.Semaphore(size)
        self._idle: list[Any] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @abstractmethod
    async def _open(self) -> Any: ...

    @abstractmethod
    async def _close_conn(self, conn: Any) -> None: ...

    @abstractmethod
    async def _claim(self, conn: Any, sql: str, args: Sequence[Any]) -> Row | None:
        """BEGIN and the claim; without a row, the transaction is over when this returns."""

    @abstractmethod
    async def _write_commit(self, conn: Any, batch: list[tuple[str, Sequence[Any]]]) -> None:
        ...

    @abstractmethod
    async def _rollback(self, conn: Any) -> None:
        """End any open transaction on `conn` (raise if that fails)."""

    async def claim_then(self, claim: Compiled, params: Mapping[str, Any],
                         then: Then[T]) -> T | None:
        conn = await self._acquire()
        clean = False  # the connection is known to be outside any transaction
        try:
            try:
                row = await self._claim(conn, claim.sql, claim.args(params))
                if row is None:
                    clean = True
                    return None
                result, writes = then(row)
                await self._write_commit(conn, [(c.sql, c.args(p)) for c, p in writes])
            except Exception as e:
                try:
                    await self._rollback(conn)
                    clean = True
                except Exception:  # noqa: S110 - the connection is reset or dropped below
                    pass
                if isinstance(e, self.driver_errors):
                    raise _dbapi_error(claim.sql, e, self.driver_errors[0]) from e
                raise
            clean = True
            return result
        finally:
            if clean:
                self._release(conn)
            else:  # cancelled mid-transaction, or the rollback failed
                self._reset_later(conn)

    async def _acquire(self) -> Any:
        await self._sem.acquire()
        try:
            return self._idle.pop() if self._idle else await self._open()
        except BaseException:
            self._sem.release()
            raise

    def _release(self, conn: Any) -> None:
        if self._closed:
            self._spawn(self._close_conn(conn))
        else:
            self._idle.append(conn)
        self._sem.release()

    def _reset_later(self, conn: Any) -> None:
        """Roll `conn` back in the background, then pool it again (or drop it)."""
        async def reset() -> None:
            try:
                await self._rollback(conn)
            except BaseException:
                self._sem.release()
                await self._close_conn(conn)
                raise
            self._release(conn)
        self._spawn(reset())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        self._closed = True
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._close_conn(conn)


def _dbapi_error(sql: str, exc: Exception, base: type[Exception]) -> DBAPIError:
    err = DBAPIError.instance(sql, None, exc, base)
    assert isinstance(err, DBAPIError)
    return err


# -- SQLite (aiosqlite) ------------------------------------------------------------------------
# These run on the connection's own thread. The sqlite3 connection is in autocommit mode
# (isolation_level=None): BEGIN, COMMIT and ROLLBACK are sent explicitly.

def _sqlite_claim(db: sqlite3.Connection, sql: str, args: Sequence[Any]) -> Any:
    if db.in_transaction:  # never expected: an idle pooled connection has no transaction
        db.execute("ROLLBACK")
    db.execute("BEGIN")
    try:
        rows = db.execute(sql, args).fetchall()
    except BaseException:
        db.execute("ROLLBACK")
        raise
    if not rows:
        db.execute("ROLLBACK")  # nothing was written
        return None
    return rows[0]


def _sqlite_write_commit(db: sqlite3.Connection,
                         batch: list[tuple[str, Sequence[Any]]]) -> None:
    try:
        for sql, args in batch:
            db.execute(sql, args)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _sqlite_rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        db.execute("ROLLBACK")


class SqlitePool(RawPool):
    """aiosqlite connections: each statement group is one hand-off to the connection's thread."""

    driver_errors = (sqlite3.Error,)

    def __init__(self, args: Sequence[Any], kwargs: Mapping[str, Any],
                 on_connect: Callable[[sqlite3.Connection], None], size: int) -> None:
        super().__init__(size)
        self._args = tuple(args)
        self._kwargs = {**kwargs, "isolation_level": None}
        self._on_connect = on_connect

    def _connector(self) -> sqlite3.Connection:
        db = sqlite3.connect(*self._args, **self._kwargs)
        self._on_connect(db)
        return db

    async def _open(self) -> aiosqlite.Connection:
        conn = aiosqlite.Connection(self._connector, iter_chunk_size=64)
        conn._thread.daemon = True  # as SQLAlchemy does for the connections it makes itself
        try:
            return await conn
        except sqlite3.Error as e:
            raise _dbapi_error("connect", e, sqlite3.Error) from e

    async def _close_conn(self, conn: aiosqlite.Connection) -> None:
        await conn.close()

    async def _claim(self, conn: aiosqlite.Connection, sql: str,
                     args: Sequence[Any]) -> Row | None:
        row: Row | None = await conn._execute(_sqlite_claim, conn._conn, sql, args)
        return row

    async def _write_commit(self, conn: aiosqlite.Connection,
                            batch: list[tuple[str, Sequence[Any]]]) -> None:
        await conn._execute(_sqlite_write_commit, conn._conn, batch)

    async def _rollback(self, conn: aiosqlite.Connection) -> None:
        await conn._execute(_sqlite_rollback, conn._conn)


# -- PostgreSQL (asyncpg) ----------------------------------------------------------------------

class AsyncpgPool(RawPool):
    """asyncpg connections; statements go through asyncpg's per-connection prepared cache."""

    def __init__(self, args: Sequence[Any], kwargs: Mapping[str, Any], size: int) -> None:
        import asyncpg

        super().__init__(size)
        self._args = tuple(args)
        self._kwargs = dict(kwargs)
        self.driver_errors = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)

    async def _open(self) -> Any:
        import asyncpg

        try:
            return await asyncpg.connect(*self._args, **self._kwargs)
        except self.driver_errors as e:
            raise _dbapi_error("connect", e, self.driver_errors[0]) from e

    async def _close_conn(self, conn: Any) -> None:
        try:
            await asyncio.wait_for(conn.close(), 5)
        except Exception:
            conn.terminate()

    async def _claim(self, conn: Any, sql: str, args: Sequence[Any]) -> Row | None:
        await conn.execute("BEGIN")
        row: Row | None = await conn.fetchrow(sql, *args)
        if row is None:
            await conn.execute("ROLLBACK")  # nothing was written
        return row

    async def _write_commit(self, conn: Any, batch: list[tuple[str, Sequence[Any]]]) -> None:
        for sql, args in batch:
            await conn.execute(sql, *args)
        await conn.execute("COMMIT")

    async def _rollback(self, conn: Any) -> None:
        if conn.is_closed():
            raise ConnectionError("connection closed")
        if conn.is_in_transaction():
            await conn.execute("ROLLBACK")
