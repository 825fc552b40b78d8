"""The listing cache serves an answer only while nothing that could change it has committed,
on this node or any other (the version lives in Redis when there is one)."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest
from redis.asyncio import Redis

from skillswap.skills.cache import ListingCache
from tests.conftest import REDIS_PREFIX, REDIS_URL


class CountingRedis:
    """The real client, counting the GETs it sends."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.gets = 0

    async def get(self, key: str) -> Any:
        self.gets += 1
        return await self.redis.get(key)

    async def incr(self, key: str) -> Any:
        return await self.redis.incr(key)


async def test_without_redis_a_bump_invalidates_this_process() -> None:
    cache = ListingCache(None, "unused")
    token = await cache.token()
    assert token is not None
    cache.put("k", token, b"old")
    assert cache.get("k", await cache.token()) == b"old"  # type: ignore[arg-type]
    await cache.bump()
    fresh = await cache.token()
    assert fresh is not None and cache.get("k", fresh) is None


def test_entries_are_evicted_least_recently_used_first() -> None:
    cache = ListingCache(None, "unused", max_bytes=3 * 1024)
    token = (0, None)
    for key in ("a", "b", "c"):
        cache.put(key, token, b"x" * 150)
    assert cache.get("a", token) is not None  # a is now the most recent
    for n in range(20):
        cache.put(f"filler{n}", token, b"y" * 150)
    assert cache.get("b", token) is None and cache.get("filler19", token) is not None


@pytest.mark.redis
async def test_a_bump_on_one_node_invalidates_every_node() -> None:
    redis = Redis.from_url(REDIS_URL)
    key = f"{REDIS_PREFIX}test-cache:{secrets.token_hex(4)}"
    node_a, node_b = ListingCache(redis, key), ListingCache(redis, key)
    try:
        token = await node_a.token()
        assert token is not None
        node_a.put("page", token, b"before")
        assert node_a.get("page", token) == b"before"
        await node_b.bump()  # a write committed on node B
        after = await node_a.token()
        assert after is not None and after != token
        assert node_a.get("page", after) is None
    finally:
        await redis.delete(key)
        await redis.aclose()


@pytest.mark.redis
async def test_concurrent_readers_share_version_reads_but_never_an_older_one() -> None:
    real = Redis.from_url(REDIS_URL)
    key = f"{REDIS_PREFIX}test-cache:{secrets.token_hex(4)}"
    counting = CountingRedis(real)
    cache, writer = ListingCache(counting, key), ListingCache(real, key)
    try:
        tokens = await asyncio.gather(*(cache.token() for _ in range(50)))
        assert len(set(tokens)) == 1
        assert counting.gets <= 2  # one read answered (nearly) everyone
        before = tokens[0]
        await writer.bump()
        assert await cache.token() != before  # a read that starts after the bump sees it
    finally:
        await real.delete(key)
        await real.aclose()


async def test_an_unreachable_redis_bypasses_the_cache() -> None:
    from tests.conftest import _reachable

    url = "redis://127.0.0.1:1/0"
    assert not _reachable(url, 1)
    redis = Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        assert await ListingCache(redis, "k").token() is None
    finally:
        await redis.aclose()


@pytest.mark.redis
async def test_readers_are_never_left_waiting_when_a_version_read_is_cancelled() -> None:
    real = Redis.from_url(REDIS_URL)

    class SlowRedis(CountingRedis):
        async def get(self, key: str) -> Any:
            await asyncio.sleep(0.2)
            return await super().get(key)

    cache = ListingCache(SlowRedis(real), f"{REDIS_PREFIX}test-cache:{secrets.token_hex(4)}")
    try:
        first = asyncio.ensure_future(cache.token())
        await asyncio.sleep(0.05)  # the first read is in flight
        second = asyncio.ensure_future(cache.token())  # waits for the next read
        await asyncio.sleep(0)
        assert cache._reader is not None
        cache._reader.cancel()
        assert await asyncio.wait_for(first, 1) is None  # uncached, not stuck
        assert await asyncio.wait_for(second, 1) is None
        assert await asyncio.wait_for(cache.token(), 2) is not None  # reads resume
    finally:
        await real.aclose()
