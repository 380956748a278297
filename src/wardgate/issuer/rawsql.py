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

So a grant commits everything or nothing.

SQLite (`SqlitePool`): one connection. All three steps run on its own thread (aiosqlite's),
`then` included: it must be synchronous, do no I/O and only read shared state (it decides
and signs). The transactions queued during one event-loop iteration cross to that thread as
one job and run one after another, each with its own BEGIN and COMMIT or ROLLBACK. SQLite has
one writer at a time anyway; a transaction that never leaves its thread holds the write lock
for the shortest time; and one hand-off per batch instead of two per grant saves most of the
thread wake-ups and context switches, which had cost about as much CPU as SQLite itself.
A grant cancelled before its batch leaves is dropped (nothing); once the batch has left,
the thread still finishes its transaction (all).

PostgreSQL (`AsyncpgPool`): each step awaits asyncpg on the event loop, from a pool of
several connections. A cancelled grant, or one whose rollback fails, has its connection
rolled back in the background (or dropped) before it is used again: a pooled connection is
never inside a transaction.

Driver errors surface as SQLAlchemy `DBAPIError`s, as from the rest of the issuer's storage.
These connections are separate from SQLAlchemy's pool; nothing is cached in them, so every
change that other connections and processes commit applies to the next grant.
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
    """Driver connections for `claim_then`, outside SQLAlchemy's pool."""

    size: int  # connections at most

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @abstractmethod
    async def claim_then(self, claim: Compiled, params: Mapping[str, Any],
                         then: Then[T]) -> T | None:
        """One transaction: see the module's docstring."""

    async def close(self) -> None:
        self._closed = True
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


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


def _sqlite_batch(db: sqlite3.Connection, batch: list[tuple[Compiled, Sequence[Any], Then[Any]]]
                  ) -> tuple[list[tuple[bool, Any]], bool]:
    """On the connection's thread: each transaction of the batch in turn, each on its own.

    Returns each one's outcome (True and its result, or False and its exception) and whether
    the connection is still usable (outside any transaction).
    """
    outcomes: list[tuple[bool, Any]] = []
    for claim, args, then in batch:
        try:
            outcomes.append((True, _sqlite_transaction(db, claim, args, then)))
        except Exception as e:
            outcomes.append((False, e))
    return outcomes, not db.in_transaction


_Pending = tuple["asyncio.Future[Any]", Compiled, Sequence[Any], Then[Any]]


class SqlitePool(RawPool):
    """One aiosqlite connection; the grants of one event-loop iteration go as one batch.

    Each hand-off to the connection's thread costs thread wake-ups and context switches,
    several per grant under load on one core (the GIL ping-pongs too). So `claim_then` queues
    its transaction; once per loop iteration the queue goes to the thread as one job, which
    runs the transactions one after another, each with its own BEGIN and COMMIT or ROLLBACK;
    one failing leaves the others untouched. The results come back together.
    """

    size = 1

    def __init__(self, args: Sequence[Any], kwargs: Mapping[str, Any],
                 on_connect: Callable[[sqlite3.Connection], None]) -> None:
        super().__init__()
        self._args = tuple(args)
        self._kwargs = {**kwargs, "isolation_level": None}
        self._on_connect = on_connect
        self._pending: list[_Pending] = []
        self._conn: aiosqlite.Connection | None = None
        self._opening = asyncio.Lock()

    async def claim_then(self, claim: Compiled, params: Mapping[str, Any],
                         then: Then[T]) -> T | None:
        args = claim.args(params)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[T] | None] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)  # after the callbacks ready now: their grants too
        self._pending.append((fut, claim, args, then))
        try:
            done = await fut  # cancelled: dropped, or finished by the thread (all)
        except sqlite3.Error as e:
            raise _dbapi_error(claim.sql, e, sqlite3.Error) from e
        return None if done is None else done[0]

    def _flush(self) -> None:
        # A grant cancelled before its batch leaves is dropped: it writes nothing.
        batch = [p for p in self._pending if not p[0].done()]
        self._pending = []
        if batch:
            self._spawn(self._run(batch))

    async def _run(self, batch: list[_Pending]) -> None:
        try:
            if self._closed:
                raise sqlite3.OperationalError("the issuer's database is closed")
            conn = await self._connection()
            usable = True
            try:
                outcomes, usable = await conn._execute(
                    _sqlite_batch, conn._conn, [(c, a, t) for _, c, a, t in batch])
            except ValueError as e:  # aiosqlite: the connection is closed
                usable = False
                raise sqlite3.OperationalError(str(e)) from e
            finally:
                if not usable:  # a ROLLBACK failed, or the connection is gone: a new one
                    self._conn = None
                    self._spawn(conn.close())
        except Exception as e:
            for fut, *_ in batch:
                if not fut.done():
                    fut.set_exception(e)
            return
        for (fut, *_), (ok, value) in zip(batch, outcomes, strict=True):
            if fut.done():
                continue  # cancelled
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

    async def _connection(self) -> aiosqlite.Connection:
        async with self._opening:
            if self._conn is None:
                conn = aiosqlite.Connection(self._connector, iter_chunk_size=64)
                conn._thread.daemon = True  # as SQLAlchemy does for its own connections
                self._conn = await conn
            return self._conn

    def _connector(self) -> sqlite3.Connection:
        db = sqlite3.connect(*self._args, **self._kwargs)
        self._on_connect(db)
        return db

    async def close(self) -> None:
        await super().close()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()


# -- PostgreSQL (asyncpg) ----------------------------------------------------------------------

class AsyncpgPool(RawPool):
    """Up to `size` asyncpg connections; statements go through asyncpg's prepared cache.

    None of them is inside a transaction while idle: after a cancellation or a failed
    rollback a connection is rolled back in the background, or dropped, before reuse.
    """

    def __init__(self, args: Sequence[Any], kwargs: Mapping[str, Any], size: int) -> None:
        import asyncpg

        super().__init__()
        self.size = size
        self._sem = asyncio.Semaphore(size)
        self._idle: list[Any] = []
        self._args = tuple(args)
        self._kwargs = dict(kwargs)
        # Options of SQLAlchemy's asyncpg adapter, not of asyncpg.connect.
        self._kwargs.pop("prepared_statement_name_func", None)
        cache = self._kwargs.pop("prepared_statement_cache_size", None)
        if cache is not None:
            self._kwargs["statement_cache_size"] = int(cache)
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
            if clean:
                self._release(conn)
            else:  # cancelled mid-transaction, or the rollback failed
                self._spawn(self._reset(conn))

    async def close(self) -> None:
        await super().close()
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._close_conn(conn)

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

    async def _reset(self, conn: Any) -> None:
        try:
            await self._rollback(conn)
        except BaseException:
            self._sem.release()  # dropped: a new one is opened when needed
            await self._close_conn(conn)
            raise
        self._release(conn)

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
