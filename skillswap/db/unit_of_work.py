"""The unit of work: one transaction of one use case, committed once, then its after-commit hooks."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.transaction import Transaction

log = logging.getLogger("skillswap.db")

AfterCommit = Callable[[], Awaitable[None]]


class UnitOfWork:
    """One transaction of one use case: read, write, commit once, then run after-commit hooks.

    Leaving the block without `commit()` rolls back. Events and tasks that must not escape a
    rolled-back transaction are registered with `after_commit` and run only once it committed.

    On PostgreSQL the transaction is the asyncpg connection's own, begun before the block runs
    (`driver`): SQLAlchemy's statements and the driver-level ones (`CompiledStatement`, the
    ledger's `AsyncpgStore`) all run inside it. On SQLite `driver` is None and SQLAlchemy
    begins and ends the transaction.
    """

    def __init__(
        self,
        session: AsyncSession,
        *,
        driver: asyncpg.Connection | None = None,
        transaction: Transaction | None = None,
    ) -> None:
        self.session = session
        self.driver = driver
        self._transaction = transaction
        self._after_commit: list[AfterCommit] = []
        self.committed = False
        # Session-level listeners (e.g. cache invalidation) and stores find the unit of work.
        session.info["uow"] = self

    def after_commit(self, hook: AfterCommit) -> None:
        """Run `hook` once this unit of work has committed (never if it rolls back)."""
        self._after_commit.append(hook)

    async def commit(self) -> None:
        await self.session.commit()  # flushes; on PostgreSQL the driver's transaction commits
        if self._transaction is not None:
            transaction, self._transaction = self._transaction, None
            await transaction.commit()
        self.committed = True

    async def rollback(self) -> None:
        """Undo everything so far and go on in a fresh transaction (a retry after a lost race)."""
        await self.session.rollback()
        if self.driver is not None:
            await self._end_transaction()
            self._transaction = self.driver.transaction()
            await self._transaction.start()

    async def _end_transaction(self) -> None:
        """Roll the driver's transaction back, if one is open (leaving a block uncommitted)."""
        if self._transaction is not None:
            transaction, self._transaction = self._transaction, None
            await transaction.rollback()

    async def run_after_commit_hooks(self) -> None:
        hooks, self._after_commit = self._after_commit, []
        for hook in hooks:
            try:
                await hook()
            except (
                Exception
            ):  # a failed notification must not turn a committed use case into an error
                log.exception("after-commit hook failed")


def unit_of_work_of(session: AsyncSession) -> UnitOfWork | None:
    """The unit of work `session` belongs to, if any (a read-only session has none)."""
    unit: Any = session.info.get("uow")
    return unit if isinstance(unit, UnitOfWork) else None
