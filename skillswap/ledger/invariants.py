"""The ledger's invariants, each a query over the whole database that lists what breaks it.

`skillswap ledger check` and the property-based tests run exactly these. Run them in one
snapshot (see `skillswap.points.services.audit_ledger`) so concurrent transfers cannot make a consistent
ledger look broken.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from skillswap.ledger.wallets import SystemAccount

# Each check returns human-readable descriptions of the rows that break it (empty: it holds).
Check = Callable[[AsyncConnection], Awaitable[list[str]]]
SAMPLE = 20  # violations listed per invariant; the count is always exact


@dataclass(frozen=True)
class Violation:
    invariant: str
    detail: str


async def _rows(conn: AsyncConnection, sql: str, **params: object) -> list[tuple[object, ...]]:
    return [tuple(row) for row in (await conn.execute(text(sql), params)).all()]


async def system_accounts_present(conn: AsyncConnection) -> list[str]:
    """The system accounts exist at their fixed ids, with their codes."""
    rows = await _rows(conn, "SELECT id, code FROM ledger_accounts WHERE kind = 'system'")
    found: dict[object, object] = {account_id: code for account_id, code in rows}
    problems = [
        f"system account {account.code} missing at id {account.value}"
        for account in SystemAccount
        if found.get(account.value) != account.code
    ]
    problems += [
        f"unexpected system account {code} at id {account_id}"
        for account_id, code in found.items()
        if account_id not in {a.value for a in SystemAccount}
    ]
    return problems


async def balances_sum_to_zero(conn: AsyncConnection) -> list[str]:
    """Points are never created or destroyed: all balances add up to zero."""
    total = (
        await conn.execute(text("SELECT COALESCE(SUM(balance), 0) FROM ledger_accounts"))
    ).scalar_one()
    return [] if total == 0 else [f"the balances add up to {total}, not 0"]


async def balance_equals_entries(conn: AsyncConnection) -> list[str]:
    """Every stored balance equals the sum of its account's entries."""
    rows = await _rows(
        conn,
        """
        SELECT a.id, a.balance, COALESCE(e.total, 0)
        FROM ledger_accounts a
        LEFT JOIN (SELECT account_id, SUM(amount) AS total FROM ledger_entries GROUP BY account_id) e
          ON e.account_id = a.id
        WHERE a.balance <> COALESCE(e.total, 0)
        ORDER BY a.id
        """,
    )
    return [f"account {a}: balance {b}, entries add up to {t}" for a, b, t in rows]


async def entries_running_balance(conn: AsyncConnection) -> list[str]:
    """Each entry's `balance_after` is the running sum of its account's entries up to it."""
    rows = await _rows(
        conn,
        """
        SELECT account_id, id, balance_after, running FROM (
          SELECT id, account_id, balance_after,
                 SUM(amount) OVER (PARTITION BY account_id ORDER BY id ROWS UNBOUNDED PRECEDING)
                   AS running
          FROM ledger_entries
        ) statement
        WHERE balance_after <> running
        ORDER BY account_id, id
        """,
    )
    return [f"account {a} entry {e}: balance_after {b}, running sum {r}" for a, e, b, r in rows]


async def wallets_not_overdrawn(conn: AsyncConnection) -> list[str]:
    """No wallet's available balance (balance - held) is below zero; only wallets hold."""
    rows = await _rows(
        conn,
        """
        SELECT id, kind, balance, held FROM ledger_accounts
        WHERE held < 0 OR (kind = 'user' AND balance - held < 0) OR (kind = 'system' AND held <> 0)
        ORDER BY id
        """,
    )
    return [f"{k} account {a}: balance {b}, held {h}" for a, k, b, h in rows]


async def held_equals_pending_holds(conn: AsyncConnection) -> list[str]:
    """A wallet's `held` is exactly the sum of its pending holds."""
    rows = await _rows(
        conn,
        """
        SELECT a.id, a.held, COALESCE(h.total, 0)
        FROM ledger_accounts a
        LEFT JOIN (
          SELECT account_id, SUM(amount) AS total FROM ledger_holds
          WHERE status = 'pending' GROUP BY account_id
        ) h ON h.account_id = a.id
        WHERE a.held <> COALESCE(h.total, 0)
        ORDER BY a.id
        """,
    )
    return [f"account {a}: held {h}, pending holds add up to {t}" for a, h, t in rows]


