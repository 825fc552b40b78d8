"""Verified Stripe webhooks per second one `skillswap serve` node stores, and webhook-to-credit.

    .venv/bin/python bench/payments_bench.py [--seconds 10] [--concurrency 32] [--credits 400]
                                             [--rate 50]

Creates a scratch PostgreSQL database, migrates it, and starts one `skillswap serve` node (one
process, Stripe configured with a webhook secret of its own) on Redis.

1. Stored webhooks: `--concurrency` clients POST distinct `checkout.session.completed` events
   to /api/payments/stripe/webhook/ back to back for `--seconds`, each body signed as Stripe
   signs it (`Stripe-Signature: t=...,v1=HMAC-SHA256`), over real HTTP. The node checks the
   signature on the raw bytes and stores the event with its outbox row, answering 200. No
   worker runs meanwhile, so the figure is the node's alone.
2. References in the same run, same clients: the node's /healthz (the floor of a request
   through the app), and a bare Tornado process that checks the same signature and INSERTs the
   event row with asyncpg, nothing else (no app, no outbox row, no ORM): what any node doing
   that work over HTTP with Tornado and asyncpg reaches on this machine.
3. Webhook to credit: one `skillswap worker` process starts (the stored backlog is drained
   first), `--credits` pending payments are made, and their completion events are sent one at
   a time at `--rate` per second. The credit is observed through a trigger on `payments` (in
   this scratch database only) that NOTIFYs when a payment becomes `succeeded`: the
   notification is delivered at that transaction's commit. Latency = commit seen - POST sent.

Stops the processes and drops the database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (
    ROOT,
    closed_loop,
    free_port,
    percentile,
    run_cli,
    scratch_database,
    server_env,
    server_process,
)

WEBHOOK_SECRET = "whsec_bench_" + "b" * 24
WEBHOOK = "/api/payments/stripe/webhook/"
BARE_INSERT = """
INSERT INTO payment_events (gateway, event_id, event_type, body, headers, received_at)
VALUES ('stripe', $1, $2, $3, $4::jsonb, now()) ON CONFLICT (gateway, event_id) DO NOTHING
RETURNING id
"""
NOTIFY_ON_CREDIT = """
CREATE FUNCTION bench_credited() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_notify('bench_credited', NEW.id::text); RETURN NEW; END $$;
CREATE TRIGGER bench_credited AFTER UPDATE OF status ON payments
FOR EACH ROW WHEN (NEW.status = 'succeeded') EXECUTE FUNCTION bench_credited();
"""


def signed(event: dict[str, object]) -> tuple[bytes, dict[str, str]]:
    """The body and headers Stripe would send for `event`, signed now."""
    body = json.dumps(event, indent=2).encode()
    moment = int(time.time())
    mac = hmac.new(WEBHOOK_SECRET.encode(), f"{moment}.".encode() + body, hashlib.sha256)
    return body, {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": f"t={moment},v1={mac.hexdigest()}",
    }


def completed_event(event_id: str, session: dict[str, object]) -> dict[str, object]:
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2025-06-30.basil",
        "created": int(time.time()),
        "type": "checkout.session.completed",
        "data": {"object": session},
        "livemode": False,
    }


def session_of(reference: str, payment_id: int | None, amount: int) -> dict[str, object]:
    return {
        "id": reference,
        "object": "checkout.session",
        "status": "complete",
        "payment_status": "paid",
        "amount_total": amount,
        "currency": "usd",
        "client_reference_id": None if payment_id is None else str(payment_id),
        "metadata": {} if payment_id is None else {"payment_id": str(payment_id)},
        "payment_intent": f"pi_bench_{reference}",
    }


# -- the bare reference -------------------------------------------------------------------------


def bare_server(port: int, url: str) -> None:
    """Tornado + asyncpg: check the signature, INSERT the event, answer 200."""
    import asyncpg
    import tornado.web

    class Webhook(tornado.web.RequestHandler):
        def initialize(self, pool: asyncpg.Pool) -> None:
            self.pool = pool

        def check_xsrf_cookie(self) -> None:
            return None

        async def post(self) -> None:
            body = self.request.body
            parts = dict(
                item.split("=", 1) for item in self.request.headers["Stripe-Signature"].split(",")
            )
            expected = hmac.new(
                WEBHOOK_SECRET.encode(), parts["t"].encode() + b"." + body, hashlib.sha256
            ).hexdigest()
            if not hmac.compare_digest(expected, parts["v1"]):
                raise tornado.web.HTTPError(400)
            event = json.loads(body)
            async with self.pool.acquire() as conn:
                stored = await conn.fetchval(
                    BARE_INSERT, event["id"], event["type"], body, json.dumps({})
                )
            self.finish({"received": True, "duplicate": stored is None})

    async def main() -> None:
        pool = await asyncpg.create_pool(url, max_size=20)
        app = tornado.web.Application([(WEBHOOK, Webhook, {"pool": pool})])
        app.listen(port, address="127.0.0.1")
        await asyncio.Event().wait()

    asyncio.run(main())


@contextlib.contextmanager
def bare_process(url: str) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--bare-server", str(port), url], cwd=ROOT
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the bare server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


@contextlib.contextmanager
def worker_process(env: dict[str, str]) -> Iterator[None]:
    process = subprocess.Popen(
        [sys.executable, "-m", "skillswap", "worker", "--workers", "1"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()


# -- the runs -----------------------------------------------------------------------------------


async def storing(url: str, prefix: str, *, concurrency: int, seconds: float):  # type: ignore[no-untyped-def]
    """Distinct signed events POSTed back to back; (latencies, elapsed, errors)."""

    async def post(client: httpx.AsyncClient, n: int) -> httpx.Response:
        reference = f"cs_bench_{prefix}_{n}"
        body, headers = signed(
            completed_event(f"evt_{prefix}_{n}", session_of(reference, None, 999))
        )
        return await client.post(url + WEBHOOK, content=body, headers=headers)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        return await closed_loop(client, post, concurrency=concurrency, duration_s=seconds)


async def healthz(url: str, *, concurrency: int, seconds: float):  # type: ignore[no-untyped-def]
    async def get(client: httpx.AsyncClient, _n: int) -> httpx.Response:
        return await client.get(url + "/healthz")

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        return await closed_loop(client, get, concurrency=concurrency, duration_s=seconds)


async def drained(conn, *, within: float = 300) -> None:  # type: ignore[no-untyped-def]
    """Wait until the worker has processed every stored event's outbox row."""
    deadline = time.monotonic() + within
    while await conn.fetchval("SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'running')"):
        if time.monotonic() > deadline:
            raise RuntimeError("the worker did not drain the stored events")
        await asyncio.sleep(0.2)


