"""The engine for the configured backend and `Database`: units of work, reads, autocommit."""

from __future__ import annotations

import asyncio
import logging
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

from skillswap.db.unit_of_work import UnitOfWork
from skillswap.settings import Settings

log = logging.getLogger("skillswap.db")

# Ways a connection can end up unusable or mid-statement: it is dropped, never reused.
CONNECTION_LOST = (
    asyncio.CancelledError,
    OSError,
    asyncpg.InterfaceError,
    asyncpg.ConnectionDoesNotExistError,
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
        return engine
    return create_async_engine(
        db_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=False,
        pool_recycle=1800,
    )


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


async def _driver_of(conn: AsyncConnection) -> asyncpg.Connection:
    driver = (await conn.get_raw_connection()).driver_connection
    assert isinstance(driver, asyncpg.Connection)
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

        SQLAlchemy sees the connection in autocommit, so it begins and commits nothing itself:
        its statements and the driver-level ones share the one transaction begun here.
        """
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            driver = await _driver_of(conn)
            transaction = driver.transaction()
            await transaction.start()
            session = self.sessionmaker(bind=conn)
            unit = UnitOfWork(session, driver=driver, transaction=transaction)
            try:
                yield unit
            finally:
                try:
                    if not unit.committed:
                        await session.rollback()
                        await unit._end_transaction()
                except CONNECTION_LOST:
                    await conn.invalidate()  # mid-conversation or gone: never handed on
                    raise
                finally:
                    await session.close()

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
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            driver = await _driver_of(conn)
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
