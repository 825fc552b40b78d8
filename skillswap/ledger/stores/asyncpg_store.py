"""The ledger's statements in PostgreSQL's SQL, on an asyncpg connection."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from skillswap.ledger import statements as sql
from skillswap.ledger.stores.protocol import (
    AccountRow,
    HoldRow,
    NewEntry,
    NewTransfer,
    Outcome,
    TransferRow,
)


class AsyncpgStore:
    """The same statements in PostgreSQL's SQL, on an asyncpg connection: a unit of work's,
    or one in autocommit (a transfer is then one statement, atomic on its own).

    Its methods are `LedgerStore`'s, documented there.
    """

    def __init__(self, driver: asyncpg.Connection) -> None:
        self.driver = driver

    async def find_wallet(self, user_id: int) -> int | None:
        found = await self.driver.fetchval(
            "SELECT id FROM ledger_accounts WHERE user_id = $1", user_id
        )
        return None if found is None else int(found)

    async def create_wallet(self, user_id: int, now: datetime) -> None:
        await self.driver.execute(
            "INSERT INTO ledger_accounts (kind, user_id, balance, held, created_at)"
            " VALUES ('user', $1, 0, 0, $2) ON CONFLICT (user_id) DO NOTHING",
            user_id,
            now,
        )

    async def wallet_balance(self, user_id: int) -> tuple[int, int] | None:
        row = await self.driver.fetchrow(
            "SELECT balance, held FROM ledger_accounts WHERE user_id = $1", user_id
        )
        return None if row is None else (row["balance"], row["held"])

    async def account_state(self, account_id: int) -> tuple[str, int, int] | None:
        row = await self.driver.fetchrow(
            "SELECT kind, balance, held FROM ledger_accounts WHERE id = $1", account_id
        )
        return None if row is None else (row["kind"], row["balance"], row["held"])

    async def lock_accounts(self, ids: Sequence[int]) -> list[AccountRow]:
        # FOR NO KEY UPDATE: see statements.LOCK_ACCOUNTS.
        rows = await self.driver.fetch(
            "SELECT id, kind, balance, held FROM ledger_accounts WHERE id = ANY($1::bigint[])"
            " ORDER BY id FOR NO KEY UPDATE",
            list(ids),
        )
        return [AccountRow(r["id"], r["kind"], r["balance"], r["held"]) for r in rows]

    async def move(self, changes: Sequence[tuple[int, int, int]]) -> None:
        await self.driver.executemany(
            "UPDATE ledger_accounts SET balance = balance + $2::bigint,"
            " held = held + $3::bigint WHERE id = $1",
            list(changes),
        )

    async def reserve(self, account_id: int, amount: int) -> bool:
        status = await self.driver.execute(
            "UPDATE ledger_accounts SET held = held + $2::bigint"
            " WHERE id = $1 AND kind = 'user' AND balance - held >= $2::bigint",
            account_id,
            amount,
        )
        return bool(status == "UPDATE 1")

    async def release(self, account_id: int, amount: int) -> None:
        await self.driver.execute(
            "UPDATE ledger_accounts SET held = held - $2::bigint WHERE id = $1",
            account_id,
            amount,
        )

    async def transfer_at_once(self, new: NewTransfer) -> Outcome | None:
        assert new.hold_id is None, "a transfer of a hold is one leg of posting it"
        row = await self.driver.fetchrow(
            sql.TRANSFER_PG,
            new.idempotency_key,
            new.kind,
            new.debit_account_id,
            new.credit_account_id,
            new.amount,
            new.order_id,
            new.payment_id,
            new.created_at,
        )
        assert row is not None
        return Outcome(*row)

    async def hold_at_once(
        self, key: str, account_id: int, amount: int, now: datetime
    ) -> Outcome | None:
        row = await self.driver.fetchrow(sql.HOLD_PG, key, account_id, amount, now)
        assert row is not None
        return Outcome(*row)

    async def claim_transfer(self, new: NewTransfer) -> int | None:
        found = await self.driver.fetchval(
            "INSERT INTO ledger_transfers (idempotency_key, kind, status, debit_account_id,"
            " credit_account_id, amount, order_id, payment_id, hold_id, created_at)"
            " VALUES ($1, $2, 'posted', $3, $4, $5, $6, $7, $8, $9)"
            " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
            *new,
        )
        return None if found is None else int(found)

    async def record_transfers(self, rows: Sequence[NewTransfer]) -> list[int]:
        # One statement for all rows; ids are matched back to `rows` by their unique keys.
        columns = [list(column) for column in zip(*rows, strict=True)]
        found = await self.driver.fetch(
            "INSERT INTO ledger_transfers (idempotency_key, kind, status, debit_account_id,"
            " credit_account_id, amount, order_id, payment_id, hold_id, created_at)"
            " SELECT k, kd, 'posted', d, c, a, o, p, h, t FROM unnest($1::text[], $2::text[],"
            " $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[],"
            " $8::bigint[], $9::timestamptz[]) AS r(k, kd, d, c, a, o, p, h, t)"
            " RETURNING id, idempotency_key",
            *columns,
        )
        ids = {row["idempotency_key"]: int(row["id"]) for row in found}
        return [ids[row.idempotency_key] for row in rows]

    async def first_transfer(self, key: str) -> TransferRow:
        row = await self.driver.fetchrow(
            "SELECT id, kind, status, debit_account_id, credit_account_id, amount, order_id,"
            " payment_id, shortfall FROM ledger_transfers WHERE idempotency_key = $1",
            key,
        )
        assert row is not None
        return TransferRow(*row)

    async def reject_transfer(self, transfer_id: int, shortfall: int) -> None:
        await self.driver.execute(
            "UPDATE ledger_transfers SET status = 'rejected', failure_code = 'insufficient_funds',"
            " shortfall = $2 WHERE id = $1",
            transfer_id,
            shortfall,
        )

    async def write_entries(self, entries: Sequence[NewEntry]) -> None:
        await self.driver.executemany(
            "INSERT INTO ledger_entries (transfer_id, account_id, amount, balance_after,"
            " created_at) VALUES ($1, $2, $3, $4, $5)",
            list(entries),
        )

    async def claim_hold(self, key: str, account_id: int, amount: int, now: datetime) -> int | None:
        found = await self.driver.fetchval(
            "INSERT INTO ledger_holds (idempotency_key, account_id, amount, status, created_at)"
            " VALUES ($1, $2, $3, 'pending', $4)"
            " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
            key,
            account_id,
            amount,
            now,
        )
        return None if found is None else int(found)

    async def first_hold(self, key: str) -> HoldRow:
        row = await self.driver.fetchrow(
            "SELECT id, account_id, amount, status, shortfall FROM ledger_holds"
            " WHERE idempotency_key = $1",
            key,
        )
        assert row is not None
        return HoldRow(*row)

    async def hold_status(self, hold_id: int) -> str | None:
        found = await self.driver.fetchval("SELECT status FROM ledger_holds WHERE id = $1", hold_id)
        return None if found is None else str(found)

    async def reject_hold(self, hold_id: int, shortfall: int, now: datetime) -> None:
        await self.driver.execute(
            "UPDATE ledger_holds SET status = 'rejected', shortfall = $2, resolved_at = $3"
            " WHERE id = $1",
            hold_id,
            shortfall,
            now,
        )

    async def void_hold(self, hold_id: int, now: datetime) -> tuple[int, int] | None:
        row = await self.driver.fetchrow(
            "UPDATE ledger_holds SET status = 'voided', resolved_at = $2"
            " WHERE id = $1 AND status = 'pending' RETURNING account_id, amount",
            hold_id,
            now,
        )
        return None if row is None else (row["account_id"], row["amount"])

    async def post_hold(self, hold_id: int, total: int, now: datetime) -> tuple[int, int] | None:
        row = await self.driver.fetchrow(
            "UPDATE ledger_holds SET status = 'posted', posted_amount = $2, resolved_at = $3"
            " WHERE id = $1 AND status = 'pending' AND amount >= $2"
            " RETURNING account_id, amount",
            hold_id,
            total,
            now,
        )
        return None if row is None else (row["account_id"], row["amount"])
