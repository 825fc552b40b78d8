"""WS_MAX_CONNECTIONS_PER_USER: how many WebSockets one user may hold open on all nodes.

A handshake claims a slot before it is accepted; past the cap the upgrade is refused with a
429 (the newest is refused rather than the oldest closed: closing the oldest would let a
stolen token knock the owner's own devices off, one by one). The slot is given back when the
socket closes, or when a handshake that claimed one is not upgraded after all.

In Redis each user has a sorted set `{prefix}wsconn:{user}` of connection ids scored by the
time their claim runs out; each node refreshes the claims of its open sockets on a heartbeat,
so a node that dies stops refreshing and its sockets stop counting after `TTL_SECONDS`. On
the embedded default the node's own counts are the truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import Any

from skillswap.realtime.bridge import _is_connection_error

log = logging.getLogger("skillswap.realtime.connections")

TTL_SECONDS = 30
HEARTBEAT_SECONDS = 10

# KEYS[1]: the user's set. ARGV: now, the claim's expiry, the cap, the connection id, the key's
# lifetime. Lapsed claims go first, so a dead node's sockets never hold a slot for long.
_CLAIM_LUA = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class LocalConnectionCap:
    """The cap on the embedded default: one process, so its own sockets are all there are."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[int, set[str]] = {}

    async def claim(self, user_id: int, connection_id: str) -> bool:
        """Take a slot for a new socket of `user_id`; False when the user has no slot left."""
        held = self._open.setdefault(user_id, set())
        if len(held) >= self.limit:
            return False
        held.add(connection_id)
        return True

    def release(self, user_id: int, connection_id: str) -> None:
        """Give the socket's slot back (it closed, or its handshake was not upgraded)."""
        held = self._open.get(user_id)
        if held is None:
            return
        held.discard(connection_id)
        if not held:
            del self._open[user_id]

    async def close(self) -> None:
        self._open.clear()


class RedisConnectionCap(LocalConnectionCap):
    """The cap shared by every node through Redis."""

    def __init__(self, redis: Any, *, prefix: str, limit: int) -> None:
        super().__init__(limit)
        self._redis = redis
        self._prefix = f"{prefix}wsconn:"
        self._claim_script = redis.register_script(_CLAIM_LUA)
        self._heartbeat: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    async def claim(self, user_id: int, connection_id: str) -> bool:
        now = time.time()
        try:
            granted = await self._claim_script(
                keys=[self._prefix + str(user_id)],
                args=[now, now + TTL_SECONDS, self.limit, connection_id, TTL_SECONDS * 2],
            )
        except Exception as exc:
            if not _is_connection_error(exc):
                raise
            # Without Redis only this node's sockets are known: cap those (fail open beyond).
            log.warning("WebSocket connection cap counts this node only: Redis is away")
            return await super().claim(user_id, connection_id)
        if not granted:
            return False
        self._open.setdefault(user_id, set()).add(connection_id)
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._beat())
        return True

    def release(self, user_id: int, connection_id: str) -> None:
        if connection_id not in self._open.get(user_id, ()):
            return
        super().release(user_id, connection_id)
        self._spawn(self._redis.zrem(self._prefix + str(user_id), connection_id))

    async def _refresh(self) -> None:
        expires = time.time() + TTL_SECONDS
        pipe = self._redis.pipeline(transaction=False)
        for user_id, held in list(self._open.items()):
            key = self._prefix + str(user_id)
            # XX: a slot released meanwhile is not taken back.
            pipe.zadd(key, dict.fromkeys(held, expires), xx=True)
            pipe.expire(key, TTL_SECONDS * 2)
        await pipe.execute()

    async def _beat(self) -> None:
        while self._open:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self._refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not _is_connection_error(exc):
                    log.exception("WebSocket connection cap heartbeat failed")

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        async def quietly() -> None:
            try:
                await coro
            except Exception as exc:
                if not _is_connection_error(exc):
                    log.exception("WebSocket connection cap update failed")

        task = asyncio.create_task(quietly())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        tasks = [*self._background]
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            tasks.append(self._heartbeat)
        held = list(self._open.items())
        self._open.clear()
        with contextlib.suppress(Exception):
            pipe = self._redis.pipeline(transaction=False)
            for user_id, ids in held:
                pipe.zrem(self._prefix + str(user_id), *ids)
            if held:
                await asyncio.wait_for(pipe.execute(), timeout=2)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
