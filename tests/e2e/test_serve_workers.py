"""`skillswap serve --workers N`: several processes on one port, supervised, stopped together."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.chat_support import wait_for
from tests.conftest import free_port, node_env, run_skillswap
from tests.factories import unique_name
from tests.processes import children_of

ROOT = Path(__file__).resolve().parents[2]


def running(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def test_several_workers_need_postgresql_and_redis(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    done = run_skillswap(
        "serve", "--workers", "2", "--port", "1", env={**env, "DATA_DIR": str(tmp_path)}
    )
    assert done.returncode == 2
    assert "WEB_WORKERS above 1 needs DATABASE_URL" in done.stderr


async def start_workers(settings, port: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "skillswap", "serve", "--port", str(port), "--no-migrate"],
        *["--workers", "2"],
        env=node_env(settings),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
async def test_workers_share_the_port_a_dead_one_is_replaced_and_all_stop_together(settings):
    port = free_port()
    supervisor = await start_workers(settings, port)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:

            async def both_workers_answer() -> bool:
                if supervisor.returncode is not None:
                    raise RuntimeError(f"serve exited with {supervisor.returncode}")
                try:
                    return (
                        len(children_of(supervisor.pid)) == 2
                        and (await client.get("/healthz")).status_code == 200
                    )
                except httpx.HTTPError:
                    return False

            await wait_for(both_workers_answer, within=30, every=0.1)
            first = children_of(supervisor.pid)

            # Every worker is a whole node: what one writes, another reads (fresh connections).
            name = unique_name("wk")
            registered = await client.post(
                "/api/auth/register/",
                json={"email": f"{name}@example.com", "username": name, "password": "pw " * 5},
            )
            assert registered.status_code == 201, registered.text
            token = registered.json()["access"]
            for _ in range(10):
                async with httpx.AsyncClient(base_url=url, timeout=5) as fresh:
                    me = await fresh.get(
                        "/api/auth/profile/", headers={"Authorization": f"Bearer {token}"}
                    )
                    assert me.status_code == 200 and me.json()["username"] == name

            # A worker that dies is replaced; the port keeps answering meanwhile.
            victim = min(first)
            os.kill(victim, signal.SIGKILL)
            async with httpx.AsyncClient(base_url=url, timeout=5) as fresh:
                assert (await fresh.get("/healthz")).status_code == 200

            async def replaced() -> bool:
                now = children_of(supervisor.pid)
                return len(now) == 2 and victim not in now

            await wait_for(replaced, within=15, every=0.1)
            await wait_for(both_workers_answer, within=15, every=0.1)
            workers = children_of(supervisor.pid)
    finally:
        if supervisor.returncode is None:
            supervisor.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            code = await supervisor.wait()
    assert code == 0
    assert not any(running(pid) for pid in workers)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
async def test_stopping_while_a_worker_is_being_replaced_starts_no_new_one(settings):
    supervisor = await start_workers(settings, free_port())
    try:
        await wait_for(lambda: len(children_of(supervisor.pid)) == 2, within=30, every=0.1)
        await asyncio.sleep(1)  # both past start-up, their signal handlers installed
        workers = children_of(supervisor.pid)
        os.kill(min(workers), signal.SIGKILL)
        await asyncio.sleep(0.3)  # the supervisor has seen it die and waits before replacing it
        supervisor.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            code = await supervisor.wait()
    finally:
        if supervisor.returncode is None:
            supervisor.kill()
            await supervisor.wait()
    assert code == 0
    assert not children_of(supervisor.pid)
    assert not any(running(pid) for pid in workers)
