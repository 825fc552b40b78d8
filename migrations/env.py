"""Alembic environment: migrates on a connection handed in, or opens one from the settings."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from skillswap.models import Base
from skillswap.models.base import UTCDateTime
from skillswap.settings import Settings

config = context.config
target_metadata = Base.metadata


def _render_item(kind: str, obj: Any, autogen_context: Any) -> str | bool:
    # Migrations stay free of application imports: UTCDateTime is a plain timestamptz column.
    if kind == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    # Tables a migration creates outside the models (SQLite's FTS5 index) are not compared.
    return not (type_ == "table" and name in target_metadata.info.get("unmanaged_tables", ()))


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_item=_render_item,
        include_name=_include_name,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    from skillswap.db import create_engine

    engine = create_engine(Settings.from_env())
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


shared = config.attributes.get("connection")
if shared is not None:
    # Called from inside a running loop (skillswap.migrate): reuse its connection.
    _run(shared)
else:
    asyncio.run(_run_async())
