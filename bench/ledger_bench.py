"""Ledger transfers per second through the service layer, beside bare asyncpg doing the same writes.

    .venv/bin/python bench/ledger_bench.py [--seconds 10] [--concurrency 32] [--wallets 1000]

Creates a scratch PostgreSQL database, migrates it, funds `--wallets` wallets, then runs
`--concurrency` tasks that each transfer random amounts between random wallets for
`--seconds` (in `--rounds` interleaved slices), three ways in the same run:
1. through `skillswap.ledger.run_transfer` (the service layer: checks, a pooled connection,
   the one-statement transfer `statements.TRANSFER_PG`: lock, decide, record, move, entries);
2. bare asyncpg issuing that same statement, one connection per task;
3. bare asyncpg doing the same writes in steps, one round trip each (BEGIN, key claim, lock in
   id order, balances, entries, COMMIT), as the transfer ran before it became one statement.
Ends with the full ledger audit, then drops the database. Target: at least 2,000 transfers/s
through the service layer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import percentile, run_cli, scratch_database, server_env

from skillswap import ledger
from skillswap.db import Database, create_engine
from skillswap.ledger import SystemAccount, TransferKind, TransferRequest
from skillswap.ledger.statements import TRANSFER_PG
from skillswap.points.services import audit_ledger
from skillswap.settings import Settings

FUNDING = 1_000_000  # per wallet, so that no transfer is refused for lack of points


async def create_wallets(url: str, count: int) -> list[int]:
    """Users and their funded wallets, written directly (setup, not measured)."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        tag = uuid.uuid4().hex[:6]
        now = datetime.now(UTC)
        user_ids = await conn.fetch(
            """
            INSERT INTO users (email, email_verified, username, username_key, display_name, bio,
                               avatar_url, phone, locale, is_admin, is_active, rating_sum,
                               rating_count, created_at, updated_at)
            SELECT 'lb' || $1 || g || '@example.com', true, 'lb' || $1 || g, 'lb' || $1 || g,
                   '', '', '', '', 'en', false, true, 0, 0, $2, $2
            FROM generate_series(1, $3) AS g
            RETURNING id
            """,
            tag,
            now,
            count,
        )
        wallets = await conn.fetch(
            """
            INSERT INTO ledger_accounts (kind, user_id, balance, held, created_at)
            SELECT 'user', id, 0, 0, $2 FROM unnest($1::bigint[]) AS id
            RETURNING id
            """,
            [row["id"] for row in user_ids],
            now,
        )
        return [row["id"] for row in wallets]
    finally:
        await conn.close()


async def fund(db: Database, wallets: list[int]) -> None:
    now = datetime.now(UTC)
    for wallet in wallets:
        await ledger.run_transfer(
            db,
            TransferRequest(
                key=f"bench-funding:{wallet}",
                kind=TransferKind.ADJUSTMENT,
                debit_account_id=SystemAccount.PURCHASED_POINTS,
                credit_account_id=wallet,
                amount=FUNDING,
            ),
            now=now,
        )


async def drive(
    transfer_once, *, concurrency: int, seconds: float
) -> tuple[int, float, list[float]]:  # type: ignore[no-untyped-def]
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            await transfer_once()
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies), time.perf_counter() - began, latencies


def report(name: str, count: int, elapsed: float, latencies: list[float]) -> float:
    rate = count / elapsed
    print(
        f"{name}: {rate:,.0f} transfers/s ({count} in {elapsed:.1f}s); "
        f"latency p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms"
    )
    return rate


