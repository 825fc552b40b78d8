"""Where the ledger's statements run: one interface, two implementations, the same SQL meaning.

`SqlAlchemyStore` runs the Core statements of `statements.py` on any backend. On PostgreSQL,
once the unit of work's transaction has begun, `AsyncpgStore` runs the same statements on the
asyncpg connection underneath it (same connection, same transaction): transfers are the
service's hottest path and SQLAlchemy's execution layer costs about twice the driver's work.
The logic (what to lock, check and write) lives once, in `transfers.py` and `holds.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from skillswap.db import driver_in_transaction
from skillswap.ledger import statements as sql

if TYPE_CHECKING:
    import asyncpg


class AccountRow(NamedTuple):
    id: int
    kind: str
    balance: int
    held: int


class TransferRow(NamedTuple):
    id: int
    kind: str
    status: str
    debit_account_id: int
    credit_account_id: int
    amount: int
    order_id: int | None
    payment_id: int | None
    shortfall: int | None


class HoldRow(NamedTuple):
    id: int
    account_id: int
    amount: int
    status: str
    shortfall: int | None


class NewTransfer(NamedTuple):
    idempotency_key: str
    kind: str
    debit_account_id: int
    credit_account_id: int
    amount: int
    order_id: int | None
    payment_id: int | None
    hold_id: int | None
    created_at: datetime


class NewEntry(NamedTuple):
    transfer_id: int
    account_id: int
    amount: int
    balance_after: int
    created_at: datetime


class Outcome(NamedTuple):
    """What recording a transfer or hold under its key came to."""

    found: int  # how many of the accounts it names exist (and, for a hold, are user wallets)
    id: int | None  # the new transfer or hold; None when the key had already been used
    shortfall: int | None  # set when it was refused (and recorded as such) for lack of points


class LedgerStore(Protocol):
    """The ledger's statements; every method runs inside the caller's transaction."""

    async def find_wallet(self, user_id: int) -> int | None:
        """The user's wallet id, if any."""

    async def create_wallet(self, user_id: int, now: datetime) -> None:
        """Create the user's empty wallet unless one exists (a concurrent one wins)."""

    async def wallet_balance(self, user_id: int) -> tuple[int, int] | None:
        """(balance, held) of the user's wallet, if any."""

    async def account_state(self, account_id: int) -> tuple[str, int, int] | None:
        """(kind, balance, held) of an account, unlocked."""

    async def lock_accounts(self, ids: Sequence[int]) -> list[AccountRow]:
        """Lock the accounts in ascending id order and return them."""

    async def move(self, changes: Sequence[tuple[int, int, int]]) -> None:
        """Add (account, balance delta, held delta) to locked accounts."""

    async def reserve(self, account_id: int, amount: int) -> bool:
        """Hold `amount` on a wallet if it is available; False (nothing changed) if not."""

    async def release(self, account_id: int, amount: int) -> None:
        """Stop holding `amount` on a wallet."""

    async def transfer_at_once(self, new: NewTransfer) -> Outcome | None:
        """A whole one-leg transfer in one statement; None when this store runs it in steps."""

    async def hold_at_once(
        self, key: str, account_id: int, amount: int, now: datetime
    ) -> Outcome | None:
        """A whole hold placement in one statement; None when this store runs it in steps."""

    async def claim_transfer(self, new: NewTransfer) -> int | None:
        """Record a posted transfer under its key; None if the key was already used."""

    async def record_transfers(self, rows: Sequence[NewTransfer]) -> list[int]:
        """Record posted transfers (fresh keys); their ids, in order."""

    async def first_transfer(self, key: str) -> TransferRow:
        """The transfer recorded under `key`."""

    async def reject_transfer(self, transfer_id: int, shortfall: int) -> None:
        """Mark a just-claimed transfer as refused for lack of `shortfall` points."""

    async def write_entries(self, entries: Sequence[NewEntry]) -> None:
        """Write the entries of posted transfers."""

    async def claim_hold(self, key: str, account_id: int, amount: int, now: datetime) -> int | None:
        """Record a pending hold under its key; None if the key was already used."""

    async def first_hold(self, key: str) -> HoldRow:
        """The hold recorded under `key`."""

    async def hold_status(self, hold_id: int) -> str | None:
        """A hold's status, if it exists."""

    async def reject_hold(self, hold_id: int, shortfall: int, now: datetime) -> None:
        """Mark a just-claimed hold as refused for lack of `shortfall` points."""

    async def void_hold(self, hold_id: int, now: datetime) -> tuple[int, int] | None:
        """Void a pending hold: (account, amount), or None if it was not pending."""

    async def post_hold(self, hold_id: int, total: int, now: datetime) -> tuple[int, int] | None:
        """Post `total` of a pending hold: (account, held amount), or None if not possible."""


async def store_for(session: AsyncSession) -> LedgerStore:
    """The fastest store that runs inside `session`'s transaction."""
    conn = await session.connection()
    driver = driver_in_transaction(conn)
    return SqlAlchemyStore(conn) if driver is None else AsyncpgStore(driver)


