"""DATABASE_PGBOUNCER=true: no pool of the process's own, no statement kept prepared by name on
a server connection, and units of work (SQLAlchemy and driver-level statements) still work."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from skillswap.db import Database, create_engine

pytestmark = pytest.mark.postgres


async def test_the_pgbouncer_engine_pools_nothing_and_leaves_no_named_statement(settings):
    db = Database(create_engine(settings.with_overrides(database_pgbouncer=True)))
    try:
        assert isinstance(db.engine.pool, NullPool)
        for _ in range(3):  # each time a new server connection, as behind PgBouncer
            async with db.uow() as uow:
                assert (await uow.session.execute(text("SELECT 41 + 1"))).scalar_one() == 42
                await uow.commit()
            async with db.autocommit() as driver:
                assert await driver.fetchval("SELECT $1::int * 2", 21) == 42
                # asyncpg's cache is off: nothing stays prepared under a name it could reuse.
                assert await driver.fetchval("SELECT count(*) FROM pg_prepared_statements") == 0
    finally:
        await db.dispose()