BARE_CLAIM = """
INSERT INTO ledger_transfers (idempotency_key, kind, status, debit_account_id, credit_account_id,
                              amount, created_at)
VALUES ($1, 'adjustment', 'posted', $2, $3, $4, $5)
ON CONFLICT (idempotency_key) DO NOTHING RETURNING id
"""
BARE_LOCK = """
SELECT id, kind, balance, held FROM ledger_accounts WHERE id = ANY($1::bigint[])
ORDER BY id FOR NO KEY UPDATE
"""
BARE_UPDATE = """
UPDATE ledger_accounts SET balance = balance + CASE WHEN id = $1 THEN -$3::bigint
                                                    WHEN id = $2 THEN $3::bigint ELSE 0 END
WHERE id = ANY(ARRAY[$1, $2]::bigint[])
"""
BARE_ENTRIES = """
INSERT INTO ledger_entries (transfer_id, account_id, amount, balance_after, created_at)
VALUES ($1, $2, $3, $4, $7), ($1, $5, $6, $8, $7)
"""


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--wallets", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved slices per way")
    args = parser.parse_args()
    import asyncpg

    print(
        f"{args.concurrency} concurrent tasks, {args.wallets} wallets, "
        f"{args.seconds:.0f}s per way in {args.rounds} interleaved slices, PostgreSQL"
    )
    async with scratch_database() as url:
        run_cli("migrate", env=server_env(url))
        settings = Settings(
            database_url=url,
            db_pool_size=args.concurrency,
            db_max_overflow=0,
        )
        wallets = await create_wallets(url, args.wallets)
        db = Database(create_engine(settings))
        try:
            await fund(db, wallets)

            async def through_service() -> None:
                debit, credit = random.sample(wallets, 2)
                await ledger.run_transfer(
                    db,
                    TransferRequest(
                        key=uuid.uuid4().hex,
                        kind=TransferKind.ADJUSTMENT,
                        debit_account_id=debit,
                        credit_account_id=credit,
                        amount=random.randint(1, 100),
                    ),
                    now=datetime.now(UTC),
                )

            # The leanest pool there is: one connection per task, handed back untouched
            # (asyncpg's own pool resets each connection it takes back: a round trip more).
            idle: asyncio.Queue[asyncpg.Connection] = asyncio.Queue()
            for _ in range(args.concurrency):
                idle.put_nowait(await asyncpg.connect(url.replace("postgresql://", "postgres://")))

            @contextlib.asynccontextmanager
            async def connection() -> AsyncIterator[asyncpg.Connection]:
                conn = await idle.get()
                try:
                    yield conn
                finally:
                    idle.put_nowait(conn)

            async def bare_one_statement() -> None:
                debit, credit = random.sample(wallets, 2)
                async with connection() as conn:
                    found, transfer_id, shortfall = await conn.fetchrow(
                        TRANSFER_PG,
                        uuid.uuid4().hex,
                        "adjustment",
                        debit,
                        credit,
                        random.randint(1, 100),
                        None,
                        None,
                        datetime.now(UTC),
                    )
                if found != 2 or transfer_id is None or shortfall:
                    raise RuntimeError("bench wallets are funded never to run short")

            async def bare_in_steps() -> None:
                debit, credit = random.sample(wallets, 2)
                amount = random.randint(1, 100)
                now = datetime.now(UTC)
                async with connection() as conn, conn.transaction():
                    transfer_id = await conn.fetchval(
                        BARE_CLAIM, uuid.uuid4().hex, debit, credit, amount, now
                    )
                    rows = await conn.fetch(BARE_LOCK, [debit, credit])
                    balance = {row["id"]: row["balance"] for row in rows}
                    if balance[debit] - amount < 0:
                        raise RuntimeError("bench wallets are funded never to run short")
                    await conn.execute(BARE_UPDATE, debit, credit, amount)
                    await conn.execute(
                        BARE_ENTRIES,
                        transfer_id,
                        debit,
                        -amount,
                        balance[debit] - amount,
                        credit,
                        amount,
                        now,
                        balance[credit] + amount,
                    )

            modes = {
                "service layer (skillswap.ledger.run_transfer)": through_service,
                "bare asyncpg, the same statement": bare_one_statement,
                "bare asyncpg, the same writes in 6 round trips": bare_in_steps,
            }
            results: dict[str, tuple[int, float, list[float]]] = {
                name: (0, 0.0, []) for name in modes
            }
            try:
                # Interleaved slices, so that a machine shared with others slows all alike.
                for _round in range(args.rounds):
                    for name, transfer_once in modes.items():
                        count, elapsed, latencies = await drive(
                            transfer_once,
                            concurrency=args.concurrency,
                            seconds=args.seconds / args.rounds,
                        )
                        total, spent, all_latencies = results[name]
                        results[name] = (total + count, spent + elapsed, all_latencies + latencies)
            finally:
                while not idle.empty():
                    await idle.get_nowait().close()
            rates = [report(name, *result) for name, result in results.items()]
            service, baseline = rates[0], rates[1]
            print(f"service layer at {service / baseline:.0%} of bare asyncpg; target 2,000/s")
            audit = await audit_ledger(db)
            counts = ", ".join(f"{n} {table}" for table, n in audit.counts.items())
            verdict = "ok" if audit.ok else f"FAILED ({len(audit.violations)} violations)"
            print(f"ledger check {verdict}: {len(audit.checked)} invariants ({counts})")
            for violation in audit.violations:
                print(f"VIOLATION {violation.invariant}: {violation.detail}")
        finally:
            await db.dispose()


if __name__ == "__main__":
    asyncio.run(main())
