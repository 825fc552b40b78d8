"""The restore drill (deploy/restore-drill.sh) run for real: pg_dump of a database with orders
in it, pg_restore into a fresh one, `skillswap ledger check` on the copy; and the same drill
failing on a backup whose ledger does not add up."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from skillswap.db import Database, create_engine
from tests.conftest import own_database
from tests.factories import place_order

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(shutil.which("pg_restore") is None, reason="needs pg_dump and pg_restore"),
]

DRILL = Path(__file__).resolve().parents[2] / "deploy" / "restore-drill.sh"


async def run_drill(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SKILLSWAP": f"{sys.executable} -m skillswap",
    }
    return await asyncio.to_thread(
        subprocess.run,
        ["bash", str(DRILL), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


async def test_the_restored_backup_of_a_database_with_orders_passes_the_ledger_check(
    settings, api, deps, make_user
):
    buyer, seller = await make_user(), await make_user()
    await place_order(api, deps, buyer, seller)
    drill = await run_drill(settings.database_url)
    assert drill.returncode == 0, drill.stdout + drill.stderr
    assert "ledger check ok" in drill.stdout
    assert drill.stdout.rstrip().splitlines()[-1].startswith("restore drill: ok in ")


async def test_the_drill_fails_on_a_backup_whose_ledger_does_not_add_up(tmp_path):
    async with own_database() as own:
        db = Database(create_engine(own))
        try:
            async with db.uow() as uow:
                # A stored balance that no entry explains.
                changed = await uow.session.execute(
                    text(
                        "UPDATE ledger_accounts SET balance = balance + 7"
                        " WHERE id = (SELECT min(id) FROM ledger_accounts)"
                    )
                )
                assert changed.rowcount == 1  # type: ignore[attr-defined]
                await uow.commit()
        finally:
            await db.dispose()
        dump = tmp_path / "broken.dump"
        url = own.database_url.replace("postgresql+asyncpg://", "postgresql://")
        dumped = await asyncio.to_thread(
            subprocess.run, ["pg_dump", "-Fc", "--no-owner", "-d", url, "-f", str(dump)]
        )
        assert dumped.returncode == 0
        drill = await run_drill(own.database_url, "--dump", str(dump))
    assert drill.returncode == 1, drill.stdout + drill.stderr
    assert "ledger check FAILED" in drill.stdout
    assert "restore drill: ok" not in drill.stdout
