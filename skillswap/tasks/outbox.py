"""The outbox's statements: enqueue in the caller's transaction, claim, finish, retry, dead-letter.

A row moves pending -> running (claimed by a relay, published, leased) -> done; a failed run
goes back to pending at a later `available_at` (backoff), or to `failed` (the dead letter)
once it has been claimed `max_attempts` times. A running row whose lease runs out (its worker
died, its message was lost) goes back to pending and is published again. The broker's
message carries the row's id and the claim's attempt, so a stale duplicate is recognised.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, case, delete, func, literal_column, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from skillswap.db import CompiledStatement, Database, UnitOfWork
from skillswap.models import OutboxRow, OutboxStatus

# LISTEN/NOTIFY channel the relays wait on (PostgreSQL delivers a NOTIFY at commit, never
# for a transaction that rolls back).
NOTIFY_CHANNEL = "skillswap_outbox"
MAX_ERROR_LENGTH = 2000
# Done rows the sweep deletes per transaction: short transactions, however many have piled up.
PURGE_BATCH = 1000


@dataclass(frozen=True)
class OutboxJob:
    """A claimed row: what its handler is given."""

    id: int
    kind: str
    key: str
    payload: dict[str, Any]
    attempts: int  # claims so far, this one included


def _is_postgresql(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def _notify(session: AsyncSession) -> None:
    if _is_postgresql(session):
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})


# One row and its NOTIFY in one round trip, compiled once (it runs inside other features' hot
# transactions: a sign-up, an order, a chat batch). The NOTIFY is sent only if the row is new.
_outbox: Table = OutboxRow.__table__  # type: ignore[assignment]
_ROW_COLUMNS = ("kind", "key", "payload", "status", "attempts", "available_at", "created_at")
_ENQUEUE_ONE = CompiledStatement(
    select(func.pg_notify(literal_column(f"'{NOTIFY_CHANNEL}'"), literal_column("''"))).select_from(
        pg_insert(_outbox)
        .values({name: bindparam(f"row_{name}") for name in _ROW_COLUMNS})
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(_outbox.c.id)
        .cte("added")
    )
)


async def enqueue(
    uow: UnitOfWork,
    kind: str,
    key: str,
    payload: dict[str, Any],
    available_at: datetime | None = None,
    *,
    now: datetime,
) -> None:
    """Write the work in the caller's transaction: it happens if and only if that commits.

    `key` is the work's domain key: enqueueing the same key again (a retried request, a sweep
    run twice) adds nothing.
    """
    session = uow.session
    if not _is_postgresql(session):
        await enqueue_many(uow, kind, [(key, payload)], available_at, now=now)
        return
    conn = await session.connection()
    row = _row(kind, key, payload, available_at or now, now)
    await _ENQUEUE_ONE.rows(conn, {f"row_{name}": value for name, value in row.items()})
    _wake_local_relays(uow)


def _row(
    kind: str, key: str, payload: dict[str, Any], available_at: datetime, now: datetime
) -> dict[str, Any]:
    return {
        "kind": kind,
        "key": key,
        "payload": payload,
        "status": OutboxStatus.PENDING.value,
        "attempts": 0,
        "available_at": available_at,
        "created_at": now,
    }


async def enqueue_many(
    uow: UnitOfWork,
    kind: str,
    work: Sequence[tuple[str, dict[str, Any]]],
    available_at: datetime | None = None,
    *,
    now: datetime,
) -> None:
    """`enqueue` for many (key, payload) pairs of one kind, in one statement (a job's batch)."""
    if not work:
        return
    session = uow.session
    insert = pg_insert if _is_postgresql(session) else sqlite_insert
    await session.execute(
        insert(OutboxRow)
        .values([_row(kind, key, payload, available_at or now, now) for key, payload in work])
        .on_conflict_do_nothing(index_elements=["key"])
    )
    await _notify(session)
    _wake_local_relays(uow)


# The relays of this process, woken when a transaction that enqueued commits: on SQLite there is
# no NOTIFY, and in-process work (the embedded `serve`) then starts at once, not at the next poll.
_local_relays: list[Callable[[], None]] = []


def wake_on_commit(wake: Callable[[], None]) -> Callable[[], None]:
    """Have `wake` called after every commit that enqueued work in this process; the function
    returned stops it."""
    _local_relays.append(wake)
    return lambda: _local_relays.remove(wake)


def _wake_local_relays(uow: UnitOfWork) -> None:
    if not _local_relays or uow.session.info.get("outbox.wakes"):
        return
    uow.session.info["outbox.wakes"] = True

    async def wake() -> None:
        for relay in tuple(_local_relays):
            relay()

    uow.after_commit(wake)


async def claim_due(
    db: Database, *, limit: int, lease_seconds: int, now: datetime
) -> list[OutboxJob]:
    """Take up to `limit` due pending rows: running, leased until now + `lease_seconds`.

    On PostgreSQL `FOR UPDATE SKIP LOCKED` lets several relays share the table, each taking
    rows no other is taking; on SQLite transactions are serialised and the conditional update
    alone decides.
    """
    async with db.uow() as uow:
        session = uow.session
        due = (
            select(OutboxRow.id)
            .where(OutboxRow.status == OutboxStatus.PENDING, OutboxRow.available_at <= now)
            .order_by(OutboxRow.available_at, OutboxRow.id)
            .limit(limit)
        )
        if _is_postgresql(session):
            due = due.with_for_update(skip_locked=True)
        ids = list((await session.execute(due)).scalars())
        if not ids:
            return []
        claimed = await session.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_(ids), OutboxRow.status == OutboxStatus.PENDING)
            .values(
                status=OutboxStatus.RUNNING,
                attempts=OutboxRow.attempts + 1,
                leased_until=now + timedelta(seconds=lease_seconds),
            )
            .returning(
                OutboxRow.id, OutboxRow.kind, OutboxRow.key, OutboxRow.payload, OutboxRow.attempts
            )
        )
        jobs = [OutboxJob(r.id, r.kind, r.key, r.payload, r.attempts) for r in claimed]
        await uow.commit()
    return sorted(jobs, key=lambda job: ids.index(job.id))


