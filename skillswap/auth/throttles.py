"""Fixed-window counters that slow down guessing (sign-in failures, reset requests).

Shared by every node through Redis when configured; in memory on the embedded default.
"""

from __future__ import annotations

import time
from typing import Any, Protocol


class RateLimiter(Protocol):
    async def count(self, key: str) -> int:
        """Hits recorded for `key` in its current window."""
        ...

    async def hit(self, key: str, *, window_seconds: int) -> int:
        """Record one hit and return the window's total."""
        ...

    async def reset(self, key: str) -> None: ...


class MemoryRateLimiter:
    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}

    async def count(self, key: str) -> int:
        expires, hits = self._windows.get(key, (0.0, 0))
        return hits if expires > time.monotonic() else 0

    async def hit(self, key: str, *, window_seconds: int) -> int:
        now = time.monotonic()
        if len(self._windows) > 100_000:
            self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
        expires, hits = self._windows.get(key, (0.0, 0))
        if expires <= now:
            expires, hits = now + window_seconds, 0
        self._windows[key] = (expires, hits + 1)
        return hits + 1

    async def reset(self, key: str) -> None:
        self._windows.pop(key, None)


class RedisRateLimiter:
    def __init__(self, redis: Any, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    async def count(self, key: str) -> int:
        value = await self._redis.get(self._prefix + key)
        return int(value) if value else 0

    async def hit(self, key: str, *, window_seconds: int) -> int:
        name = self._prefix + key
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            # NX: the window starts with its first hit and is not extended by later ones.
            pipe.expire(name, window_seconds, nx=True)
            total, _ = await pipe.execute()
        return int(total)

    async def reset(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)
