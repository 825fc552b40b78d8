"""Counters that slow down guessing: fixed windows (reset requests) and growing delays
(failed sign-ins, see `Backoff`).

Shared by every node through Redis when configured; in memory on the embedded default.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Backoff:
    """Growing delays after failures: `free` failures cost nothing, then an attempt must wait
    `base` seconds after the previous one, doubled at each further failure, up to `cap`.
    Failures are forgotten `forget_after` seconds after the last attempt."""

    free: int
    base: float
    cap: float
    forget_after: float

    def delay(self, failures: int) -> float:
        """How long after the last attempt the next one may come, after `failures`."""
        if failures < self.free:
            return 0.0
        return float(min(self.cap, self.base * 2 ** min(failures - self.free, 64)))

    def ttl(self, failures: int) -> int:
        """How long a record of `failures` must be kept (whole seconds)."""
        return math.ceil(max(self.forget_after, self.delay(failures))) + 1


class RateLimiter(Protocol):
    async def count(self, key: str) -> int:
        """Hits recorded for `key` in its current window."""
        ...

    async def hit(self, key: str, *, window_seconds: int) -> int:
        """Record one hit and return the window's total."""
        ...

    async def reset(self, key: str) -> None: ...

    async def wait_before_attempt(self, key: str, *, now: float, backoff: Backoff) -> float:
        """Seconds before `key` may try again; 0 when it may try now, and then the attempt is
        claimed: a concurrent one finds it and waits its turn too."""
        ...

    async def record_failure(self, key: str, *, now: float, backoff: Backoff) -> None:
        """Count one more failure of `key`, at `now`."""
        ...


def _wait(failures: int, last: float, now: float, backoff: Backoff) -> float:
    if failures and now - last >= backoff.forget_after:
        return 0.0
    return max(0.0, last + backoff.delay(failures) - now)


class MemoryRateLimiter:
    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}
        self._failures: dict[str, tuple[int, float]] = {}  # key: (failures, last attempt)

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
        self._failures.pop(key, None)

    # No await between reading and writing: on one event loop each call is atomic.
    async def wait_before_attempt(self, key: str, *, now: float, backoff: Backoff) -> float:
        failures, last = self._failures.get(key, (0, 0.0))
        if failures and now - last >= backoff.forget_after:
            self._failures.pop(key, None)
            return 0.0
        if failures < backoff.free:
            return 0.0
        wait = _wait(failures, last, now, backoff)
        if wait == 0.0:
            self._failures[key] = (failures, now)
        return wait

    async def record_failure(self, key: str, *, now: float, backoff: Backoff) -> None:
        if len(self._failures) > 100_000:
            self._failures = {
                k: v for k, v in self._failures.items() if now - v[1] < backoff.ttl(v[0])
            }
        failures, last = self._failures.get(key, (0, 0.0))
        if failures and now - last >= backoff.forget_after:
            failures = 0
        self._failures[key] = (failures + 1, now)


# The same rules as the memory limiter's, in one atomic step on Redis. The hash holds n (the
# failures) and t (the last attempt, the app's clock). ARGV: now, free, base, cap, forget_after.
_DELAY = """
local function delay(n, free, base, cap)
  if n < free then return 0 end
  return math.min(cap, base * 2 ^ math.min(n - free, 64))
end
"""
_WAIT_SCRIPT = (
    _DELAY
    + """
local now, free = tonumber(ARGV[1]), tonumber(ARGV[2])
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
local t = tonumber(redis.call('HGET', KEYS[1], 't') or '0')
if n > 0 and now - t >= tonumber(ARGV[5]) then
  redis.call('DEL', KEYS[1])
  return '0'
end
if n < free then return '0' end
local wait = t + delay(n, free, tonumber(ARGV[3]), tonumber(ARGV[4])) - now
if wait > 0 then return tostring(wait) end
redis.call('HSET', KEYS[1], 't', ARGV[1])
return '0'
"""
)
_FAIL_SCRIPT = (
    _DELAY
    + """
local now, free, forget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[5])
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
local t = tonumber(redis.call('HGET', KEYS[1], 't') or '0')
if n > 0 and now - t >= forget then n = 0 end
n = n + 1
redis.call('HSET', KEYS[1], 'n', n, 't', ARGV[1])
local ttl = math.max(forget, delay(n, free, tonumber(ARGV[3]), tonumber(ARGV[4])))
redis.call('EXPIRE', KEYS[1], math.ceil(ttl) + 1)
return n
"""
)


class RedisRateLimiter:
    def __init__(self, redis: Any, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._wait = redis.register_script(_WAIT_SCRIPT)
        self._fail = redis.register_script(_FAIL_SCRIPT)

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

    async def wait_before_attempt(self, key: str, *, now: float, backoff: Backoff) -> float:
        wait = await self._wait(keys=[self._prefix + key], args=self._args(now, backoff))
        return float(wait)

    async def record_failure(self, key: str, *, now: float, backoff: Backoff) -> None:
        await self._fail(keys=[self._prefix + key], args=self._args(now, backoff))

    @staticmethod
    def _args(now: float, backoff: Backoff) -> list[str]:
        return [
            repr(now),
            str(backoff.free),
            repr(float(backoff.base)),
            repr(float(backoff.cap)),
            repr(float(backoff.forget_after)),
        ]
