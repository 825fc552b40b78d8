"""Marketplace statistics on a million orders: GET /api/admin/stats/ over HTTP on one node.

Seeds, in a scratch PostgreSQL database of its own (INSERT ... SELECT generate_series, with
foreign-key triggers off for the load: only what the statistics read), a year of a marketplace:
100,000 users with wallets, 2,000 skills, 1,000,000 orders (70% completed, 3% disputed, the
rest open or closed), their disputes' transitions, 100,000 payments over three gateways,
1,000,000 chat messages and 500 adjustments; then VACUUM ANALYZE, as autovacuum would, and
the statistics' daily rollup of the closed days, as the scheduler's first run would (its time
is printed; today's rows stay live).
Measures the statistics for the last 30 days by day, the year by week and the year by month
(p50, p99, req/s, closed loop), beside GET /healthz on the same node as the bare reference.

    .venv/bin/python bench/admin_stats_bench.py [--orders 1000000] [--seconds 10] [--keep NAME]

`--keep NAME` seeds into the database NAME the first time and keeps it; later runs with the
same NAME migrate it (new migrations only) and measure again without seeding, so that indexes
and statements can be tried on the same million rows. Drop it with `DROP DATABASE NAME`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    PG_ADMIN,
    closed_loop,
    percentile,
    run_cli,
    scratch_database,
    server_env,
    server_process,
)

PASSWORD = "correct horse battery staple 7"

SEED = """
SET session_replication_role = replica;
INSERT INTO users (email, email_verified, username, username_key, display_name, bio, avatar_url,
                   phone, locale, is_admin, is_active, is_verified, rating_sum, rating_count,
                   created_at, updated_at)
SELECT 'u' || g || '@bench.example', g % 3 = 0, 'u' || g, 'u' || g, '', '', '', '', 'en', false,
       g % 50 <> 0, g % 10 = 0, 0, 0,
       $1::timestamptz + (g * interval '1 second') * (31536000 / $2::int), now()
FROM generate_series(1, $2::int) g;
INSERT INTO ledger_accounts (kind, user_id, balance, held, created_at)
SELECT 'user', id, 100 + id % 50, id % 7, now() FROM users WHERE email LIKE '%@bench.example';
INSERT INTO skills (owner_id, category_id, title_en, title_ar, description_en, description_ar,
                    price_points, level, languages, tags, delivery_days, status,
                    moderation_note, rating_sum, rating_count, orders_completed, created_at,
                    updated_at)
SELECT (SELECT min(id) FROM users) + g * 37 % $2::int,
       (SELECT id FROM skill_categories ORDER BY id
        OFFSET g % (SELECT count(*) FROM skill_categories) LIMIT 1),
       'Skill ' || g, '', '', '', 10 + g % 90, 'beginner', '["en"]', '[]', 3,
       CASE WHEN g % 20 = 0 THEN 'paused' ELSE 'active' END, '', 0, 0, 0,
       $1::timestamptz + (g * interval '1 second') * (31536000 / 2000), now()
FROM generate_series(1, 2000) g;
INSERT INTO orders (buyer_id, seller_id, skill_id, hold_id, status, price_points, requirements,
                    change_requests, seller_points, fee_points, refunded_points, created_at,
                    updated_at, completed_at)
SELECT b, CASE WHEN s = b THEN s + 1 ELSE s END, k, g, st, 20, '', 0,
       CASE WHEN st = 'completed' THEN 18 END, CASE WHEN st = 'completed' THEN 2 END,
       CASE WHEN st = 'completed' THEN 0 END, c, c,
       CASE WHEN st = 'completed' THEN c + (g % 240) * interval '1 hour' END
FROM (
  SELECT g, (SELECT min(id) FROM users) + g % ($2::int - 1) AS b,
         (SELECT min(id) FROM users) + (g::bigint * 7919) % ($2::int - 1) AS s,
         (SELECT min(id) FROM skills) + g % 2000 AS k,
         CASE WHEN g % 100 < 70 THEN 'completed' WHEN g % 100 < 73 THEN 'disputed'
              WHEN g % 100 < 80 THEN 'cancelled' WHEN g % 100 < 85 THEN 'expired'
              WHEN g % 100 < 90 THEN 'rejected' ELSE 'accepted' END AS st,
         $1::timestamptz + (g * interval '1 second') * (31536000.0 / $3::int) AS c
  FROM generate_series(1, $3::int) g
) o;
INSERT INTO order_transitions (order_id, actor_id, action, from_status, to_status, note,
                               created_at)
SELECT id, buyer_id, 'dispute', 'delivered', 'disputed', '', created_at + interval '2 days'
FROM orders WHERE status = 'disputed';
INSERT INTO payments (user_id, gateway, status, points, amount_minor, currency, refunded_minor,
                      created_at, updated_at, settled_at)
SELECT (SELECT min(id) FROM users) + g % $2::int,
       (ARRAY['stripe', 'paypal', 'paymob'])[1 + g % 3],
       CASE WHEN g % 10 < 8 THEN 'succeeded' WHEN g % 10 = 8 THEN 'failed' ELSE 'expired' END,
       100, 499, (ARRAY['USD', 'EUR', 'EGP'])[1 + g % 3], 0, c, c,
       CASE WHEN g % 10 < 8 THEN c END
FROM (SELECT g, $1::timestamptz + (g * interval '1 second') * (31536000.0 / ($3::int / 10)) AS c
      FROM generate_series(1, $3::int / 10) g) p;
INSERT INTO chat_messages (room_id, seq, sender_id, body, created_at)
SELECT 1 + g / 100, g % 100, (SELECT min(id) FROM users) + g % $2::int, 'hello',
       $1::timestamptz + (g * interval '1 second') * (31536000.0 / $3::int)
