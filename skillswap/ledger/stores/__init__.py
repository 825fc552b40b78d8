"""Where the ledger's statements run: one interface, two implementations, the same SQL meaning.

`SqlAlchemyStore` runs the Core statements of `statements.py` on any backend. On PostgreSQL a
unit of work runs in a transaction begun on its asyncpg connection, and `AsyncpgStore` runs the
same statements on that connection (same connection, same transaction): transfers are the
service's hottest path and SQLAlchemy's execution layer costs about twice the driver's work.
Which store runs is decided by where the session is (a unit of work on PostgreSQL), never by
what ran before. The logic (what to lock, check and write) lives once, in `transfers.py` and
`holds.py`.

    protocol.py          the rows, and `LedgerStore`, the interface of both
    sqlalchemy_store.py  `SqlAlchemyStore`: Core statements (SQLite, reads outside a unit of work)
    asyncpg_store.py     `AsyncpgStore`: the same in PostgreSQL's SQL, one statement per transfer
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from skillswap.db import unit_of_work_of
from skillswap.ledger.stores.asyncpg_store import AsyncpgStore
from skillswap.ledger.stores.protocol import (
    AccountRow,
    HoldRow,
    LedgerStore,
    NewEntry,
    NewTransfer,
    Outcome,
    TransferRow,
)
from skillswap.ledger.stores.sqlalchemy_store import SqlAlchemyStore

__all__ = [
    "AccountRow",
    "AsyncpgStore",
    "HoldRow",
    "LedgerStore",
    "NewEntry",
    "NewTransfer",
    "Outcome",
    "SqlAlchemyStore",
    "TransferRow",
    "store_for",
]


async def store_for(session: AsyncSession) -> LedgerStore:
    """The store for `session`: on the driver inside a PostgreSQL unit of work, else SQLAlchemy."""
    unit = unit_of_work_of(session)
    if unit is not None and unit.driver is not None:
        return AsyncpgStore(unit.driver)
    return SqlAlchemyStore(await session.connection())
