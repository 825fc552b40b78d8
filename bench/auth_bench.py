"""Sign-up and sign-in throughput with the production Argon2id parameters, and idle memory.

    .venv/bin/python bench/auth_bench.py [--seconds 10] [--concurrency 16]

Starts one `skillswap serve` node on a scratch PostgreSQL database (with Redis), then drives
POST /api/auth/register/ and POST /api/auth/login/ from concurrent clients in this process.
Password hashing dominates both; it runs in a thread pool, so both cores work.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import closed_loop, run_cli, scratch_database, server_env, server_process, summarise

from skillswap.settings import Settings


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    defaults = Settings()
    print(
        f"Argon2id time_cost={defaults.argon2_time_cost} memory={defaults.argon2_memory_kib} KiB "
        f"parallelism={defaults.argon2_parallelism}; {args.concurrency} concurrent clients"
    )
    async with scratch_database() as url:
        env = server_env(url)
        run_cli("migrate", env=env)
        with server_process(env) as server:
            await asyncio.sleep(1)
            print(f"idle memory after start: {server.rss_kib() / 1024:.1f} MiB RSS")
            tag = secrets.token_hex(3)
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:

                async def register(c: httpx.AsyncClient, i: int) -> httpx.Response:
                    return await c.post(
                        "/api/auth/register/",
                        json={
                            "email": f"b{tag}{i}@example.com",
                            "username": f"b{tag}{i}",
                            "password": "bench password 123",
                        },
                    )

                latencies, elapsed, errors = await closed_loop(
                    client, register, concurrency=args.concurrency, duration_s=args.seconds
                )
                print(summarise("register", latencies, elapsed, errors))
                users = len(latencies)

                async def login(c: httpx.AsyncClient, i: int) -> httpx.Response:
                    n = i % max(1, users)
                    return await c.post(
                        "/api/auth/login/",
                        json={"username": f"b{tag}{n}", "password": "bench password 123"},
                    )

                latencies, elapsed, errors = await closed_loop(
                    client, login, concurrency=args.concurrency, duration_s=args.seconds
                )
                print(summarise("login", latencies, elapsed, errors))

                async def profile(c: httpx.AsyncClient, i: int) -> httpx.Response:
                    return await c.get("/healthz")

                latencies, elapsed, errors = await closed_loop(
                    client, profile, concurrency=args.concurrency, duration_s=3
                )
                print(summarise("healthz (same client, for scale)", latencies, elapsed, errors))
            await asyncio.sleep(2)
            print(f"memory after the run, idle again: {server.rss_kib() / 1024:.1f} MiB RSS")


if __name__ == "__main__":
    asyncio.run(main())
