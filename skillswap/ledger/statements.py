"""The ledger's SQL, built once at import as Core statements with bound parameters.

Transfers are the hottest path of the service: building, caching and executing statements
through the ORM cost several times the database round trips. These statements are executed on
the unit of work's connection (`await session.connection()`), inside its transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Table, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from skillswap.models import LedgerAccount, LedgerEntry, LedgerHold, LedgerTransfer
from skillswap.models.ledger import AccountKind, HoldStatus, TransferStatus

accounts: Table = LedgerAccount.__table__  # type: ignore[assignment]
transfers: Table = LedgerTransfer.__table__  # type: ignore[assignment]
entries: Table = LedgerEntry.__table__  # type: ignore[assignment]
holds: Table = LedgerHold.__table__  # type: ignore[assignment]


def _by_dialect(build: Any) -> dict[str, Any]:
    return {"postgresql": build(postgresql.insert), "sqlite": build(sqlite.insert)}


# -- accounts ------------------------------------------------------------------------------------

FIND_WALLET = select(accounts.c.id).where(accounts.c.user_id == bindparam("user_id"))
WALLET_BALANCE = select(accounts.c.balance, accounts.c.held).where(
    accounts.c.user_id == bindparam("user_id")
)
# A concurrent first use may create the wallet at the same moment: the loser keeps the winner's.
CREATE_WALLET = _by_dialect(
    lambda insert_: insert_(accounts).on_conflict_do_nothing(index_elements=["user_id"])
)
ACCOUNT_STATE = select(accounts.c.kind, accounts.c.balance, accounts.c.held).where(
    accounts.c.id == bindparam("account_id")
)
# Locks in ascending id order. NO KEY UPDATE, not UPDATE: inserting transfer and entry rows
# takes FOR KEY SHARE on their accounts (foreign keys), which FOR UPDATE would have to wait for,
# deadlocking two transfers that had recorded their rows before locking.
LOCK_ACCOUNTS = (
    select(accounts.c.id, accounts.c.kind, accounts.c.balance, accounts.c.held)
    .where(accounts.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(accounts.c.id)
    .with_for_update(key_share=True)
)
# Relative updates (executed once per account, pipelined) keep `balance = sum(entries)` exact.
MOVE = (
    update(accounts)
    .where(accounts.c.id == bindparam("account"))
    .values(
        balance=accounts.c.balance + bindparam("delta", type_=BigInteger),
        held=accounts.c.held + bindparam("held_delta", type_=BigInteger),
    )
)
# One statement that both checks and reserves: PostgreSQL re-evaluates the condition on the
# newest row version after waiting for a concurrent writer, so a reservation cannot overdraw.
RESERVE = (
    update(accounts)
    .where(
        accounts.c.id == bindparam("account"),
        accounts.c.kind == AccountKind.USER,
        accounts.c.balance - accounts.c.held >= bindparam("amount", type_=BigInteger),
    )
    .values(held=accounts.c.held + bindparam("amount", type_=BigInteger))
)
RELEASE = (
    update(accounts)
    .where(accounts.c.id == bindparam("account"))
    .values(held=accounts.c.held - bindparam("amount", type_=BigInteger))
)

# -- transfers and entries -----------------------------------------------------------------------

CLAIM_TRANSFER = _by_dialect(
    lambda insert_: (
        insert_(transfers)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(transfers.c.id)
    )
)
FIRST_TRANSFER = select(
    transfers.c.id,
    transfers.c.kind,
    transfers.c.status,
    transfers.c.debit_account_id,
    transfers.c.credit_account_id,
    transfers.c.amount,
    transfers.c.order_id,
    transfers.c.payment_id,
    transfers.c.shortfall,
).where(transfers.c.idempotency_key == bindparam("key"))
REJECT_TRANSFER = (
    update(transfers)
    .where(transfers.c.id == bindparam("transfer_id"))
    .values(
        status=TransferStatus.REJECTED,
        failure_code="insufficient_funds",
        shortfall=bindparam("missing", type_=BigInteger),
    )
)
RECORD_TRANSFERS = insert(transfers).returning(transfers.c.id, sort_by_parameter_order=True)
WRITE_ENTRIES = insert(entries)

# -- holds ---------------------------------------------------------------------------------------

CLAIM_HOLD = _by_dialect(
    lambda insert_: (
        insert_(holds)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(holds.c.id)
    )
)
FIRST_HOLD = select(
    holds.c.id, holds.c.account_id, holds.c.amount, holds.c.status, holds.c.shortfall
).where(holds.c.idempotency_key == bindparam("key"))
HOLD_STATUS = select(holds.c.status).where(holds.c.id == bindparam("hold_id"))
REJECT_HOLD = (
    update(holds)
    .where(holds.c.id == bindparam("hold_id"))
    .values(
        status=HoldStatus.REJECTED,
        shortfall=bindparam("missing", type_=BigInteger),
        resolved_at=bindparam("now"),
    )
)
# The only ways out of `pending`: conditional on still being pending, so at most one succeeds.
VOID_HOLD = (
    update(holds)
    .where(holds.c.id == bindparam("hold_id"), holds.c.status == HoldStatus.PENDING)
    .values(status=HoldStatus.VOIDED, resolved_at=bindparam("now"))
    .returning(holds.c.account_id, holds.c.amount)
)
POST_HOLD = (
    update(holds)
    .where(
        holds.c.id == bindparam("hold_id"),
        holds.c.status == HoldStatus.PENDING,
        holds.c.amount >= bindparam("total", type_=BigInteger),
    )
    .values(
        status=HoldStatus.POSTED,
        posted_amount=bindparam("total", type_=BigInteger),
        resolved_at=bindparam("now"),
    )
    .returning(holds.c.account_id, holds.c.amount)
)

# -- one statement per step, for PostgreSQL through asyncpg ---------------------------------------

# A whole one-leg transfer in one statement (one round trip; atomic on its own, in autocommit):
# lock both accounts in id order, decide, record the transfer as posted or rejected under its
# key, move the balances and write the entries. Every sub-statement that reads the accounts runs
# after `locked` took their locks (each depends on `verdict`, which reads all of `locked`), and
# PostgreSQL applies `moved` to the newest row versions, the ones just locked. A key already
# used inserts nothing and moves nothing: the caller replays the first outcome. Parameters:
# key, kind, debit, credit, amount, order, payment, now. Returns found (accounts found, 2 when
# both exist), id (None when the key was used) and shortfall (set when refused).
TRANSFER_PG = """
WITH locked AS (
    SELECT id, kind, balance, held FROM ledger_accounts
    WHERE id = ANY(ARRAY[$3, $4]::bigint[]) ORDER BY id FOR NO KEY UPDATE
), verdict AS (
    SELECT count(*) AS found,
           coalesce(max(CASE WHEN id = $3 AND kind = 'user'
                             THEN $5::bigint - (balance - held) END), 0) AS short
    FROM locked
), claim AS (
    INSERT INTO ledger_transfers (idempotency_key, kind, status, debit_account_id,
                                  credit_account_id, amount, order_id, payment_id, created_at,
                                  failure_code, shortfall)
    SELECT $1, $2, CASE WHEN short > 0 THEN 'rejected' ELSE 'posted' END, $3, $4, $5, $6, $7, $8,
           CASE WHEN short > 0 THEN 'insufficient_funds' END, CASE WHEN short > 0 THEN short END
    FROM verdict WHERE found = 2
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, status, shortfall
), moved AS (
    UPDATE ledger_accounts
    SET balance = balance + CASE WHEN id = $3 THEN -$5::bigint ELSE $5::bigint END
    WHERE id = ANY(ARRAY[$3, $4]::bigint[]) AND EXISTS (SELECT FROM claim WHERE status = 'posted')
    RETURNING id, balance
), written AS (
    INSERT INTO ledger_entries (transfer_id, account_id, amount, balance_after, created_at)
    SELECT claim.id, moved.id, CASE WHEN moved.id = $3 THEN -$5::bigint ELSE $5::bigint END,
           moved.balance, $8
    FROM claim CROSS JOIN moved
    ORDER BY moved.id <> $3  -- the debit's entry first, as written in steps
)
SELECT verdict.found, claim.id, claim.shortfall FROM verdict LEFT JOIN claim ON true
"""

# A hold in one statement, the same way: lock the wallet, decide, record the hold as pending or
# rejected under its key, and reserve. Written as CTEs whose values are SQL expressions, so that
# a statement placing a hold among other writes (an order) places it by exactly these rules:
# `wallet` locks the account, `verdict` counts it (1 when it is a user wallet) and computes the
# shortfall, `claim` records the hold (nothing when the key was used; id, status, shortfall),
# `reserved` raises `held`. A NULL account places nothing (found 0).


def hold_ctes(*, key: str, account: str, amount: str, now: str) -> str:
    """The CTEs `wallet, verdict, claim, reserved` that place a hold, for a WITH clause."""
    return f"""wallet AS (
    SELECT kind, balance, held FROM ledger_accounts WHERE id = {account} FOR NO KEY UPDATE
), verdict AS (
    SELECT count(*) AS found, coalesce(max({amount}::bigint - (balance - held)), 0) AS short
    FROM wallet WHERE kind = 'user'
), claim AS (
    INSERT INTO ledger_holds (idempotency_key, account_id, amount, status, shortfall,
                              resolved_at, created_at)
    SELECT {key}, {account}, {amount}, CASE WHEN short > 0 THEN 'rejected' ELSE 'pending' END,
           CASE WHEN short > 0 THEN short END,
           CASE WHEN short > 0 THEN {now}::timestamptz END, {now}
    FROM verdict WHERE found = 1
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, status, shortfall
), reserved AS (
    UPDATE ledger_accounts SET held = held + {amount}::bigint
    WHERE id = {account} AND EXISTS (SELECT FROM claim WHERE status = 'pending')
)"""


# Parameters: key, account, amount, now. Returns found (1 when the account is a user wallet),
# id (None when the key was used) and shortfall.
HOLD_PG = f"""
WITH {hold_ctes(key="$1", account="$2", amount="$3", now="$4")}
SELECT verdict.found, claim.id, claim.shortfall FROM verdict LEFT JOIN claim ON true
"""
