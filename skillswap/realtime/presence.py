"""Who is connected: per node in memory, across nodes in Redis with a heartbeat and a TTL.

In Redis each user has a sorted set `{prefix}presence:{user}` of node ids scored by the time
their claim runs out. A node adds itself when the user's first connection to it opens, removes
itself when the last one closes, and refreshes every claim it holds on a heartbeat; a node that
dies simply stops refreshing, and its claims lapse after `TTL_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine, Iterable
from typing import Any

from skillswap.realtime.bridge import _is_connection_error

log = logging.getLogger("skillswap.realtime.presence")

TTL_SECONDS = 30
HEARTBEAT_SECONDS = 10


class LocalPresence:
    """Presence on the embedded default: one process, so its own counts are the truth."""

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}

    def is_local(self, user_id: int) -> bool:
        return user_id in self._counts

    def connected(self, user_id: int) -> bool:
        """Count a new local connection; True when it is the user's first on this node."""
        self._counts[user_id] = self._counts.get(user_id, 0) + 1
        return self._counts[user_id] == 1

    def disconnected(self, user_id: int) -> bool:
        """Count a closed local connection; True when it was the user's last on this node."""
        left = self._counts.get(user_id, 0) - 1
        if left > 0:
            self._counts[user_id] = left
            return False
        self._counts.pop(user_id, None)
        return True

    async def online(self, user_ids: Iterable[int]) -> set[int]:
        """Which of `user_ids` have a connection anywhere."""
        return {u for u in user_ids if u in self._counts}

    async def close(self) -> None:
        self._counts.clear()


class RedisPresence(LocalPresence):
    """Presence shared by every node through Redis (local counts answer first)."""

    def __init__(self, redis: Any, *, prefix: str, node_id: str) -> None:
        super().__init__()
        self._redis = redis
        self._prefix = f"{prefix}presence:"
        self._node = node_id
        self._heartbeat: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    def connected(self, user_id: int) -> bool:
        first = super().connected(user_id)
        if first:
            self._spawn(self._claim([user_id]))
            if self._heartbeat is None or self._heartbeat.done():
                self._heartbeat = asyncio.create_task(self._beat())
        return first

    def disconnected(self, user_id: int) -> bool:
        last = super().disconnected(user_id)
        if last:
            self._spawn(self._release(user_id))
        return last

    async def online(self, user_ids: Iterable[int]) -> set[int]:
        wanted = list(dict.fromkeys(user_ids))
        found = {u for u in wanted if u in self._counts}
        remote = [u for u in wanted if u not in found]
        if not remote:
            return found
        now = time.time()
        try:
            pipe = self._redis.pipeline(transaction=False)
            for user_id in remote:
                pipe.zrangebyscore(self._prefix + str(user_id), now, "+inf")
            claims = await pipe.execute()
        except Exception as exc:
            if not _is_connection_error(exc):
                raise
            # Without Redis only local presence is known; the others count as away.
            return found
        # This node's own claim may not be released yet; its local count is the truth here.
        node = self._node.encode()
        return found | {
            u for u, nodes in zip(remote, claims, strict=True) if any(n != node for n in nodes)
        }

    async def _claim(self, user_ids: list[int]) -> None:
        expires = time.time() + TTL_SECONDS
        for start in range(0, len(user_ids), 1000):
            pipe = self._redis.pipeline(transaction=False)
            for user_id in user_ids[start : start + 1000]:
                key = self._prefix + str(user_id)
                pipe.zadd(key, {self._node: expires})
                pipe.zremrangebyscore(key, "-inf", time.time())
                pipe.expire(key, TTL_SECONDS * 2)
            await pipe.execute()

    async def _release(self, user_id: int) -> None:
        if user_id not in self._counts:
            await self._redis.zrem(self._prefix + str(user_id), self._node)

    async def _beat(self) -> None:
        while self._counts:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self._claim(list(self._counts))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not _is_connection_error(exc):
                    log.exception("presence heartbeat failed")

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        async def quietly() -> None:
            try:
                await coro
            except Exception as exc:
                if not _is_connection_error(exc):
                    log.exception("presence update failed")

        task = asyncio.create_task(quietly())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        tasks = [*self._background]
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            tasks.append(self._heartbeat)
        users = list(self._counts)
        self._counts.clear()
        with contextlib.suppress(Exception):
            pipe = self._redis.pipeline(transaction=False)
            for user_id in users:
                pipe.zrem(self._prefix + str(user_id), self._node)
            if users:
                await asyncio.wait_for(pipe.execute(), timeout=2)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
