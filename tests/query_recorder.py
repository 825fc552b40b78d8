"""Every statement the app sends to the database while a block runs, whichever path sends it.

SQLAlchemy's statements are seen on its `before_cursor_execute` event. Statements that skip
SQLAlchemy's execution layer and run straight on asyncpg (a statement compiled once and run on a
unit of work's connection, the ledger's stores, the one-statement transfer in autocommit)
are seen through asyncpg's own query logger, attached to every connection the engine's pool
hands out while recording. asyncpg also logs what SQLAlchemy itself runs on the connection object
(executemany, and BEGIN/COMMIT/ROLLBACK of a transaction): the former are counted once, as
SQLAlchemy's; the latter are kept apart in `transaction_control`.

    async with QueryRecorder(deps.db) as queries:
        await api.get("/api/skills/")
    assert queries.count == 2
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from sqlalchemy import event

from skillswap.db import Database

_QUOTES = '"('
_TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "START")


@dataclass(frozen=True)
class Statement:
    path: Literal["sqlalchemy", "driver"]
    sql: str

    @property
    def summary(self) -> str:
        """The statement's kind and the table it reads or writes: "INSERT orders"."""
        words = self.sql.split()
        verb = words[0].upper()
        if verb == "WITH":
            return verb
        target = {"INSERT": "INTO", "DELETE": "FROM", "SELECT": "FROM"}.get(verb)
        table, depth = words[1], 0
        for word, following in itertools.pairwise(words):
            if depth == 0 and word.upper() == target:  # not a subquery's FROM
                table = following
                break
            depth += word.count("(") - word.count(")")
        return f"{verb} {table.strip(_QUOTES)}"


@dataclass
class QueryRecorder:
    db: Database
    statements: list[Statement] = field(default_factory=list)
    transaction_control: list[str] = field(default_factory=list)
    _logged_by_sqlalchemy: Counter[tuple[int, str]] = field(default_factory=Counter)
    _observed: dict[int, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.statements)

    @property
    def by_path(self) -> dict[str, int]:
        counts = Counter(statement.path for statement in self.statements)
        return {"sqlalchemy": counts["sqlalchemy"], "driver": counts["driver"]}

    @property
    def summary(self) -> list[tuple[str, str]]:
        """(path, "VERB table") of each statement, in the order they ran."""
        return [(statement.path, statement.summary) for statement in self.statements]

    @property
    def transactions(self) -> list[str]:
        """The transaction control statements asyncpg ran (BEGIN, COMMIT, ...), first word only."""
        return [sql.split()[0].rstrip(";").upper() for sql in self.transaction_control]

    def __str__(self) -> str:
        return "\n".join(f"[{s.path}] {' '.join(s.sql.split())[:160]}" for s in self.statements)

    # -- listeners ----------------------------------------------------------------------------

    def _before_cursor_execute(
        self,
        conn: Any,
        _cursor: Any,
        statement: str,
        _parameters: Any,
        _context: Any,
        executemany: bool,
    ) -> None:
        self.statements.append(Statement("sqlalchemy", statement))
        driver = conn.connection.driver_connection
        if executemany and id(driver) in self._observed:
            # SQLAlchemy's asyncpg adapter runs executemany on the connection object itself,
            # where asyncpg's logger sees it too: count it once.
            self._logged_by_sqlalchemy[(id(driver), statement)] += 1

    def _on_driver_query(self, driver_id: int, record: Any) -> None:
        sql: str = record.query
        if sql.lstrip().upper().startswith(_TRANSACTION_CONTROL):
            self.transaction_control.append(sql)
            return
        if self._logged_by_sqlalchemy[(driver_id, sql)] > 0:
            self._logged_by_sqlalchemy[(driver_id, sql)] -= 1
            return
        self.statements.append(Statement("driver", sql))

    def _on_checkout(self, _dbapi: Any, record: Any, _proxy: Any) -> None:
        self._observe(record.driver_connection)

    def _observe(self, driver: Any) -> None:
        if hasattr(driver, "add_query_logger") and id(driver) not in self._observed:
            logger = functools.partial(self._on_driver_query, id(driver))
            driver.add_query_logger(logger)
            self._observed[id(driver)] = (driver, logger)

    # -- context ------------------------------------------------------------------------------

    async def __aenter__(self) -> QueryRecorder:
        engine = self.db.engine.sync_engine
        event.listen(engine, "before_cursor_execute", self._before_cursor_execute)
        event.listen(engine.pool, "checkout", self._on_checkout)
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        await asyncio.sleep(0)  # asyncpg hands its log records over on the next loop turn
        engine = self.db.engine.sync_engine
        event.remove(engine, "before_cursor_execute", self._before_cursor_execute)
        event.remove(engine.pool, "checkout", self._on_checkout)
        for driver, logger in self._observed.values():
            driver.remove_query_logger(logger)
        self._observed.clear()
