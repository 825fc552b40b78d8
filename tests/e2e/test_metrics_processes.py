"""Metrics of real processes: `serve --workers 2` scraped as one, a killed worker's counts kept
and its live series dropped; the worker's and the scheduler's own --metrics-port."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from skillswap.db import Database, create_engine
from skillswap.models.base import utcnow
from skillswap.tasks import outbox
from tests.chat_support import wait_for
from tests.conftest import free_port, node_env, own_database
from tests.processes import Child, children_of, skillswap

HEALTH_COUNT = "skillswap_http_request_duration_seconds_count"
STARTED = "skillswap_process_start_time_seconds"


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def value(text: str, metric: str, /, **labels: str) -> float:
    return sum(v for n, got, v in samples(text) if n == metric and got == labels)


def live_pids(text: str, role: str) -> set[int]:
    return {
        int(got["pid"])
        for n, got, _v in samples(text)
        if n == STARTED and got.get("role") == role and "pid" in got
    }


async def fetch(url: str) -> str:
    # A fresh connection each time: the kernel hands it to either worker.
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(url)
    assert response.status_code == 200, response.text
    return response.text


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
async def test_two_workers_are_scraped_as_one_and_a_killed_one_keeps_its_counts(
    settings, tmp_path: Path
):
    port = free_port()
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_99999999.db").write_bytes(b"left by an earlier run")
    env = {**node_env(settings), "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    supervisor = await Child.start(
        "serve",
        sys.executable,
        "-m",
        "skillswap",
        "serve",
        "--port",
        str(port),
        "--no-migrate",
        "--workers",
        "2",
        env=env,
        logs=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        async def both_up() -> bool:
            if not supervisor.running:
                raise RuntimeError(supervisor.log())
            if len(children_of(supervisor.process.pid)) != 2:
                return False
            try:
                return len(live_pids(await fetch(f"{base}/metrics"), "web")) == 2
            except (httpx.HTTPError, AssertionError):
                return False

        await wait_for(both_up, within=30, every=0.2)
        # The earlier run's file went when serve started.
        assert not (directory / "counter_99999999.db").exists()
        workers = children_of(supervisor.process.pid)
        before = value(await fetch(f"{base}/metrics"), HEALTH_COUNT, **_health())
        assert before == 0
        requests = 40
        for _ in range(requests):
            await fetch(f"{base}/healthz")
        # Both workers answered some of them: each wrote a histogram file of its own.
        served = {int(p.stem.split("_")[-1]) for p in directory.glob("histogram_*.db")}
        assert workers <= served, (workers, served)
        scrape = await fetch(f"{base}/metrics")
        assert value(scrape, HEALTH_COUNT, **_health()) == requests
        assert live_pids(scrape, "web") == workers

        victim = min(workers)
        os.kill(victim, signal.SIGKILL)

        async def replaced() -> bool:
            now = children_of(supervisor.process.pid)
            return len(now) == 2 and victim not in now

        await wait_for(replaced, within=15, every=0.1)
        await wait_for(both_up, within=30, every=0.2)
        after = await fetch(f"{base}/metrics")
        # What the dead worker counted is still counted; its live series is gone.
        assert value(after, HEALTH_COUNT, **_health()) == requests
        pids = live_pids(after, "web")
        assert victim not in pids
        assert pids == children_of(supervisor.process.pid)
    finally:
        code = await supervisor.stop()
    assert code == 0, supervisor.log()


def _health() -> dict[str, str]:
    return {"route": "/healthz", "method": "GET", "status": "200"}


@pytest.mark.redis
async def test_a_worker_serves_its_task_counters_on_its_metrics_port(tmp_path: Path):
    async with own_database() as own:
        port = free_port()
        env = {**node_env(own), "LOG_LEVEL": "WARNING", "OUTBOX_POLL_SECONDS": "1"}
        worker = await skillswap(
            "worker", "worker", "--metrics-port", str(port), env=env, logs=tmp_path
        )
        db = Database(create_engine(own))
        try:
            async with db.uow() as uow:
                # A kind no handler takes: dead-lettered at its first run, and counted so.
                await outbox.enqueue(uow, "metrics.probe", "metrics-probe-1", {}, now=utcnow())
                await uow.commit()

            async def counted() -> bool:
                if not worker.running:
                    raise RuntimeError(worker.log())
                try:
                    text = await fetch(f"http://127.0.0.1:{port}/metrics")
                except httpx.HTTPError:
                    return False
                return (
                    value(text, "skillswap_tasks_total", task="metrics.probe", outcome="failed")
                    == 1
                )

            await wait_for(counted, within=30, every=0.3)
            text = await fetch(f"http://127.0.0.1:{port}/metrics")
            assert value(text, STARTED, role="worker") > 0
        finally:
            code = await worker.stop()
            await db.dispose()
        assert code == 0, worker.log()


async def test_the_scheduler_serves_its_job_counters_on_its_metrics_port(tmp_path: Path):
    async with own_database() as own:
        port = free_port()
        env = {**node_env(own), "LOG_LEVEL": "WARNING"}
        scheduler = await skillswap(
            "scheduler", "scheduler", "--metrics-port", str(port), env=env, logs=tmp_path
        )
        try:

            async def ran() -> bool:
                if not scheduler.running:
                    raise RuntimeError(scheduler.log())
                try:
                    text = await fetch(f"http://127.0.0.1:{port}/metrics")
                except httpx.HTTPError:
                    return False
                # Jobs run as soon as the scheduler holds its lock.
                return (
                    value(
                        text, "skillswap_scheduled_jobs_total", name="order_deadlines", outcome="ok"
                    )
                    >= 1
                )

            await wait_for(ran, within=30, every=0.3)
            text = await fetch(f"http://127.0.0.1:{port}/metrics")
            assert value(text, STARTED, role="scheduler") > 0
        finally:
            code = await scheduler.stop()
        assert code == 0, scheduler.log()
