"""Waiting for the outbox: work enqueued by a request is done a moment after it answered."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from skillswap.deps import Deps
from skillswap.models import OutboxRow, OutboxStatus


async def outbox_settled(deps: Deps, *, within: float = 10) -> None:
    """Wait until no outbox row is due or running (rows waiting for a later retry aside)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        async with deps.db.read() as session:
            busy = await session.scalar(
                select(func.count())
                .select_from(OutboxRow)
                .where(
                    (OutboxRow.status == OutboxStatus.RUNNING)
                    | (
                        (OutboxRow.status == OutboxStatus.PENDING)
                        & (OutboxRow.available_at <= deps.clock())
                    )
                )
            )
        if not busy:
            return
        if loop.time() > deadline:
            raise AssertionError(f"{busy} outbox rows still due or running after {within} s")
        await asyncio.sleep(0.02)