def _transfer_values(new: NewTransfer) -> dict[str, Any]:
    return {**new._asdict(), "status": "posted", "failure_code": None, "shortfall": None}


class SqlAlchemyStore:
    """Core statements on a SQLAlchemy connection (SQLite, or PostgreSQL before it began).

    Its methods are `LedgerStore`'s, documented there.
    """

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.dialect = "postgresql" if conn.dialect.name == "postgresql" else "sqlite"

    async def find_wallet(self, user_id: int) -> int | None:
        return (await self.conn.execute(sql.FIND_WALLET, {"user_id": user_id})).scalar()

    async def create_wallet(self, user_id: int, now: datetime) -> None:
        await self.conn.execute(
            sql.CREATE_WALLET[self.dialect],
            {"kind": "user", "user_id": user_id, "balance": 0, "held": 0, "created_at": now},
        )

    async def wallet_balance(self, user_id: int) -> tuple[int, int] | None:
        row = (await self.conn.execute(sql.WALLET_BALANCE, {"user_id": user_id})).first()
        return None if row is None else (row.balance, row.held)

    async def account_state(self, account_id: int) -> tuple[str, int, int] | None:
        row = (await self.conn.execute(sql.ACCOUNT_STATE, {"account_id": account_id})).first()
        return None if row is None else (row.kind, row.balance, row.held)

    async def lock_accounts(self, ids: Sequence[int]) -> list[AccountRow]:
        rows = await self.conn.execute(sql.LOCK_ACCOUNTS, {"ids": list(ids)})
        return [AccountRow(*row) for row in rows]

    async def move(self, changes: Sequence[tuple[int, int, int]]) -> None:
        await self.conn.execute(
            sql.MOVE,
            [{"account": a, "delta": d, "held_delta": h} for a, d, h in changes],
        )

    async def reserve(self, account_id: int, amount: int) -> bool:
        result = await self.conn.execute(sql.RESERVE, {"account": account_id, "amount": amount})
        return bool(result.rowcount == 1)

    async def release(self, account_id: int, amount: int) -> None:
        await self.conn.execute(sql.RELEASE, {"account": account_id, "amount": amount})

    async def transfer_at_once(self, new: NewTransfer) -> Outcome | None:
        return None

    async def hold_at_once(
        self, key: str, account_id: int, amount: int, now: datetime
    ) -> Outcome | None:
        return None

    async def claim_transfer(self, new: NewTransfer) -> int | None:
        result = await self.conn.execute(sql.CLAIM_TRANSFER[self.dialect], _transfer_values(new))
        return result.scalar()

    async def record_transfers(self, rows: Sequence[NewTransfer]) -> list[int]:
        result = await self.conn.execute(
            sql.RECORD_TRANSFERS, [_transfer_values(row) for row in rows]
        )
        return list(result.scalars().all())

    async def first_transfer(self, key: str) -> TransferRow:
        return TransferRow(*(await self.conn.execute(sql.FIRST_TRANSFER, {"key": key})).one())

    async def reject_transfer(self, transfer_id: int, shortfall: int) -> None:
        await self.conn.execute(
            sql.REJECT_TRANSFER, {"transfer_id": transfer_id, "missing": shortfall}
        )

    async def write_entries(self, entries: Sequence[NewEntry]) -> None:
        await self.conn.execute(sql.WRITE_ENTRIES, [entry._asdict() for entry in entries])

    async def claim_hold(self, key: str, account_id: int, amount: int, now: datetime) -> int | None:
        result = await self.conn.execute(
            sql.CLAIM_HOLD[self.dialect],
            {
                "idempotency_key": key,
                "account_id": account_id,
                "amount": amount,
                "status": "pending",
                "created_at": now,
            },
        )
        return result.scalar()

    async def first_hold(self, key: str) -> HoldRow:
        return HoldRow(*(await self.conn.execute(sql.FIRST_HOLD, {"key": key})).one())

    async def hold_status(self, hold_id: int) -> str | None:
        return (await self.conn.execute(sql.HOLD_STATUS, {"hold_id": hold_id})).scalar()

    async def reject_hold(self, hold_id: int, shortfall: int, now: datetime) -> None:
        await self.conn.execute(
            sql.REJECT_HOLD, {"hold_id": hold_id, "missing": shortfall, "now": now}
        )

    async def void_hold(self, hold_id: int, now: datetime) -> tuple[int, int] | None:
        row = (await self.conn.execute(sql.VOID_HOLD, {"hold_id": hold_id, "now": now})).first()
        return None if row is None else (row.account_id, row.amount)

    async def post_hold(self, hold_id: int, total: int, now: datetime) -> tuple[int, int] | None:
        row = (
            await self.conn.execute(sql.POST_HOLD, {"hold_id": hold_id, "total": total, "now": now})
        ).first()
        return None if row is None else (row.account_id, row.amount)


class AsyncpgStore:
    """The same statements, in PostgreSQL's SQL, on the asyncpg connection of the transaction.

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