async def transfers_are_double_entry(conn: AsyncConnection) -> list[str]:
    """A posted transfer has exactly its two entries (−amount, +amount); a rejected one none."""
    rows = await _rows(
        conn,
        """
        SELECT id, status, entries, debits, credits FROM (
          SELECT t.id, t.status, COUNT(e.id) AS entries,
                 SUM(CASE WHEN e.account_id = t.debit_account_id AND e.amount = -t.amount
                     THEN 1 ELSE 0 END) AS debits,
                 SUM(CASE WHEN e.account_id = t.credit_account_id AND e.amount = t.amount
                     THEN 1 ELSE 0 END) AS credits
          FROM ledger_transfers t LEFT JOIN ledger_entries e ON e.transfer_id = t.id
          GROUP BY t.id, t.status
        ) counted
        WHERE (status = 'posted' AND NOT (entries = 2 AND debits = 1 AND credits = 1))
           OR (status <> 'posted' AND entries > 0)
        ORDER BY id
        """,
    )
    return [
        f"{s} transfer {t}: {n} entries ({d} matching debit, {c} matching credit)"
        for t, s, n, d, c in rows
    ]


async def holds_resolved_once(conn: AsyncConnection) -> list[str]:
    """An unposted hold moved nothing; a posted one was captured once and paid out in full."""
    moved = await _rows(
        conn,
        """
        SELECT h.id, h.status, COUNT(t.id) FROM ledger_holds h
        JOIN ledger_transfers t ON t.hold_id = h.id
        WHERE h.status <> 'posted'
        GROUP BY h.id, h.status
        ORDER BY h.id
        """,
    )
    settled = await _rows(
        conn,
        """
        SELECT id, posted_amount, captures, captured, paid_out FROM (
          SELECT h.id, h.posted_amount,
                 SUM(CASE WHEN t.debit_account_id = h.account_id THEN 1 ELSE 0 END) AS captures,
                 COALESCE(SUM(CASE WHEN t.debit_account_id = h.account_id
                              THEN t.amount ELSE 0 END), 0) AS captured,
                 COALESCE(SUM(CASE WHEN t.debit_account_id = :escrow
                              THEN t.amount ELSE 0 END), 0) AS paid_out
          FROM ledger_holds h
          LEFT JOIN ledger_transfers t ON t.hold_id = h.id AND t.status = 'posted'
          WHERE h.status = 'posted'
          GROUP BY h.id, h.posted_amount
        ) posted
        WHERE captures <> 1 OR captured <> posted_amount OR paid_out <> posted_amount
        ORDER BY id
        """,
        escrow=int(SystemAccount.ESCROW),
    )
    return [f"{s} hold {h} has {n} transfers" for h, s, n in moved] + [
        f"posted hold {h} ({p}): {n} captures of {c} in total, {o} paid out"
        for h, p, n, c, o in settled
    ]


async def escrow_is_clear(conn: AsyncConnection) -> list[str]:
    """Escrow is a clearing account: each posting pays out what it captured, so it rests at 0."""
    balance = (
        await conn.execute(
            text("SELECT balance FROM ledger_accounts WHERE id = :id"),
            {"id": int(SystemAccount.ESCROW)},
        )
    ).scalar_one_or_none()
    return [] if balance in (0, None) else [f"escrow balance is {balance}, not 0"]


LEDGER_INVARIANTS: dict[str, Check] = {
    "system_accounts_present": system_accounts_present,
    "balances_sum_to_zero": balances_sum_to_zero,
    "balance_equals_entries": balance_equals_entries,
    "entries_running_balance": entries_running_balance,
    "wallets_not_overdrawn": wallets_not_overdrawn,
    "held_equals_pending_holds": held_equals_pending_holds,
    "transfers_are_double_entry": transfers_are_double_entry,
    "holds_resolved_once": holds_resolved_once,
    "escrow_is_clear": escrow_is_clear,
}


async def run_checks(conn: AsyncConnection, checks: dict[str, Check]) -> list[Violation]:
    """Run each check, naming every violation it finds (at most SAMPLE details each)."""
    violations: list[Violation] = []
    for name, check in checks.items():
        problems = await check(conn)
        violations += [Violation(name, detail) for detail in problems[:SAMPLE]]
        if len(problems) > SAMPLE:
            violations.append(Violation(name, f"... and {len(problems) - SAMPLE} more"))
    return violations
