"""Orders placed per second through HTTP against `skillswap serve`, beside a bare reference.

    .venv/bin/python bench/orders_bench.py [--seconds 15] [--clients 64] [--sellers 16]
                                           [--workers 1] [--no-reference]
                                           [--reference-processes 1]

Creates a scratch PostgreSQL database, migrates it, starts `skillswap serve` (with Redis,
LOG_LEVEL=WARNING, `--workers` processes, a signup bonus big enough that no buyer runs short),
and sets up through the API: an administrator and a category, `--sellers` sellers with two
skills each, and one buyer per client. Then `--clients` concurrent clients, each signed in as
its own buyer on one keep-alive connection, place orders (POST /api/points/orders/ on a random
skill) back to back for `--seconds`: every order places an escrow hold, writes the order and
its history, and runs the OrderPlaced subscribers (the order's chat room, the seller's
notification and its delivery row): two statements on PostgreSQL. Then the same clients run
against `_bare_orders_server.py`, bare Tornado and asyncpg with nothing around the statements,
as a reference for what this machine allows: issuing the same two statements, then the ten
round trips placing an order took before. Prints orders/s and latency percentiles, then runs
`skillswap ledger check` on the database. Targets: at least 600 orders/s, p99 under 150 ms. The
database is dropped at the end. Run it with RATE_LIMITS=off (the order policy would refuse most
of the load) on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (
    ROOT,
    free_port,
    percentile,
    run_cli,
    scratch_database,
    server_env,
    server_process,
)

PASSWORD = "bench password 123"


async def register(client: httpx.AsyncClient, name: str) -> tuple[int, str]:
    response = await client.post(
        "/api/auth/register/",
        json={"email": f"{name}@example.com", "username": name, "password": PASSWORD},
    )
    response.raise_for_status()
    body = response.json()
    return body["user"]["id"], body["access"]


async def set_up(client: httpx.AsyncClient, env: dict[str, str], args: argparse.Namespace):  # type: ignore[no-untyped-def]
    tag = secrets.token_hex(3)
    admin = f"oa{tag}"
    run_cli(
        "createadmin",
        "--email",
        f"{admin}@example.com",
        "--username",
        admin,
        "--password",
        PASSWORD,
        env=env,
    )
    login = await client.post("/api/auth/login/", json={"username": admin, "password": PASSWORD})
    login.raise_for_status()
    category = await client.post(
        "/api/admin/categories/",
        headers={"Authorization": f"Bearer {login.json()['access']}"},
        json={"slug": f"lessons-{tag}", "name_en": "Lessons", "name_ar": "دروس"},
    )
    category.raise_for_status()
    category_id = category.json()["id"]
    sellers = await asyncio.gather(*(register(client, f"os{tag}{i}") for i in range(args.sellers)))
    skills: list[int] = []
    for index, (_seller_id, token) in enumerate(sellers):
        for n in range(2):
            response = await client.post(
                "/api/skills/",
                headers={"Authorization": f"Bearer {token}"},
                json={
                    "title_en": f"Lesson {index}-{n}",
                    "description_en": "One hour, online.",
                    "category_id": category_id,
                    "price_points": random.randint(5, 50),
                },
            )
            response.raise_for_status()
            skills.append(response.json()["id"])
    buyers = []
    for start in range(0, args.clients, 16):  # registration hashes passwords: a few at a time
        batch = range(start, min(start + 16, args.clients))
        buyers += await asyncio.gather(*(register(client, f"ob{tag}{i}") for i in batch))
    await verify_emails(env["DATABASE_URL"], [buyer_id for buyer_id, _token in buyers])
    return skills, [token for _id, token in buyers]


async def verify_emails(database_url: str, user_ids: list[int]) -> None:
    """Mark the buyers' addresses verified (ordering requires it), as the emailed code would,
    before they first sign in with their tokens."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE users SET email_verified = true WHERE id = ANY($1::bigint[])", user_ids
        )
    finally:
        await conn.close()