async def crediting(conn, listen, url: str, user_id: int, *, count: int, rate: float):  # type: ignore[no-untyped-def]
    """Pending payments, then their completions one at a time at `rate`; credit latencies."""
    ids = [
        await conn.fetchval(
            "INSERT INTO payments (user_id, gateway, status, points, amount_minor, currency,"
            " refunded_minor, reference, created_at, updated_at)"
            " VALUES ($1, 'stripe', 'pending', 100, 999, 'USD', 0, $2, now(), now()) RETURNING id",
            user_id,
            f"cs_bench_pay_{n}",
        )
        for n in range(count)
    ]
    sent: dict[int, float] = {}
    credited: dict[int, float] = {}
    every = asyncio.Event()

    def on_notify(_conn, _pid, _channel, payload: str) -> None:  # type: ignore[no-untyped-def]
        credited[int(payload)] = time.perf_counter()
        if len(credited) == count:
            every.set()

    await listen.add_listener("bench_credited", on_notify)
    answers: list[float] = []
    async with httpx.AsyncClient(timeout=30) as client:

        async def send(payment_id: int, n: int) -> None:
            reference = f"cs_bench_pay_{n}"
            body, headers = signed(
                completed_event(f"evt_pay_{n}", session_of(reference, payment_id, 999))
            )
            sent[payment_id] = started = time.perf_counter()
            response = await client.post(url + WEBHOOK, content=body, headers=headers)
            response.raise_for_status()
            answers.append(time.perf_counter() - started)

        began = time.perf_counter()
        tasks = []
        for n, payment_id in enumerate(ids):
            await asyncio.sleep(max(0.0, began + n / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(send(payment_id, n)))
        await asyncio.gather(*tasks)
        await asyncio.wait_for(every.wait(), timeout=120)
    await listen.remove_listener("bench_credited", on_notify)
    latencies = [credited[p] - sent[p] for p in ids]
    wrong = await conn.fetchval(
        "SELECT COUNT(*) FROM ledger_transfers WHERE kind = 'purchase' AND payment_id = ANY($1)",
        ids,
    )
    if wrong != count:
        raise RuntimeError(f"{wrong} credits for {count} payments")
    return latencies, answers


def row(name: str, latencies: list[float], elapsed: float, errors: int) -> str:
    rate = len(latencies) / elapsed
    p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
    return f"| {name} | {rate:,.0f}/s | {p50:.1f} ms | {p99:.1f} ms | {len(latencies)} | {errors} |"


async def main(args: argparse.Namespace) -> None:
    import asyncpg

    async with scratch_database() as url:
        env = server_env(
            url,
            STRIPE_SECRET_KEY="sk_test_bench",
            STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            STRIPE_API_BASE="http://127.0.0.1:9",  # never asked: completions carry everything
        )
        run_cli("migrate", env=env)
        run_cli(
            "createadmin",
            "--email",
            "buyer@bench.example",
            "--username",
            "benchbuyer",
            "--password",
            "correct horse battery staple 7",
            env={**env, "ARGON2_TIME_COST": "1", "ARGON2_MEMORY_KIB": "1024"},
        )
        pg = url.replace("postgresql+asyncpg://", "postgresql://")
        conn = await asyncpg.connect(pg)
        listen = await asyncpg.connect(pg)
        try:
            await conn.execute(NOTIFY_ON_CREDIT)
            user_id = await conn.fetchval(
                "SELECT id FROM users WHERE email = 'buyer@bench.example'"
            )
            load = os.getloadavg()[0]
            with server_process(env) as node:
                stored = await storing(
                    node.url, "node", concurrency=args.concurrency, seconds=args.seconds
                )
                health = await healthz(node.url, concurrency=args.concurrency, seconds=args.seconds)
                with bare_process(pg) as bare:
                    reference = await storing(
                        bare, "bare", concurrency=args.concurrency, seconds=args.seconds
                    )
                rows = await conn.fetchval("SELECT COUNT(*) FROM payment_events")
                # Its warnings about the events of run 1 (they name no payment) are expected.
                with worker_process({**env, "LOG_LEVEL": "ERROR"}):
                    await drained(conn)
                    credit, answers = await crediting(
                        conn, listen, node.url, user_id, count=args.credits, rate=args.rate
                    )
        finally:
            await conn.close()
            await listen.close()
    print(
        f"one serve node, {args.concurrency} clients, {args.seconds:.0f} s each; "
        f"{rows} events stored; load average {load:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    print("| run | rate | p50 | p99 | ok | errors |")
    print("|---|---|---|---|---|---|")
    print(row("signed webhook stored (node)", *stored))
    print(row("GET /healthz (same node)", *health))
    print(row("bare Tornado + asyncpg: verify, INSERT", *reference))
    print(
        f"\nwebhook to credit, one worker process, {args.credits} payments at {args.rate:.0f}/s: "
        f"p50 {percentile(credit, 0.5) * 1000:.1f} ms, p99 {percentile(credit, 0.99) * 1000:.1f} ms, "
        f"max {max(credit) * 1000:.1f} ms (the webhook's own answer: p50 "
        f"{percentile(answers, 0.5) * 1000:.1f} ms, p99 {percentile(answers, 0.99) * 1000:.1f} ms)"
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--bare-server":
        bare_server(int(sys.argv[2]), sys.argv[3])
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--credits", type=int, default=400)
    parser.add_argument("--rate", type=float, default=50)
    asyncio.run(main(parser.parse_args()))