async def running(db: Database) -> int:
    """How many rows are claimed and not yet finished (published, or running in a worker)."""
    async with db.read() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(OutboxRow)
            .where(OutboxRow.status == OutboxStatus.RUNNING)
        )
    return int(count or 0)


async def unclaim(db: Database, job: OutboxJob) -> None:
    """Give back a claim that could not be published (the broker was away): pending again,
    the attempt not counted."""
    async with db.uow() as uow:
        await uow.session.execute(
            update(OutboxRow)
            .where(
                OutboxRow.id == job.id,
                OutboxRow.status == OutboxStatus.RUNNING,
                OutboxRow.attempts == job.attempts,
            )
            .values(
                status=OutboxStatus.PENDING,
                attempts=OutboxRow.attempts - 1,
                leased_until=None,
            )
        )
        await uow.commit()


_START = (
    "UPDATE outbox SET leased_until = $3 WHERE id = $1 AND status = 'running' AND attempts = $2"
    " RETURNING kind, key, payload::text"
)


async def start(
    db: Database, row_id: int, attempt: int, *, lease_seconds: int, now: datetime
) -> OutboxJob | None:
    """Begin running a claimed row: its work, with its lease renewed from now; None if it is
    no longer this claim's (done, dead-lettered, or claimed again since the message was sent).

    Checking and renewing are one statement, so a message that waited in the stream does not
    start with a lease about to run out (which would let a second claim run it alongside).
    """
    leased_until = now + timedelta(seconds=lease_seconds)
    if db.on_driver:  # atomic on its own: no transaction around it
        async with db.autocommit() as driver:
            row = await driver.fetchrow(_START, row_id, attempt, leased_until)
        if row is None:
            return None
        return OutboxJob(row_id, row["kind"], row["key"], json.loads(row["payload"]), attempt)
    async with db.uow() as uow:
        result = await uow.session.execute(
            update(OutboxRow)
            .where(
                OutboxRow.id == row_id,
                OutboxRow.status == OutboxStatus.RUNNING,
                OutboxRow.attempts == attempt,
            )
            .values(leased_until=leased_until)
            .returning(OutboxRow.kind, OutboxRow.key, OutboxRow.payload)
        )
        found = result.first()
        await uow.commit()
    return (
        None if found is None else OutboxJob(row_id, found.kind, found.key, found.payload, attempt)
    )


