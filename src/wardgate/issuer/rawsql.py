"""A refresh grant's transaction below SQLAlchemy's execution layer.

The statements are SQLAlchemy Core (`refresh.CLAIM`, `refresh.INSERT`, `audit.INSERT`),
compiled once per dialect (`Compiled`, `Database.compiled`); a grant sends the compiled SQL
straight to an async driver connection, aiosqlite or asyncpg, in one transaction. That skips
SQLAlchemy's per-execution work (connection and transaction objects, execution contexts,
parameter processing, result objects, the pool's checkout and reset, the greenlet bridging
its sync core to the async driver), which cost more than the statements themselves.

`RawPool.claim_then(claim, params, then)` is one transaction:

1. BEGIN and `claim` (an UPDATE ... RETURNING); no row: ROLLBACK, return None.
2. `then(row)` decides and returns (result, writes); if it raises, ROLLBACK and re-raise.
3. The writes (INSERTs), then COMMIT; any failure: ROLLBACK, and the error is raised.

So a grant commits everything or nothing. On SQLite all three steps run in one hand-off to
the connection's own thread (aiosqlite's), `then` included: it must be synchronous, do no
I/O and only read shared state (it decides and signs). One connection serves the pool there:
SQLite has one writer at a time, and a transaction that never leaves its thread holds the
write lock for the shortest time; more connections only met that lock in SQLite's busy
handler and cost more CPU. On PostgreSQL each step awaits asyncpg on the event loop, from a
pool of several connections.

A cancelled grant, or one whose rollback fails, has its connection rolled back in the
background (or dropped) before it is used again: a pooled connection is never inside a
transaction. Driver errors surface as SQLAlchemy `DBAPIError`s, as from the rest of the
issuer's storage. These pools are separate from SQLAlchemy's; nothing is cached in them, so
every change that other connections and processes commit applies to the next grant.
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

    def __init__(self, size: int) -> None:
        self.size = size
        self._sem = asyncio.Semaphore(size)
        self._idle: list[Any] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @abstractmethod
    async def claim_then(self, claim: Compiled, params: Mapping[str, Any],
                         then: Then[T]) -> T | None:
        """One transaction: see the module's docstring."""

    @abstractmethod
    async def _open(self) -> Any: ...

    @abstractmethod
    async def _close_conn(self, conn: Any) -> None: ...

    @abstractmethod
    async def _rollback(self, conn: Any) -> None:
        """End any open transaction on `conn` (raise if that fails)."""

    async def _acquire(self) -> Any:
        await self._sem.acquire()
        try:
            return self._idle.pop() if self._idle else await self._open()
        except BaseException:
            self._sem.release()
            raise

    def _done_with(self, conn: Any, clean: bool) -> None:
        """Back to the pool; unless `clean`, after a rollback in the background."""
        if clean:
            self._release(conn)
        else:  # cancelled mid-transaction, or the rollback failed
            self._spawn(self._reset(conn))

    def _release(self, conn: Any) -> None:
        if self._closed:
            self._spawn(self._close_conn(conn))
        else:
            self._idle.append(conn)
        self._sem.release()

    async def _reset(self, conn: Any) -> None:
        try:
            await self._rollback(conn)
        except BaseException:
            self._sem.release()  # dropped: the pool opens a new one when needed
            await self._close_conn(conn)
            raise
        self._release(conn)

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
# The sqlite3 connection is in autocommit mode (isolation_level=None): BEGIN, COMMIT and
# ROLLBACK are sent explicitly.

def _sqlite_transaction(db: sqlite3.Connection, claim: Compiled, args: Sequence[Any],
                        then: Then[T]) -> tuple[T] | None:
    """On the connection's thread: the whole transaction (None: no row, nothing written)."""
    if db.in_transaction:  # never expected: an idle pooled connection has no transaction
        db.execute("ROLLBACK")
    db.execute("BEGIN")
    try:
        rows = db.execute(claim.sql, args).fetchall()
        if not rows:
            db.execute("ROLLBACK")
            return None
        result, writes = then(rows[0])
        for c, p in writes:
            db.execute(c.sql, c.args(p))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return (result,)


def _sqlite_rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        db.execute("ROLLBACK")


class SqlitePool(RawPool):
    """aiosqlite connections (each with its thread); a transaction is one hand-off."""

    def __init__(self, args: Sequence[Any], kwargs: Mapping[str, Any],
                 on_connect: Callable[[sqlite3.Connection], None], size: int = 1) -> None:
        super().__init__(size)
        self._args = tuple(args)
        self._kwargs = {**kwargs, "isolation_level": None}
        self._on_connect = on_connect

    async def claim_then(self, claim: Compiled, params: Mapping[str, Any],
                         then: Then[T]) -> T | None:
        conn = await self._acquire()
        clean = False
        try:
            try:
                done = await conn._execute(_sqlite_transaction, conn._conn, claim,
                                           claim.args(params), then)
            except Exception as e:
                # The thread is done with the transaction: rolled back, unless that failed.
                clean = not conn._conn.in_transaction
                if isinstance(e, sqlite3.Error):
                    raise _dbapi_error(claim.sql, e, sqlite3.Error) from e
                raise
            clean = True
            return None if done is None else done[0]
        finally:
            self._done_with(conn, clean)

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
        self._errors = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)

    async def claim_then(self, claim: Compiled, params: Mapping[str, Any],
                         then: Then[T]) -> T | None:
        conn = await self._acquire()
        clean = False  # the connection is known to be outside any transaction
        try:
            try:
                await conn.execute("BEGIN")
                row = await conn.fetchrow(claim.sql, *claim.args(params))
                if row is None:
                    await conn.execute("ROLLBACK")  # nothing was written
                    clean = True
                    return None
                result, writes = then(row)
                for c, p in writes:
                    await conn.execute(c.sql, *c.args(p))
                await conn.execute("COMMIT")
            except Exception as e:
                try:
                    await self._rollback(conn)
                    clean = True
                except Exception:  # noqa: S110 - the connection is reset or dropped below
                    pass
                if isinstance(e, self._errors):
                    raise _dbapi_error(claim.sql, e, self._errors[0]) from e
                raise
            clean = True
            return result
        finally:
            self._done_with(conn, clean)

    async def _open(self) -> Any:
        import asyncpg

        try:
            return await asyncpg.connect(*self._args, **self._kwargs)
        except self._errors as e:
            raise _dbapi_error("connect", e, self._errors[0]) from e

    async def _close_conn(self, conn: Any) -> None:
        try:
            await asyncio.wait_for(conn.close(), 5)
        except Exception:
            conn.terminate()

    async def _rollback(self, conn: Any) -> None:
        if conn.is_closed():
            raise ConnectionError("connection closed")
        if conn.is_in_transaction():
            await conn.execute("ROLLBACK")
