"""The ledger's statements as Core statements on a SQLAlchemy connection (any backend)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from skillswap.ledger import statements as sql
from skillswap.ledger.stores.protocol import (
    AccountRow,
    HoldRow,
    NewEntry,
    NewTransfer,
    Outcome,
    TransferRow,
)
from skillswap.models.ledger import AccountKind, HoldStatus, TransferStatus


def _transfer_values(new: NewTransfer) -> dict[str, Any]:
    return {
        **new._asdict(),
        "status": TransferStatus.POSTED,
        "failure_code": None,
        "shortfall": None,
    }


class SqlAlchemyStore:
    """Core statements on a SQLAlchemy connection (SQLite, or a read outside a unit of work).

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
            {
                "kind": AccountKind.USER,
                "user_id": user_id,
                "balance": 0,
                "held": 0,
                "created_at": now,
            },
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
                "status": HoldStatus.PENDING,
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
