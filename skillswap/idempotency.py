"""Idempotency-Key bookkeeping: the first request with a key runs, later ones replay its outcome."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from skillswap.db import Database, UnitOfWork
from skillswap.errors import Conflict
from skillswap.i18n import lazy
from skillswap.models import IdempotencyRecord


def _column_length(name: str) -> int:
    length = cast(Table, IdempotencyRecord.__table__).c[name].type.length  # type: ignore[attr-defined]
    return cast(int, length)


# What the record's columns hold; whatever a client sends must fit them (or be fitted to them).
MAX_KEY_LENGTH = _column_length("key")  # the longest Idempotency-Key accepted: 255
MAX_SCOPE_LENGTH = _column_length("scope")


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: str
    content_type: str


@dataclass(frozen=True)
class Claim:
    """Either the right to run the request (`record_id`) or the first request's outcome."""

    record_id: int | None
    replay: StoredResponse | None


def request_fingerprint(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def fitted(text: str, max_length: int) -> str:
    """`text` itself if it fits a column of `max_length`, else its start and its SHA-256.

    For keys built from what a client sends (a path, an Idempotency-Key with a prefix): the
    same text always gives the same key, different texts practically never the same one, and
    the key always fits, so a long input is never a database error.
    """
    if len(text) <= max_length:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{text[: max_length - len(digest) - 1]}#{digest}"


def scope_of(method: str, path: str) -> str:
    """The record's scope for a request: its method and path, fitted to the column."""
    return fitted(f"{method} {path.rstrip('/')}", MAX_SCOPE_LENGTH)


async def claim_key(
    db: Database,
    *,
    owner: str,
    scope: str,
    key: str,
    fingerprint: str,
    ttl_seconds: int,
    lease_seconds: int,
    now: datetime,
    wait_seconds: float = 15.0,
) -> Claim:
    """Claim `key` for this request, or wait for the request that holds it and replay its result.

    A claim whose request never finished (its node died, or storing the outcome failed) is
    abandoned after `lease_seconds` and may be taken over: the use cases behind idempotent
    endpoints are themselves safe to run again (an order's hold has its own unique key).
    """
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        async with db.uow() as uow:
            session = uow.session
            existing = await _find_record(session, owner=owner, scope=scope, key=key)
            if existing is not None and _abandoned(
                existing, now, ttl_seconds=ttl_seconds, lease_seconds=lease_seconds
            ):
                await _take_over(session, existing)
                existing = None
            if existing is None:
                claim = await _insert_claim(
                    uow, owner=owner, scope=scope, key=key, fingerprint=fingerprint
                )
                if claim is None:
                    continue  # another request claimed it first: read its record
                return claim
            replay = _replay_of(existing, fingerprint)
            if replay is not None:
                return replay
        if asyncio.get_running_loop().time() > deadline:
            raise Conflict(
                lazy("A request with this Idempotency-Key is still being processed."),
                code="idempotency_in_progress",
            )
        await asyncio.sleep(0.02)


async def _find_record(
    session: AsyncSession, *, owner: str, scope: str, key: str
) -> IdempotencyRecord | None:
    return await session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.owner == owner,
            IdempotencyRecord.scope == scope,
            IdempotencyRecord.key == key,
        )
    )


def _abandoned(
    record: IdempotencyRecord, now: datetime, *, ttl_seconds: int, lease_seconds: int
) -> bool:
    """Whether a record may be taken over: expired, or its request never finished in time."""
    return record.created_at < now - timedelta(seconds=ttl_seconds) or (
        record.status_code is None and record.created_at < now - timedelta(seconds=lease_seconds)
    )


async def _take_over(session: AsyncSession, record: IdempotencyRecord) -> None:
    # Conditional on the row we read: of two requests taking over, one deletes it and both
    # then race on the unique key, which lets exactly one win.
    await session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.id == record.id,
            IdempotencyRecord.created_at == record.created_at,
        )
    )


async def _insert_claim(
    uow: UnitOfWork, *, owner: str, scope: str, key: str, fingerprint: str
) -> Claim | None:
    """Store this request's claim on the key; None if another request stored one first."""
    session = uow.session
    record = IdempotencyRecord(owner=owner, scope=scope, key=key, request_hash=fingerprint)
    session.add(record)
    try:
        await session.flush()
        await uow.commit()
        return Claim(record_id=record.id, replay=None)
    except IntegrityError:
        await uow.rollback()  # the transaction goes on, fresh, for reading the winner's claim
        return None


def _replay_of(record: IdempotencyRecord, fingerprint: str) -> Claim | None:
    """The first request's outcome to replay; None while it is still running."""
    if record.request_hash != fingerprint:
        raise Conflict(
            lazy("This Idempotency-Key was already used with a different request body."),
            code="idempotency_key_reused",
        )
    if record.status_code is None:
        return None
    return Claim(
        record_id=None,
        replay=StoredResponse(
            record.status_code,
            record.response_body or "",
            record.content_type or "application/json",
        ),
    )


async def purge_expired(db: Database, *, ttl_seconds: int, now: datetime) -> int:
    """Delete records older than the replay window; how many went (the scheduler's sweep)."""
    async with db.uow() as uow:
        result = await uow.session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.created_at < now - timedelta(seconds=ttl_seconds)
            )
        )
        await uow.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def store_outcome(db: Database, *, record_id: int, response: StoredResponse) -> None:
    async with db.uow() as uow:
        await uow.session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.id == record_id)
            .values(
                status_code=response.status_code,
                response_body=response.body,
                content_type=response.content_type,
            )
        )
        await uow.commit()


async def release_key(db: Database, *, record_id: int) -> None:
    """Forget a claim whose request failed unexpectedly, so that a retry may run."""
    async with db.uow() as uow:
        await uow.session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id)
        )
        await uow.commit()
