"""Idempotency-Key records: claims, replays, abandoned claims, expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from skillswap import idempotency
from skillswap.errors import Conflict
from skillswap.models import IdempotencyRecord
from skillswap.models.base import utcnow
from tests.factories import unique_name


async def _age(deps, record_id: int, seconds: int) -> None:
    async with deps.db.uow() as uow:
        await uow.session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.id == record_id)
            .values(created_at=utcnow() - timedelta(seconds=seconds))
        )
        await uow.commit()


def _claim(deps, key: str, fingerprint: str = "body-1", wait: float = 0.2):  # type: ignore[no-untyped-def]
    return idempotency.claim_key(
        deps.db,
        owner="user:1",
        scope="POST /x",
        key=key,
        fingerprint=fingerprint,
        ttl_seconds=3600,
        lease_seconds=30,
        now=deps.clock(),
        wait_seconds=wait,
    )


async def test_the_first_request_claims_and_a_second_replays_its_outcome(deps):
    key = unique_name("key")
    first = await _claim(deps, key)
    assert first.record_id is not None
    await idempotency.store_outcome(
        deps.db,
        record_id=first.record_id,
        response=idempotency.StoredResponse(201, '{"id":1}', "application/json"),
    )
    second = await _claim(deps, key)
    assert second.record_id is None
    assert second.replay == idempotency.StoredResponse(201, '{"id":1}', "application/json")
    with pytest.raises(Conflict) as refused:
        await _claim(deps, key, fingerprint="body-2")
    assert refused.value.code == "idempotency_key_reused"


async def test_a_claim_still_running_makes_a_retry_wait_then_409(deps):
    key = unique_name("key")
    assert (await _claim(deps, key)).record_id is not None
    with pytest.raises(Conflict) as busy:
        await _claim(deps, key, wait=0.1)
    assert busy.value.code == "idempotency_in_progress"


async def test_an_abandoned_claim_is_taken_over_after_its_lease(deps):
    key = unique_name("key")
    first = await _claim(deps, key)
    assert first.record_id is not None
    await _age(deps, first.record_id, 31)  # its node died: no outcome was ever stored
    retry = await _claim(deps, key)
    assert retry.record_id is not None  # the retry runs the request itself
    async with deps.db.read() as session:
        records = list(
            (
                await session.scalars(select(IdempotencyRecord).where(IdempotencyRecord.key == key))
            ).all()
        )
    # One record, a fresh claim (SQLite may reuse the row id, so compare claim times).
    assert len(records) == 1
    assert records[0].created_at > utcnow() - timedelta(seconds=5)


async def test_a_finished_claim_is_not_taken_over_within_the_replay_window(deps):
    key = unique_name("key")
    first = await _claim(deps, key)
    assert first.record_id is not None
    await idempotency.store_outcome(
        deps.db,
        record_id=first.record_id,
        response=idempotency.StoredResponse(402, "{}", "application/problem+json"),
    )
    await _age(deps, first.record_id, 600)
    again = await _claim(deps, key)
    assert again.replay is not None and again.replay.status_code == 402


async def test_expired_records_are_purged(own_app):
    # A database of its own: the purge removes exactly the record this test aged.
    deps = own_app.deps
    key = unique_name("key")
    first = await _claim(deps, key)
    assert first.record_id is not None
    await _age(deps, first.record_id, 7200)
    assert await idempotency.purge_expired(deps.db, ttl_seconds=3600, now=deps.clock()) == 1
    async with deps.db.read() as session:
        assert await session.get(IdempotencyRecord, first.record_id) is None
