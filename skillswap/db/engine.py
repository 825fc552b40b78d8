"""Database engine, session factory and the unit of work every use case runs in."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.sql import Delete, Insert, Select, Update
from sqlalchemy.util import greenlet_spawn

from skillswap.settings import Settings

log = logging.getLogger(__name__)

AfterCommit = Callable[[], Awaitable[None]]


def create_engine(settings: Settings, *, url: str | None = None) -> AsyncEngine:
    """Build the engine for the configured backend; call inside the running loop."""
    db_url = make_url(url or settings.effective_database_url)
    if db_url.get_backend_name() == "sqlite":
        database = db_url.database or ""
        if database and database != ":memory:":
            from pathlib import Path

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


def driver_in_transaction(conn: AsyncConnection) -> asyncpg.Connection | None:
    """The asyncpg connection under `conn` once its transaction has begun; None otherwise.

    SQLAlchemy begins lazily, at its first statement: before that (and on SQLite) statements
    must go through SQLAlchemy, which begins the transaction.
    """
    if conn.dialect.name != "postgresql" or conn.sync_connection is None:
        return None
    driver = conn.sync_connection.connection.driver_connection
    return driver if driver is not None and driver.is_in_transaction() else None


class _Compiled(NamedTuple):
    sql: str
    names: tuple[str, ...]  # the bound parameters, in the order of $1, $2, ...
    processors: tuple[Callable[[Any], Any] | None, ...]


class HotStatement:
    """A constant Core statement on a hot path, run straight on asyncpg inside a transaction.

    For a small statement SQLAlchemy's execution layer costs more than the driver's own work.
    On PostgreSQL, once the unit of work's transaction has begun, the statement is compiled once
    (per set of parameter names) and run on the transaction's own asyncpg connection, with the
    same bind processing (type decorators, JSON) SQLAlchemy would apply. Anywhere else (SQLite,
    before the transaction began, or a statement that needs Python-side column defaults) it is
    an ordinary `conn.execute`. Every bound parameter is given by the caller; results are plain
    rows, indexed by position.
    """

    def __init__(self, statement: Insert | Update | Delete | Select[Any]) -> None:
        self.statement = statement
        self._compiled: dict[frozenset[str], _Compiled | None] = {}

    def _compile(self, conn: AsyncConnection, keys: frozenset[str]) -> _Compiled | None:
        if keys not in self._compiled:
            compiled = self.statement.compile(dialect=conn.dialect, column_keys=sorted(keys))
            names = tuple(compiled.positiontup or ())
            processors = [compiled._bind_processors.get(name) for name in names]
            eligible = (
                compiled.positiontup is not None
                and "POSTCOMPILE" not in compiled.string  # expanding IN lists: left to SQLAlchemy
                and not getattr(compiled, "insert_prefetch", None)
                and not getattr(compiled, "update_prefetch", None)
                and all(process is None or callable(process) for process in processors)
            )
            self._compiled[keys] = (
                _Compiled(compiled.string, names, tuple(processors))  # type: ignore[arg-type]
                if eligible
                else None
            )
        return self._compiled[keys]

    @staticmethod
    def _args(compiled: _Compiled, params: Mapping[str, Any]) -> list[Any]:
        return [
            params[name] if process is None else process(params[name])
            for name, process in zip(compiled.names, compiled.processors, strict=True)
        ]

    async def rows(self, conn: AsyncConnection, params: Mapping[str, Any]) -> Sequence[Any]:
        """The statement's result rows."""
        driver = driver_in_transaction(conn)
        compiled = self._compile(conn, frozenset(params)) if driver is not None else None
        if driver is None or compiled is None:
            return (await conn.execute(self.statement, dict(params))).all()
        return await driver.fetch(compiled.sql, *self._args(compiled, params))

    async def scalar(self, conn: AsyncConnection, params: Mapping[str, Any]) -> Any:
        """The first column of the one row the statement returns."""
        rows = await self.rows(conn, params)
        if len(rows) != 1:
            raise LookupError(f"expected one row, got {len(rows)}")
        return rows[0][0]

    async def many(self, conn: AsyncConnection, params: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement once per parameter set (no results)."""
        if not params:
            return
        driver = driver_in_transaction(conn)
        compiled = self._compile(conn, frozenset(params[0])) if driver is not None else None
        if driver is None or compiled is None:
            await conn.execute(self.statement, [dict(p) for p in params])
            return
        await driver.executemany(compiled.sql, [self._args(compiled, p) for p in params])


class UnitOfWork:
    """One transaction of one use case: read, write, commit once, then run after-commit hooks.

    Leaving the block without `commit()` rolls back. Events and tasks that must not escape a
    rolled-back transaction are registered with `after_commit` and run only once it committed.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._after_commit: list[AfterCommit] = []
        self.committed = False
        # Session-level listeners (e.g. cache invalidation) find the unit of work to hook into.
        session.info["uow"] = self

    def after_commit(self, hook: AfterCommit) -> None:
        """Run `hook` once this unit of work has committed (never if it rolls back)."""
        self._after_commit.append(hook)

    async def commit(self) -> None:
        await self.session.commit()
        self.committed = True

    async def run_after_commit_hooks(self) -> None:
        hooks, self._after_commit = self._after_commit, []
        for hook in hooks:
            try:
                await hook()
            except (
                Exception
            ):  # a failed notification must not turn a committed use case into an error
                log.exception("after-commit hook failed")


# Ways a lane's connection can end up unusable or mid-statement.
_CONNECTION_LOST = (
    asyncio.CancelledError,
    OSError,
    asyncpg.InterfaceError,
    asyncpg.ConnectionDoesNotExistError,
)


class StatementLanes:
    """A few PostgreSQL connections kept out of the pool for statements that commit on their own.

    A one-statement transfer needs no transaction around it, so it needs no unit of work: only a
    connection. Checking one out of SQLAlchemy's pool and back costs as much client CPU as
    the statement itself (about 0.09 ms under load, against 0.1 ms); a lane is taken from a
    list instead. Lanes are opened on demand up to `limit` and held until `close()`; callers
    beyond that wait their turn in arrival order (asyncio's semaphore hands slots over first
    come, first served, where a queue would let a newcomer take a lane a waiter was woken for).
    A lane is closed instead of reused when its connection was lost or a call was cut off
    mid-statement, so no lane is ever handed on mid-conversation.
    """

    def __init__(self, engine: AsyncEngine, limit: int) -> None:
        self.engine = engine
        self.limit = max(1, limit)
        self._turns = asyncio.Semaphore(self.limit)
        self._idle: list[Any] = []
        self._open = 0
        # Called with a lane's asyncpg connection each time it is handed out: how an observer
        # (a test's query recorder) attaches asyncpg's query logger to connections kept out of
        # the pool.
        self.observers: list[Callable[[Any], None]] = []

    @asynccontextmanager
    async def driver(self) -> AsyncIterator[Any]:
        """The asyncpg connection of a lane, in autocommit: every statement is a transaction."""
        async with self._turns:
            if self._idle:
                pooled = self._idle.pop()
            else:
                pooled = await self.engine.raw_connection()
                self._open += 1
            driver = pooled.driver_connection
            assert driver is not None
            for observe in self.observers:
                observe(driver)
            try:
                yield driver
            except BaseException as error:
                # Refusals raised by the caller after its statement, and statements the server
                # refused, leave the lane usable; a dropped connection or a call cut off
                # mid-statement does not.
                if isinstance(error, _CONNECTION_LOST) or driver.is_closed():
                    self._open -= 1
                    await greenlet_spawn(pooled.invalidate)
                else:
                    self._idle.append(pooled)
                raise
            self._idle.append(pooled)

    async def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
            self._open -= 1


class Database:
    """The engine, its session factory, and the writer lock SQLite needs."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # A quarter of the pool at most, so that units of work always find connections.
        pool_size = getattr(engine.sync_engine.pool, "size", lambda: 8)()
        self.lanes = StatementLanes(engine, max(2, pool_size // 4))
        self.sessionmaker = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
        self.is_sqlite = engine.dialect.name == "sqlite"
        # SQLite has one writer; serialising transactions in-process keeps it correct instead of
        # failing with "database is locked" under concurrent use cases.
        self._sqlite_lock = asyncio.Lock() if self.is_sqlite else None

    @asynccontextmanager
    async def uow(self) -> AsyncIterator[UnitOfWork]:
        """Open a unit of work; commit explicitly inside, hooks run after the block commits."""
        if self._sqlite_lock is not None:
            await self._sqlite_lock.acquire()
        try:
            async with self.sessionmaker() as session:
                unit = UnitOfWork(session)
                try:
                    yield unit
                finally:
                    if not unit.committed:
                        await session.rollback()
        finally:
            if self._sqlite_lock is not None:
                self._sqlite_lock.release()
        if unit.committed:
            await unit.run_after_commit_hooks()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only session (no writer lock on SQLite: WAL lets readers run beside a writer)."""
        # Closing (not rolling back) ends the transaction without expiring the loaded objects.
        async with self.sessionmaker() as session:
            yield session

    async def ping(self) -> None:
        from sqlalchemy import text

        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.lanes.close()
        await self.engine.dispose()
