"""The database: the engine, the unit of work every use case runs in, and compiled statements.

engine.py        the engine for the configured backend; `Database` (units of work, reads,
                 autocommit connections for statements that commit on their own)
unit_of_work.py  `UnitOfWork`: one transaction, committed once, then its after-commit hooks
compiled.py      `CompiledStatement`: a Core statement compiled once and run on asyncpg
"""

from skillswap.db.compiled import CompiledStatement
from skillswap.db.engine import CONNECTION_LOST, Database, create_engine, driver_connection
from skillswap.db.unit_of_work import AfterCommit, UnitOfWork, unit_of_work_of

__all__ = [
    "CONNECTION_LOST",
    "AfterCommit",
    "CompiledStatement",
    "Database",
    "UnitOfWork",
    "create_engine",
    "driver_connection",
    "unit_of_work_of",
]