_MARK_DONE = (
    "UPDATE outbox SET status = 'done', done_at = $2, leased_until = NULL"
    " WHERE id = $1 AND status IN ('pending', 'running')"
)


async def mark_done(db: Database, row_id: int, *, now: datetime) -> bool:
    """Record that the row's work succeeded; False if it was already done or dead-lettered."""
    if db.on_driver:  # one statement, atomic on its own: no transaction around it
        async with db.autocommit() as driver:
            return bool(await driver.execute(_MARK_DONE, row_id, now) != "UPDATE 0")
    async with db.uow() as uow:
        result = await uow.session.execute(
            update(OutboxRow)
            .where(
                OutboxRow.id == row_id,
                OutboxRow.status.in_((OutboxStatus.PENDING, OutboxStatus.RUNNING)),
            )
            .values(status=OutboxStatus.DONE, done_at=now, leased_until=None)
        )
        await uow.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def retry_delay(attempts: int, *, base_seconds: int, max_seconds: int) -> int:
    """The backoff after the `attempts`-th failed claim: base, 2 x base, 4 x base ... capped."""
    return int(min(max_seconds, base_seconds * 2 ** max(0, attempts - 1)))


async def mark_failed(
    db: Database,
    row_id: int,
    *,
    error: str,
    retry_at: datetime | None,
    max_attempts: int,
) -> OutboxStatus | None:
    """Record a failed run: pending again at `retry_at`, or `failed` when the row is out of
    attempts or `retry_at` is None (a failure no retry can mend). The status it is left in;
    None if it was no longer running (done meanwhile, or already failed)."""
    status: Any = OutboxStatus.FAILED.value
    if retry_at is not None:
        status = case(
            (OutboxRow.attempts >= max_attempts, OutboxStatus.FAILED.value),
            else_=OutboxStatus.PENDING.value,
        )
    async with db.uow() as uow:
        result = await uow.session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == row_id, OutboxRow.status == OutboxStatus.RUNNING)
            .values(
                status=status,
                available_at=retry_at if retry_at is not None else OutboxRow.available_at,
                leased_until=None,
                last_error=error[:MAX_ERROR_LENGTH],
            )
            .returning(OutboxRow.status)
        )
        left_in = result.scalar_one_or_none()
        await uow.commit()
    return None if left_in is None else OutboxStatus(left_in)


async def record_progress(db: Database, job: OutboxJob, progress: dict[str, Any]) -> None:
    """Keep what a partly done run achieved in the row's payload (e.g. the devices a push
    reached), so that the retry does not do it again. Only while this claim holds the row."""
    async with db.uow() as uow:
        await uow.session.execute(
            update(OutboxRow)
            .where(
                OutboxRow.id == job.id,
                OutboxRow.status == OutboxStatus.RUNNING,
                OutboxRow.attempts == job.attempts,
            )
            .values(payload={**job.payload, **progress})
        )
        await uow.commit()


async def hand_back(db: Database, claims: Sequence[tuple[int, int]], *, now: datetime) -> int:
    """Rows whose run a stopping worker cut off, as (id, attempt): pending again at once, for
    any relay to publish (relays are woken), instead of waiting out their lease. The attempt
    stays counted, so that the cut-off run's stream entry, delivered again, is recognised as
    stale. How many were still this claim's and were handed back."""
    if not claims:
        return 0
    handed = 0
    async with db.uow() as uow:
        session = uow.session
        for row_id, attempt in claims:
            result = await session.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.id == row_id,
                    OutboxRow.status == OutboxStatus.RUNNING,
                    OutboxRow.attempts == attempt,
                )
                .values(
                    status=OutboxStatus.PENDING,
                    available_at=now,
                    leased_until=None,
                    last_error="the worker stopped before the task finished",
                )
            )
            handed += int(result.rowcount or 0)  # type: ignore[attr-defined]
        if handed:
            await _notify(session)
        await uow.commit()
    return handed


