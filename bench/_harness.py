"""Shared pieces of the benchmark scripts: a scratch database, a server process, latency stats."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET = "bench-secret-key-" + "x" * 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    """Create an empty PostgreSQL database, yield its URL, drop it afterwards."""
    import asyncpg

    name = f"skillswap_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        base, _, query = PG_ADMIN.partition("?")
        yield base.rsplit("/", 1)[0] + "/" + name + (f"?{query}" if query else "")
    finally:
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=REDIS_URL,
        REDIS_PREFIX=f"skillswap-bench-{secrets.token_hex(3)}:",
        SECRET_KEY=SECRET,
        LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "skillswap", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"skillswap {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")


@contextlib.contextmanager
def server_process(env: dict[str, str], *, port: int | None = None) -> Iterator[ServerProcess]:
    """Start `skillswap serve` and wait until /healthz answers."""
    port = port or free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "skillswap",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-migrate",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    server = ServerProcess(process, port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.1)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def summarise(name: str, latencies_s: list[float], elapsed_s: float, errors: int = 0) -> str:
    count = len(latencies_s)
    return (
        f"{name}: {count / elapsed_s:,.0f} req/s over {elapsed_s:.1f}s ({count} ok, {errors} errors); "
        f"latency p50 {statistics.median(latencies_s) * 1000:.1f} ms, "
        f"p99 {percentile(latencies_s, 0.99) * 1000:.1f} ms"
    )


async def closed_loop(
    client: httpx.AsyncClient,
    make_request,
    *,
    concurrency: int,
    duration_s: float,  # type: ignore[no-untyped-def]
) -> tuple[list[float], float, int]:
    """Run `concurrency` workers issuing requests back to back for `duration_s`."""
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + duration_s
    counter = iter(range(10**9))

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            response = await make_request(client, next(counter))
            if response.status_code < 400:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - began, errors
