"""The engine for the configured backend and `Database`: units of work, reads, autocommit."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, NullPool

from skillswap import metrics
from skillswap.db.unit_of_work import UnitOfWork
from skillswap.settings import Settings

log = logging.getLogger("skillswap.db")

# Ways a connection can end up unusable or mid-statement: it is dropped, never reused.
CONNECTION_LOST = (
    asyncio.CancelledError,
    OSError,
    asyncpg.InterfaceError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InternalClientError,  # a connection that went away while idle, seen mid-operation
)


def create_engine(settings: Settings, *, url: str | None = None) -> AsyncEngine:
    """Build the engine for the configured backend; call inside the running loop."""
    db_url = make_url(url or settings.effective_database_url)
    if db_url.get_backend_name() == "sqlite":
        database = db_url.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(db_url, connect_args={"timeout": 30})
        _configure_sqlite(engine)
        _count_checkouts(engine)
        return engine
    if settings.database_pgbouncer:
        engine = create_async_engine(db_url, poolclass=NullPool, connect_args=_PGBOUNCER_ARGS)
    else:
        engine = create_async_engine(
            db_url,
            poolclass=MeasuredPool,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_pre_ping=False,
            pool_recycle=1800,
        )
    _count_checkouts(engine)
    return engine


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4()}__"


# Behind PgBouncer in transaction pooling each transaction may run on another server
# connection: PgBouncer is the pool (NullPool here), asyncpg keeps no statement cache (its
# statements are unnamed), SQLAlchemy's dialect caches none and names the ones it must prepare
# uniquely, so that no name meets a statement another client prepared on that server connection.
_PGBOUNCER_ARGS: dict[str, Any] = {
    "statement_cache_size": 0,
    "prepared_statement_cache_size": 0,
    "prepared_statement_name_func": _unique_statement_name,
}


class MeasuredPool(AsyncAdaptedQueuePool):
    """The asyncio queue pool, counting who waits for a connection and for how long."""

    def _do_get(self) -> ConnectionPoolEntry:
        # A free connection is handed over at once; otherwise this waits for one (up to
        # pool_timeout): the gauge counts the callers in here, the histogram their wait.
        metrics.DB_POOL_WAITING.inc()
        started = time.perf_counter()
        try:
            return super()._do_get()
        finally:
            metrics.DB_POOL_WAITING.dec()
            metrics.DB_POOL_WAIT.observe(time.perf_counter() - started)


def _count_checkouts(engine: AsyncEngine) -> None:
    """Keep the gauge of connections in use: up at each checkout, down at each checkin."""

    @event.listens_for(engine.sync_engine, "checkout")
    def _out(*_args: Any) -> None:
        metrics.DB_POOL_IN_USE.inc()

    @event.listens_for(engine.sync_engine, "checkin")
    def _in(*_args: Any) -> None:
        metrics.DB_POOL_IN_USE.dec()


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


_DRIVER = "skillswap.asyncpg"  # where a pooled connection's info keeps its asyncpg connection


async def driver_connection(conn: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under `conn`, looked up once per pooled connection.

    `AsyncConnection.info` lives as long as the DBAPI connection itself, and so does its
    asyncpg connection.
    """
    info = conn.info
    driver = info.get(_DRIVER)
    if driver is None:
        driver = (await conn.get_raw_connection()).driver_connection
        assert isinstance(driver, asyncpg.Connection)
        info[_DRIVER] = driver
    return driver


class Database:
    """The engine, its session factory, and the writer lock SQLite needs.

    On PostgreSQL (`on_driver`) every unit of work runs in a transaction begun on its asyncpg
    connection before the block runs, so that driver-level statements may run in it; the
    backend alone decides this.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessionmaker = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
        self.is_sqlite = engine.dialect.name == "sqlite"
        self.on_driver = engine.dialect.name == "postgresql"
        # SQLite has one writer; serialising transactions in-process keeps it correct instead of
        # failing with "database is locked" under concurrent use cases.
        self._sqlite_lock = asyncio.Lock() if self.is_sqlite else None

    @asynccontextmanager
    async def uow(self) -> AsyncIterator[UnitOfWork]:
        """Open a unit of work; commit explicitly inside, hooks run after the block commits."""
        if self.on_driver:
            async with self._driver_unit_of_work() as unit:
                yield unit
        else:
            assert self._sqlite_lock is not None
            async with self._sqlite_lock, self.sessionmaker() as session:
                unit = UnitOfWork(session)
                try:
                    yield unit
                finally:
                    if not unit.committed:
                        await session.rollback()
        if unit.committed:
            await unit.run_after_commit_hooks()

    @asynccontextmanager
    async def _driver_unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """A session on a connection whose asyncpg transaction this unit of work begins and ends.

        The DBAPI connection is put in autocommit for the block, so SQLAlchemy begins and
        commits nothing itself: its statements and the driver-level ones share the one
        transaction begun here. (The DBAPI's own `autocommit` flag, set and cleared here, costs
        nothing; `execution_options(isolation_level=...)` costs about 40 µs per checkout.)
        """
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver, adapter = raw.driver_connection, raw.dbapi_connection
            assert isinstance(driver, asyncpg.Connection) and adapter is not None
            adapter.autocommit = True
            try:
                try:
                    transaction = driver.transaction()
                    await transaction.start()
                except BaseException as error:
                    # BEGIN fails only on a broken connection: it is never handed on. As
                    # SQLAlchemy does on a disconnect, the other pooled connections are
                    # replaced too (the server restarted, or failed over).
                    await conn.invalidate()
                    if not isinstance(error, asyncio.CancelledError):
                        await self.engine.dispose(close=False)
                    raise
                session = self.sessionmaker(bind=conn)
                unit = UnitOfWork(session, driver=driver, transaction=transaction)
                try:
                    yield unit
                finally:
                    await self._end(unit, conn)
            finally:
                adapter.autocommit = False

    @staticmethod
    async def _end(unit: UnitOfWork, conn: AsyncConnection) -> None:
        """Roll back what was not committed; a connection lost meanwhile is never handed on."""
        try:
            if not unit.committed:
                await unit.session.rollback()
                await unit._end_transaction()
        except asyncio.CancelledError:
            await conn.invalidate()
            raise
        except Exception:  # gone, or cut off mid-statement: its transaction is gone with it
            log.warning("rolling back a unit of work failed; its connection is dropped")
            await conn.invalidate()
        finally:
            await unit.session.close()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only session (no writer lock on SQLite: WAL lets readers run beside a writer)."""
        # Closing (not rolling back) ends the transaction without expiring the loaded objects.
        async with self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled PostgreSQL connection's asyncpg connection, in autocommit: every statement is
        its own transaction (a statement atomic on its own needs no unit of work around it).

        A connection lost, or a call cut off mid-statement, is dropped instead of going back to
        the pool; refusals raised after a statement, and statements the server refused, leave it
        usable.
        """
        if not self.on_driver:
            raise RuntimeError("autocommit driver connections are PostgreSQL's")
        async with self.engine.connect() as conn:
            # Only asyncpg runs statements here: SQLAlchemy never begins a transaction on it.
            driver = await driver_connection(conn)
            try:
                yield driver
            except BaseException as error:
                if isinstance(error, CONNECTION_LOST) or driver.is_closed():
                    await conn.invalidate()
                raise

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
