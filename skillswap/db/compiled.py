"""Statements compiled once and run straight on asyncpg, inside the unit of work's transaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Delete, Insert, Select, Update
from sqlalchemy.sql.compiler import SQLCompiler

from skillswap.db.engine import driver_connection


class _Compiled(NamedTuple):
    sql: str
    names: tuple[str, ...]  # the bound parameters, in the order of $1, $2, ...
    processors: tuple[Callable[[Any], Any] | None, ...]


def _compile(
    statement: Insert | Update | Delete | Select[Any], dialect: Dialect, keys: frozenset[str]
) -> _Compiled | None:
    """The SQL, parameter order and bind processors of `statement`; None if it must be left to
    SQLAlchemy (an expanding IN list, a Python-side column default)."""
    compiled = statement.compile(dialect=dialect, column_keys=sorted(keys))
    assert isinstance(compiled, SQLCompiler)
    if (
        compiled.positiontup is None
        or "POSTCOMPILE" in compiled.string
        or compiled.insert_prefetch
        or compiled.update_prefetch
    ):
        return None
    names = tuple(compiled.positiontup)
    # What SQLAlchemy applies to each value: the dialect's form of the column type (type
    # decorators, JSON serialisation), looked up through the public type API.
    processors = tuple(
        compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
    )
    return _Compiled(compiled.string, names, processors)


class CompiledStatement:
    """A constant Core statement compiled once per dialect and set of parameter names.

    For a small statement SQLAlchemy's execution layer costs more than the driver's own work.
    On PostgreSQL the statement runs on the unit of work's asyncpg connection (same connection,
    same transaction, which the unit of work began), with the bind processing SQLAlchemy would
    apply. On SQLite, and for a statement that needs SQLAlchemy (an expanding IN list, a column
    left to its Python-side default), it is an ordinary `conn.execute`. Which of the two runs is
    decided by the dialect and the statement, never by what ran before it. Every bound parameter
    is given by the caller; results are plain rows, indexed by position.
    """

    def __init__(self, statement: Insert | Update | Delete | Select[Any]) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, frozenset[str]], _Compiled | None] = {}

    def compiled_for(self, dialect: Dialect, keys: frozenset[str]) -> _Compiled | None:
        """The driver-level form for these parameter names; None where SQLAlchemy runs it."""
        if dialect.name != "postgresql":
            return None
        cache_key = (dialect.name, keys)
        if cache_key not in self._compiled:
            self._compiled[cache_key] = _compile(self.statement, dialect, keys)
        return self._compiled[cache_key]

    @staticmethod
    def _args(compiled: _Compiled, params: Mapping[str, Any]) -> list[Any]:
        return [
            params[name] if process is None else process(params[name])
            for name, process in zip(compiled.names, compiled.processors, strict=True)
        ]

    @staticmethod
    async def _driver(conn: AsyncConnection) -> Any:
        driver = await driver_connection(conn)
        if not driver.is_in_transaction():
            raise RuntimeError("a compiled statement runs inside a unit of work's transaction")
        return driver

    async def rows(self, conn: AsyncConnection, params: Mapping[str, Any]) -> Sequence[Any]:
        """The statement's result rows."""
        compiled = self.compiled_for(conn.dialect, frozenset(params))
        if compiled is None:
            return (await conn.execute(self.statement, dict(params))).all()
        driver = await self._driver(conn)
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
        compiled = self.compiled_for(conn.dialect, frozenset(params[0]))
        if compiled is None:
            await conn.execute(self.statement, [dict(p) for p in params])
            return
        driver = await self._driver(conn)
        await driver.executemany(compiled.sql, [self._args(compiled, p) for p in params])
