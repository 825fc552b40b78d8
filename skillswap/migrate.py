"""Run Alembic migrations from inside the running loop (the connection-sharing recipe)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from skillswap.db import create_engine
from skillswap.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def _run(settings: Settings, action: str, target: str, url: str | None = None) -> None:
    engine = create_engine(settings, url=url)
    try:
        async with engine.begin() as connection:

            def apply(sync_connection: Connection) -> None:
                config = alembic_config(sync_connection)
                if action == "upgrade":
                    command.upgrade(config, target)
                else:
                    command.downgrade(config, target)

            await connection.run_sync(apply)
    finally:
        await engine.dispose()


async def upgrade_to_head(settings: Settings, *, url: str | None = None) -> None:
    await _run(settings, "upgrade", "heads", url)


async def downgrade_to(settings: Settings, target: str = "base", *, url: str | None = None) -> None:
    await _run(settings, "downgrade", target, url)
