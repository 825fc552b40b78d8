"""The points ledger: double-entry accounts, idempotent transfers, escrow holds, invariants.

No web or task code lives here: services call these functions inside their unit of work.
"""

from skillswap.ledger.errors import (
    HoldNotPending,
    IdempotencyMismatch,
    InsufficientFunds,
    InvalidAmount,
    LedgerError,
    UnknownAccount,
)
from skillswap.ledger.holds import (
    HoldResult,
    Payout,
    check_hold,
    hold_result,
    place_hold,
    post_hold,
    void_hold,
)
from skillswap.ledger.invariants import LEDGER_INVARIANTS, Check, Violation, run_checks
from skillswap.ledger.transfers import (
    TransferKind,
    TransferRequest,
    TransferResult,
    run_transfer,
    transfer,
)
from skillswap.ledger.wallets import (
    SystemAccount,
    WalletBalance,
    ensure_wallet,
    find_wallet,
    wallet_balance,
)

__all__ = [
    "LEDGER_INVARIANTS",
    "Check",
    "HoldNotPending",
    "HoldResult",
    "IdempotencyMismatch",
    "InsufficientFunds",
    "InvalidAmount",
    "LedgerError",
    "Payout",
    "SystemAccount",
    "TransferKind",
    "TransferRequest",
    "TransferResult",
    "UnknownAccount",
    "Violation",
    "WalletBalance",
    "check_hold",
    "ensure_wallet",
    "find_wallet",
    "hold_result",
    "place_hold",
    "post_hold",
    "run_checks",
    "run_transfer",
    "transfer",
    "void_hold",
    "wallet_balance",
]
