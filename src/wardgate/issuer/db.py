"""The issuer's database: engine ownership, first-start creation and migration.

One `Database` per process owns the async engine. Every multi-row change runs inside
`db.begin()` (one transaction), so a failed request leaves no partial rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from wardgate.issuer import rawsql, schema, sqliteconn

T = TypeVar("T")

# Connections of the refresh grant's own pool (`rawsql`). SQLite has one writer at a time:
# more connections than this only wait longer for its lock.
RAW_POOL_POSTGRES = 10


class SchemaTooNew(RuntimeError):
    """The database was created by a newer wardgate; refuse rather than corrupt it."""


def async_url(url: str) -> str:
    """Map the configured URL to its async driver (aiosqlite / asyncpg)."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url.removeprefix("postgresql://")
    return url


def _sqlite_pragmas(dbapi_conn: object, _record: object = None) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")  # CLI and server may write at the same time
    # WAL + NORMAL: no corruption on power loss, only the last commits may be lost (a client
    # then holds a refresh token the database never saw and must log in again).
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _add_missing_columns(sync_conn: Any) -> None:
    """Columns added to existing tables since a database was created: nullable ones only,
    so `ALTER TABLE ... ADD COLUMN` works the same on SQLite and PostgreSQL and old rows read
    as NULL (for example refresh_tokens.jkt and clients.dpop_bound, RFC 9449)."""
    from sqlalchemy import inspect
    from sqlalchemy.schema import CreateColumn

    inspector = inspect(sync_conn)
    for table in schema.metadata.sorted_tables:
        have = {c["name"] for c in inspector.get_columns(table.name)}
        for col in table.columns:
            if col.name in have:
                continue
            if not col.nullable:
                raise SchemaTooNew(f"{table.name}.{col.name}: cannot add a NOT NULL column")
            ddl = CreateColumn(col).compile(dialect=sync_conn.dialect)
            sync_conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {ddl}")


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        aurl = async_url(url)
        self.is_sqlite = aurl.startswith("sqlite")
        if self.is_sqlite:
            path = make_url(aurl).database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # A small pool: opening an aiosqlite connection starts a thread and re-runs the
            # pragmas, which would cost more than the queries of a refresh grant.
            self.engine: AsyncEngine = create_async_engine(
                aurl, pool_size=5, max_overflow=5, async_creator=self._sqlite_connect)
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_async_engine(aurl, pool_size=10, max_overflow=10)
        # The driver's connect arguments exactly as SQLAlchemy derives them from the URL.
        self._connect_args = cargs, cparams = self.engine.dialect.create_connect_args(
            self.engine.url)
        self.raw: rawsql.RawPool = (
            rawsql.SqlitePool(cargs, cparams, _sqlite_pragmas) if self.is_sqlite
            else rawsql.AsyncpgPool(cargs, cparams, RAW_POOL_POSTGRES))
        self._compiled: dict[tuple[int, tuple[str, ...] | None], rawsql.Compiled] = {}

    async def _sqlite_connect(self) -> sqliteconn.Connection:
        return await sqliteconn.connect(*self._connect_args)

    async def migrate(self) -> None:
        """Create missing tables; record the schema version (first start creates the file)."""
        async with self.engine.begin() as conn:
            if self.is_sqlite:
                # WAL: readers never block the single writer.
                await conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            await conn.run_sync(schema.metadata.create_all)
            await conn.run_sync(_add_missing_columns)
            row = (await conn.execute(
                select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")
            )).first()
            if row is None:
                await conn.execute(insert(schema.meta).values(
                    key="schema_version", value=str(schema.SCHEMA_VERSION)))
            elif int(row[0]) > schema.SCHEMA_VERSION:
                raise SchemaTooNew(f"database schema {row[0]} is newer than {schema.SCHEMA_VERSION}")

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    def compiled(self, stmt: Any, column_keys: Sequence[str] | None = None) -> rawsql.Compiled:
        """`stmt` (a module-level Core statement) compiled once for this database's dialect."""
        key = (id(stmt), tuple(column_keys) if column_keys is not None else None)
        c = self._compiled.get(key)
        if c is None:
            c = self._compiled[key] = rawsql.Compiled(stmt, self.engine.dialect, column_keys)
        return c

    async def claim_then(self, claim: rawsql.Compiled, params: Mapping[str, Any],
                         then: rawsql.Then[T]) -> T | None:
        """One transaction on the raw driver: claim (UPDATE ... RETURNING), then `then(row)`
        decides and names the INSERTs, then COMMIT; all or nothing (`rawsql`). On SQLite
        `then` runs on the connection's thread: synchronous, no I/O, shared state read only."""
        return await self.raw.claim_then(claim, params, then)

    async def close(self) -> None:
        await self.raw.close()
        await self.engine.dispose()


async def open_database(url: str) -> Database:
    db = Database(url)
    await db.migrate()
    return db
