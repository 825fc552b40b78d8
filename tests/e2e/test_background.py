"""Background work as processes: the embedded `serve` expires a pending order by itself, and
on PostgreSQL two `skillswap scheduler` processes share the work without doubling it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chat_support import wait_for
from tests.conftest import free_port, node_env, own_database
from tests.factories import unique_name

ROOT = Path(__file__).resolve().parents[2]


# The people these processes sign up order at once, with the signup bonus: as in a demo, the
# bonus comes at signup and no verified email is asked for (that flow has tests of its own).
DEMO_ECONOMY = {"SIGNUP_BONUS_ON": "signup", "REQUIRE_VERIFIED_EMAIL": "false"}


async def _start(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "skillswap",
        *args,
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


async def _stop(process: asyncio.subprocess.Process) -> tuple[int, str]:
    """SIGTERM, then the exit status and what it logged."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    _out, err = await asyncio.wait_for(process.communicate(), timeout=45)
    assert process.returncode is not None
    return process.returncode, err.decode()


@contextlib.asynccontextmanager
async def serving(
    env: dict[str, str], logs: list[str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """`skillswap serve` as a process on a free port; what it logged goes to `logs`."""
    port = free_port()
    process = await _start("serve", "--port", str(port), env=env)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:

            async def answers() -> bool:
                if process.returncode is not None:
                    raise RuntimeError(f"serve exited with {process.returncode}")
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_for(answers, within=60, every=0.2)
            yield client
    finally:
        status, log = await _stop(process)
        if logs is not None:
            logs.append(log)
        assert status == 0, log


async def _register(client: httpx.AsyncClient) -> str:
    name = unique_name()
    response = await client.post(
        "/api/auth/register/",
        json={
            "email": f"{name}@example.com",
            "username": name,
            "password": "correct horse battery",
        },
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["access"]
    return token


async def _place_order(client: httpx.AsyncClient) -> tuple[str, int]:
    """A seller lists a 10-point skill and a new buyer orders it: the buyer's token, the order."""
    seller, buyer = await _register(client), await _register(client)
    categories = (await client.get("/api/skills/categories/")).json()
    category = (categories["results"] if isinstance(categories, dict) else categories)[0]
    skill = await client.post(
        "/api/skills/",
        headers={"Authorization": f"Bearer {seller}"},
        json={
            "title_en": "Guitar lessons",
            "description_en": "Chords and rhythm for beginners.",
            "price_points": 10,
            "level": "beginner",
            "delivery_days": 3,
            "category_id": category["id"],
        },
    )
    assert skill.status_code == 201, skill.text
    order = await client.post(
        "/api/points/orders/",
        headers={"Authorization": f"Bearer {buyer}"},
        json={"skill_id": skill.json()["id"]},
    )
    assert order.status_code == 201, order.text
    assert order.json()["status"] == "pending"
    return buyer, int(order.json()["id"])


async def _order_status(client: httpx.AsyncClient, token: str, order_id: int) -> str:
    response = await client.get(
        f"/api/points/orders/{order_id}/", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


async def _balance(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    response = await client.get(
        "/api/points/balance/", headers={"Authorization": f"Bearer {token}"}
    )
    body: dict[str, Any] = response.json()
    return body


async def test_the_embedded_serve_expires_a_pending_order_by_itself_and_refunds_the_buyer(
    tmp_path,
):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "PORT"}}
    env |= {
        "DATA_DIR": str(tmp_path / "data"),
        "LOG_LEVEL": "WARNING",
        "ORDER_DEADLINES_INTERVAL_SECONDS": "1",
        "ORDER_ACCEPT_TIMEOUT_SECONDS": "2",
        **DEMO_ECONOMY,
    }
    async with serving(env) as client:
        buyer, order_id = await _place_order(client)
        assert await _balance(client, buyer) == {"balance": 100, "held": 10, "available": 90}
        assert await _order_status(client, buyer, order_id) == "pending"

        async def expired() -> bool:
            return await _order_status(client, buyer, order_id) == "expired"

        await wait_for(expired, within=15, every=0.25)
        assert await _balance(client, buyer) == {"balance": 100, "held": 0, "available": 100}


async def test_the_embedded_serve_mails_at_once_with_links_to_the_port_it_serves(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "PORT"}}
    # A poll far longer than the test: the mail goes out because the commit wakes the relay.
    env |= {"DATA_DIR": str(tmp_path / "data"), "LOG_LEVEL": "INFO", "OUTBOX_POLL_SECONDS": "60"}
    logs: list[str] = []
    async with serving(env, logs) as client:
        name = unique_name()
        response = await client.post(
            "/api/auth/register/",
            json={"email": f"{name}@example.com", "username": name, "password": "correct horse"},
        )
        assert response.status_code == 201, response.text
        port = client.base_url.port
        await asyncio.sleep(1.5)
    (log,) = logs
    assert f"email verify_email to {name}@example.com" in log
    assert f"link: http://127.0.0.1:{port}/verify-email?token=" in log


@pytest.mark.postgres
async def test_two_scheduler_processes_one_runs_the_jobs_and_the_order_expires_once():
    async with own_database() as own:
        web_env = {
            **node_env(own, redis_url=""),
            "ORDER_ACCEPT_TIMEOUT_SECONDS": "2",
            **DEMO_ECONOMY,
        }
        # The web node runs no jobs of its own here: the scheduler processes do.
        web_env["ORDER_DEADLINES_INTERVAL_SECONDS"] = str(24 * 3600)
        job_env = {
            **node_env(own),
            "LOG_LEVEL": "INFO",
            "ORDER_DEADLINES_INTERVAL_SECONDS": "1",
        }
        first = await _start("scheduler", env=job_env)
        second = await _start("scheduler", env=job_env)
        try:
            async with serving(web_env) as client:
                buyer, order_id = await _place_order(client)

                async def expired() -> bool:
                    return await _order_status(client, buyer, order_id) == "expired"

                await wait_for(expired, within=20, every=0.25)
                assert await _balance(client, buyer) == {
                    "balance": 100,
                    "held": 0,
                    "available": 100,
                }
                page = (
                    await client.get(
                        "/api/points/transactions/", headers={"Authorization": f"Bearer {buyer}"}
                    )
                ).json()
                # The hold was voided, once: the statement holds the bonus alone.
                assert [(t["kind"], t["amount"]) for t in page["results"]] == [
                    ("signup_bonus", 100)
                ]
        finally:
            # Both told to stop at once: stopped one after the other, the waiting scheduler
            # would rightly take the lock the first one released.
            logs = list(await asyncio.gather(_stop(first), _stop(second)))
        assert [status for status, _ in logs] == [0, 0]
        leaders = [log for _, log in logs if "scheduler lock taken" in log]
        assert len(leaders) == 1, logs
        expiries = sum(log.count("order deadlines: 1 expired") for _, log in logs)
        assert expiries == 1, logs


async def _outbox_row(settings: Any, key: str) -> tuple[str, int, str | None] | None:
    from sqlalchemy import select

    from skillswap.db import Database, create_engine
    from skillswap.models import OutboxRow

    db = Database(create_engine(settings))
    try:
        async with db.read() as session:
            row = await session.scalar(select(OutboxRow).where(OutboxRow.key == key))
            return None if row is None else (row.status, row.attempts, row.last_error)
    finally:
        await db.dispose()


@pytest.mark.postgres
@pytest.mark.redis
async def test_worker_processes_run_outbox_rows_and_the_tasks_commands_list_and_retry_them():
    from skillswap.db import Database, create_engine
    from skillswap.models.base import utcnow
    from skillswap.tasks import outbox

    async with own_database() as own:
        db = Database(create_engine(own))
        try:
            async with db.uow() as uow:
                await outbox.enqueue(uow, "nobody.handles", "odd:1", {}, now=utcnow())
                await uow.commit()
        finally:
            await db.dispose()
        env = {**node_env(own), "OUTBOX_POLL_SECONDS": "1", "LOG_LEVEL": "INFO"}
        worker = await _start("worker", "--workers", "2", env=env)
        try:

            async def dead_lettered() -> bool:
                row = await _outbox_row(own, "odd:1")
                return row is not None and row[0] == "failed"

            await wait_for(dead_lettered, within=30, every=0.25)
            assert await _outbox_row(own, "odd:1") == (
                "failed",
                1,
                "no handler for outbox kind 'nobody.handles'",
            )
            listed = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "skillswap", "tasks", "failed"],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            assert listed.returncode == 0, listed.stderr
            lines = listed.stdout.splitlines()
            assert lines[-1] == "1 failed"
            row_id = int(lines[0].split("\t")[0])
            assert lines[0].split("\t")[1:] == [
                "nobody.handles",
                "odd:1",
                "1 attempts",
                "no handler for outbox kind 'nobody.handles'",
            ]
            retried = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "skillswap", "tasks", "retry", str(row_id)],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            assert (retried.returncode, retried.stdout) == (
                0,
                f"outbox row {row_id} is pending again\n",
            )
            # Run again by a worker (its NOTIFY or its poll), and dead-lettered again.
            await wait_for(dead_lettered, within=30, every=0.25)
        finally:
            status, log = await _stop(worker)
        assert status == 0, log


async def test_a_worker_without_redis_says_serve_runs_the_tasks(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env["DATA_DIR"] = str(tmp_path / "data")
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "skillswap", "worker"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (
        2,
        "configuration error: skillswap worker needs REDIS_URL (the task stream); without it, "
        "skillswap serve runs the tasks and the scheduler itself\n",
    )