class Connection:
    """One keep-alive HTTP/1.1 connection, as lean as a client can be.

    httpx spends more CPU per request than the server does on this path; a benchmark that
    shares the machine with the server must not measure its own client.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        return cls(*await asyncio.open_connection(host, port))

    async def post_json(self, path: str, token: str, body: bytes) -> int:
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


async def place_orders(
    url: str, skills: list[int], tokens: list[str], seconds: float
) -> tuple[list[float], float, dict[int, int]]:
    """Each client, signed in as its own buyer, orders random skills back to back."""
    parsed = httpx.URL(url)
    connections = [await Connection.open(parsed.host, parsed.port or 80) for _ in tokens]
    latencies: list[float] = []
    failures: dict[int, int] = {}
    stop_at = time.perf_counter() + seconds

    async def buyer(connection: Connection, token: str) -> None:
        while time.perf_counter() < stop_at:
            body = b'{"skill_id": %d}' % random.choice(skills)
            started = time.perf_counter()
            status = await connection.post_json("/api/points/orders/", token, body)
            if status == 201:
                latencies.append(time.perf_counter() - started)
            else:
                failures[status] = failures.get(status, 0) + 1

    began = time.perf_counter()
    try:
        await asyncio.gather(
            *(
                buyer(connection, token)
                for connection, token in zip(connections, tokens, strict=True)
            )
        )
    finally:
        for connection in connections:
            connection.close()
    return latencies, time.perf_counter() - began, failures


def report(name: str, latencies: list[float], elapsed: float, failures: dict[int, int]) -> None:
    print(
        f"{name}: {len(latencies) / elapsed:,.0f} orders/s "
        f"({len(latencies)} placed in {elapsed:.1f}s, failures {failures or 'none'}); "
        f"latency p50 {statistics.median(latencies) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms"
    )


@contextlib.contextmanager
def bare_server(database_url: str, statements: str, processes: int = 1) -> Iterator[str]:
    """`_bare_orders_server.py` on a free port: the statements (`two` or `ten`) with nothing
    around them."""
    port = free_port()
    script = str(Path(__file__).with_name("_bare_orders_server.py"))
    running = [
        subprocess.Popen([sys.executable, script, str(port), database_url, statements])
        for _ in range(processes)
    ]
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if any(p.poll() is not None for p in running) or time.monotonic() > deadline:
                    raise RuntimeError("the reference server did not start") from None
                time.sleep(0.1)
        time.sleep(0.5 if processes > 1 else 0)  # every process listening before clients connect
        yield f"http://127.0.0.1:{port}"
    finally:
        for process in running:
            process.terminate()
        for process in running:
            process.wait(timeout=10)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--sellers", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="skillswap serve --workers")
    parser.add_argument(
        "--no-reference", action="store_true", help="skip the bare Tornado + asyncpg reference run"
    )
    parser.add_argument(
        "--reference-processes", type=int, default=1, help="reference servers sharing its port"
    )
    args = parser.parse_args()
    async with scratch_database() as url:
        env = server_env(
            url,
            SIGNUP_BONUS_POINTS="100000000",
            SIGNUP_BONUS_ON="signup",
            WEB_WORKERS=str(args.workers),
        )
        run_cli("migrate", env=env)
        with server_process(env) as server:
            limits = httpx.Limits(
                max_connections=args.clients, max_keepalive_connections=args.clients
            )
            async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as client:
                skills, tokens = await set_up(client, env, args)
                print(
                    f"skillswap serve, {args.workers} worker process(es) (PostgreSQL + Redis); "
                    f"{len(skills)} skills, "
                    f"{len(tokens)} buyers, {args.clients} concurrent clients, {args.seconds:.0f}s"
                )
            # Warm-up: connections, prepared statements, caches.
            await place_orders(server.url, skills, tokens, 2)
            latencies, elapsed, failures = await place_orders(
                server.url, skills, tokens, args.seconds
            )
        report("POST /api/points/orders/", latencies, elapsed, failures)
        print("targets: 600 orders/s, p99 < 150 ms")
        if not args.no_reference:
            for statements, what in (
                ("two", "the same two statements"),
                ("ten", "the ten round trips of before"),
            ):
                with bare_server(url, statements, args.reference_processes) as bare_url:
                    await place_orders(bare_url, skills, tokens, 2)
                    report(
                        f"reference: bare Tornado + asyncpg ({args.reference_processes}"
                        f" process(es)), {what}, same clients",
                        *await place_orders(bare_url, skills, tokens, args.seconds),
                    )
        check = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "skillswap",
            "ledger",
            "check",
            env=env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await check.communicate()
        print(f"skillswap ledger check (exit {check.returncode}): {out.decode().strip()}")
        if check.returncode != 0:
            print(err.decode().strip())


if __name__ == "__main__":
    asyncio.run(main())