FROM generate_series(1, $3::int) g;
INSERT INTO ledger_transfers (idempotency_key, kind, status, debit_account_id, credit_account_id,
                              amount, created_at)
SELECT 'bench-adjustment-' || g, 'adjustment', 'posted',
       CASE WHEN g % 4 = 0 THEN (SELECT min(id) FROM ledger_accounts WHERE kind = 'user') ELSE -1 END,
       CASE WHEN g % 4 = 0 THEN -1 ELSE (SELECT min(id) FROM ledger_accounts WHERE kind = 'user') END,
       1 + g % 20, $1::timestamptz + (g * interval '1 hour') * 17
FROM generate_series(1, 500) g;
SET session_replication_role = origin;
"""


async def seed(pg: str, *, users: int, orders: int, start: datetime) -> float:
    import asyncpg

    began = time.perf_counter()
    conn = await asyncpg.connect(pg)
    try:
        for statement in (s.strip() for s in SEED.split(";\n") if s.strip()):
            args = [a for n, a in ((1, start), (2, users), (3, orders)) if f"${n}" in statement]
            await conn.execute(statement, *args)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - began


@contextlib.asynccontextmanager
async def kept_database(name: str) -> AsyncIterator[tuple[str, bool]]:
    """The database `name` (created when missing) and whether it was created now; kept."""
    import asyncpg

    admin = await asyncpg.connect(PG_ADMIN)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, query = PG_ADMIN.partition("?")
    yield base.rsplit("/", 1)[0] + "/" + name + (f"?{query}" if query else ""), not exists


@contextlib.asynccontextmanager
async def database(keep: str | None) -> AsyncIterator[tuple[str, bool]]:
    """A scratch database dropped afterwards, or the kept one named `keep`."""
    if keep:
        async with kept_database(keep) as kept:
            yield kept
    else:
        async with scratch_database() as url:
            yield url, True


async def roll_up(env: dict[str, str]) -> float:
    """The scheduler's stats_rollup job, once, on the seeded database."""
    from skillswap.admin.stats import roll_up_closed_days
    from skillswap.bootstrap import bootstrap
    from skillswap.settings import Settings

    began = time.perf_counter()
    deps = await bootstrap(Settings.from_env(env))
    try:
        await roll_up_closed_days(deps, datetime.now(UTC))
    finally:
        await deps.close()
    return time.perf_counter() - began


async def measure(url: str, path: str, token: str, *, concurrency: int, seconds: float):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as client:
        first = await client.get(path)
        assert first.status_code == 200, first.text
        return await closed_loop(
            client, lambda c, _i: c.get(path), concurrency=concurrency, duration_s=seconds
        )


def row(name: str, latencies: list[float], elapsed: float, errors: int) -> str:
    return (
        f"| {name} | {len(latencies) / elapsed:,.1f} req/s | "
        f"{percentile(latencies, 0.5) * 1000:.1f} ms | {percentile(latencies, 0.99) * 1000:.1f} ms "
        f"| {len(latencies)} | {errors} |"
    )


async def main(args: argparse.Namespace) -> None:
    now = datetime.now(UTC)
    start = now - timedelta(days=365)
    async with database(args.keep) as (url, fresh):
        env = server_env(url, ARGON2_TIME_COST="1", ARGON2_MEMORY_KIB="1024")
        run_cli("migrate", env=env)
        seeded = 0.0
        if fresh:
            run_cli(
                "createadmin",
                "--email",
                "admin@stats.example",
                "--username",
                "statsadmin",
                "--password",
                PASSWORD,
                env=env,
            )
            pg = url.replace("postgresql+asyncpg://", "postgresql://")
            seeded = await seed(pg, users=args.users, orders=args.orders, start=start)
        rolled = await roll_up(env)
        today = now.date()
        year_ago = (now - timedelta(days=364)).date()
        runs = [
            ("30 days by day", f"/api/admin/stats/?to={today}&interval=day"),
            ("a year by week", f"/api/admin/stats/?from={year_ago}&to={today}&interval=week"),
            ("a year by month", f"/api/admin/stats/?from={year_ago}&to={today}&interval=month"),
        ]
        load = os.getloadavg()[0]
        results = []
        with server_process(env) as node:
            async with httpx.AsyncClient(base_url=node.url) as client:
                login = await client.post(
                    "/api/auth/login/",
                    json={"email": "admin@stats.example", "password": PASSWORD},
                )
            assert login.status_code == 200, login.text
            token = login.json()["access"]
            for name, path in runs:
                results.append(
                    (
                        f"GET stats, {name}",
                        await measure(
                            node.url,
                            path,
                            token,
                            concurrency=args.concurrency,
                            seconds=args.seconds,
                        ),
                    )
                )
            results.append(
                (
                    "GET /healthz (same node)",
                    await measure(
                        node.url, "/healthz", "", concurrency=args.concurrency, seconds=args.seconds
                    ),
                )
            )
    print(
        f"one serve node, {args.orders:,} orders, {args.users:,} users, {args.orders // 10:,} "
        f"payments, {args.orders:,} chat messages over a year "
        f"({f'seeded in {seeded:.0f} s' if seeded else 'kept from an earlier run'}, "
        f"closed days rolled up in {rolled:.1f} s); "
        f"{args.concurrency} clients, {args.seconds:.0f} s each; load average {load:.2f} -> "
        f"{os.getloadavg()[0]:.2f}"
    )
    print("| run | rate | p50 | p99 | ok | errors |")
    print("|---|---|---|---|---|---|")
    for name, measured in results:
        print(row(name, *measured))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--keep", metavar="NAME", help="seed once into database NAME, keep it")
    asyncio.run(main(parser.parse_args()))
