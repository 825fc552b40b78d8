"""Alembic is the only way the schema is made: it upgrades from empty, matches the models,
and downgrades to empty, on PostgreSQL and on SQLite."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from skillswap.db import create_engine
from skillswap.migrate import downgrade_to, upgrade_to_head
from skillswap.models import Base
from tests.conftest import BACKENDS, make_settings


async def _assert_round_trip(url: str) -> None:
    settings = make_settings(database_url=url)
    await upgrade_to_head(settings)
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:

            def diff(sync_conn):  # type: ignore[no-untyped-def]
                unmanaged = Base.metadata.info.get("unmanaged_tables", ())
                context = MigrationContext.configure(
                    sync_conn,
                    opts={
                        "compare_type": True,
                        # Tables a migration makes outside the models (SQLite's FTS5 index).
                        "include_name": lambda name, type_, _parents: (
                            not (type_ == "table" and name in unmanaged)
                        ),
                    },
                )
                return compare_metadata(context, Base.metadata)

            differences = await conn.run_sync(diff)
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert differences == [], differences
        assert {"users", "refresh_tokens", "idempotency_records"} <= tables
        await downgrade_to(settings, "base")
        async with engine.connect() as conn:
            left = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert left <= {"alembic_version"}, left
    finally:
        await engine.dispose()


async def test_sqlite_upgrades_from_empty_matches_models_and_downgrades_to_empty(tmp_path: Path):
    await _assert_round_trip(f"sqlite:///{tmp_path / 'm.sqlite3'}")


@pytest.mark.postgres
async def test_postgresql_upgrades_from_empty_matches_models_and_downgrades_to_empty():
    import asyncpg

    assert BACKENDS.admin_url is not None
    name = f"skillswap_migr_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(BACKENDS.admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        await _assert_round_trip(BACKENDS.admin_url.rsplit("/", 1)[0] + "/" + name)
    finally:
        admin = await asyncpg.connect(BACKENDS.admin_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