async def release_expired_leases(db: Database, *, now: datetime, max_attempts: int) -> int:
    """Running rows whose lease ran out by `now`: pending again (published anew), or `failed`
    when out of attempts. How many were released."""
    async with db.uow() as uow:
        session = uow.session
        result = await session.execute(
            update(OutboxRow)
            .where(OutboxRow.status == OutboxStatus.RUNNING, OutboxRow.leased_until < now)
            .values(
                status=case(
                    (OutboxRow.attempts >= max_attempts, OutboxStatus.FAILED.value),
                    else_=OutboxStatus.PENDING.value,
                ),
                available_at=now,
                leased_until=None,
                last_error="the lease ran out before the task reported",
            )
        )
        released = int(result.rowcount or 0)  # type: ignore[attr-defined]
        if released:
            await _notify(session)
        await uow.commit()
    return released


async def list_failed(db: Database, *, limit: int = 100) -> list[OutboxRow]:
    """Dead-lettered rows, the newest first."""
    async with db.read() as session:
        rows = await session.scalars(
            select(OutboxRow)
            .where(OutboxRow.status == OutboxStatus.FAILED)
            .order_by(OutboxRow.id.desc())
            .limit(limit)
        )
        return list(rows)


async def retry_failed(db: Database, row_id: int, *, now: datetime) -> bool:
    """Give a dead-lettered row its attempts back and make it due now; False if not failed."""
    async with db.uow() as uow:
        session = uow.session
        result = await session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == row_id, OutboxRow.status == OutboxStatus.FAILED)
            .values(status=OutboxStatus.PENDING, attempts=0, available_at=now, leased_until=None)
        )
        retried = bool(result.rowcount)  # type: ignore[attr-defined]
        if retried:
            await _notify(session)
        await uow.commit()
    return retried


async def purge_done(db: Database, *, older_than: datetime, batch: int = PURGE_BATCH) -> int:
    """Delete done rows finished before `older_than`, `batch` at a time; how many went.

    Dead-lettered rows stay, whatever their age: they wait for someone to read or retry them.
    Each batch is its own transaction, so the sweep never holds many row locks at once.
    """
    purged = 0
    while True:
        async with db.uow() as uow:
            oldest = (
                select(OutboxRow.id)
                .where(OutboxRow.status == OutboxStatus.DONE, OutboxRow.done_at < older_than)
                .order_by(OutboxRow.id)
                .limit(batch)
            )
            result = await uow.session.execute(
                delete(OutboxRow)
                .where(OutboxRow.id.in_(oldest.scalar_subquery()))
                .execution_options(synchronize_session=False)
            )
            await uow.commit()
        deleted = int(result.rowcount or 0)  # type: ignore[attr-defined]
        purged += deleted
        if deleted < batch:
            return purged


@dataclass(frozen=True)
class Backlog:
    """What waits in the outbox: rows per unfinished status, and the oldest due row's time."""

    pending_due: int
    running: int
    failed: int
    oldest_due_at: datetime | None


async def backlog(db: Database, *, now: datetime) -> Backlog:
    """The outbox's backlog as of `now`, for the metrics: one grouped read over the
    (status, available_at) index, whatever the size of the done history."""
    async with db.read() as session:
        rows = await session.execute(
            select(OutboxRow.status, func.count(), func.min(OutboxRow.available_at))
            .where(
                OutboxRow.status.in_(
                    (OutboxStatus.PENDING, OutboxStatus.RUNNING, OutboxStatus.FAILED)
                ),
                (OutboxRow.status != OutboxStatus.PENDING) | (OutboxRow.available_at <= now),
            )
            .group_by(OutboxRow.status)
        )
        found = {str(status): (int(count), oldest) for status, count, oldest in rows}
    pending, oldest = found.get(OutboxStatus.PENDING.value, (0, None))
    return Backlog(
        pending_due=pending,
        running=found.get(OutboxStatus.RUNNING.value, (0, None))[0],
        failed=found.get(OutboxStatus.FAILED.value, (0, None))[0],
        oldest_due_at=oldest,
    )
