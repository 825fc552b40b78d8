"""The node bridge: how events published on one node reach actors on the others.

With Redis, every room and every user channel is a Redis stream (`{prefix}rt:room:{id}`,
`{prefix}rt:user:{id}`) trimmed with `MAXLEN ~`. A node appends with XADD (pipelined by one
publisher task, retried while Redis is away) and reads only the streams its actors follow,
with XREAD BLOCK, in shards of streams per blocking connection. Every event makes its shard
re-issue XREAD with all its keys, so busy room streams go in small shards and the many quiet
user channels in large ones. A shard is woken through its own tiny stream when a stream is
added, so a new subscriber never waits for the block timeout.

The origin node has already delivered an event locally (see Hub), so readers skip entries they
wrote themselves. When Redis comes back after an outage, `on_reconnect` lets every actor
re-anchor its stream position and fill what it missed from PostgreSQL.

On the embedded default `LocalBridge` stands in: one process, so there is nothing to carry;
it keeps each channel's recent events in memory so resumes still come "from the stream".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from skillswap import metrics
from skillswap.api.encoding import dumpb

log = logging.getLogger("skillswap.realtime.bridge")

Event = dict[str, Any]
Deliver = Callable[[Event], None]
StopScan = Callable[[Event], bool]

# Streams per blocking XREAD, by kind of channel (the part before the colon).
SHARD_SIZES = {"room": 32, "user": 512}
BLOCK_MS = 5000
STREAM_TTL_SECONDS = 7 * 24 * 3600  # a silent channel's stream expires; resumes then use the DB
OUTBOX_LIMIT = 50_000  # events waiting for Redis before the oldest are dropped (the DB has them)


class Bridge(Protocol):
    """What the hub needs from a bridge."""

    node_id: str

    @property
    def connected(self) -> bool: ...

    def publish(self, channel: str, event: Event, *, maxlen: int) -> None: ...

    async def position(self, channel: str) -> str | None: ...

    def listen(self, channel: str, position: str | None, deliver: Deliver) -> None: ...

    def unlisten(self, channel: str) -> None: ...

    async def scan_back(
        self, channel: str, *, stop: StopScan, limit: int
    ) -> tuple[list[Event], bool] | None: ...

    async def close(self) -> None: ...


class LocalBridge:
    """The in-process bridge of the embedded default: recent history only, nothing to carry."""

    MAX_CHANNELS = 10_000

    def __init__(self, node_id: str, *, history: int = 200) -> None:
        self.node_id = node_id
        self._history = history
        self._streams: OrderedDict[str, deque[Event]] = OrderedDict()

    @property
    def connected(self) -> bool:
        return True

    def publish(self, channel: str, event: Event, *, maxlen: int) -> None:
        stream = self._streams.get(channel)
        if stream is None:
            stream = self._streams[channel] = deque(maxlen=min(maxlen, self._history))
            if len(self._streams) > self.MAX_CHANNELS:
                self._streams.popitem(last=False)
        else:
            self._streams.move_to_end(channel)
        stream.append(event)

    async def position(self, channel: str) -> str | None:
        return "0-0"

    def listen(self, channel: str, position: str | None, deliver: Deliver) -> None:
        return None

    def unlisten(self, channel: str) -> None:
        return None

    async def scan_back(
        self, channel: str, *, stop: StopScan, limit: int
    ) -> tuple[list[Event], bool] | None:
        collected: list[Event] = []
        for event in reversed(self._streams.get(channel, ())):
            collected.append(event)
            if stop(event):
                return collected, True
            if len(collected) >= limit:
                break
        return collected, False

    async def close(self) -> None:
        self._streams.clear()


def _bulk(value: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


@dataclass(eq=False)
class _Shard:
    index: int
    kind: str
    wake_key: bytes
    keys: set[bytes] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    closed: bool = False
    blocked: bool = False
    wake_sent: bool = False
    # An explicit position (not "$"): a wake sent just before XREAD reaches Redis still counts.
    wake_position: bytes = b"0-0"


class RedisBridge:
    """Redis streams between nodes: pipelined XADD out, sharded XREAD BLOCK in."""

    def __init__(
        self,
        redis: Any,
        *,
        prefix: str,
        node_id: str,
        on_reconnect: Callable[[], None] | None = None,
        block_ms: int = BLOCK_MS,
        shard_sizes: dict[str, int] | None = None,
    ) -> None:
        self.node_id = node_id
        self._redis = redis
        self._prefix = f"{prefix}rt:"
        self._node = node_id.encode()
        self._on_reconnect = on_reconnect
        self._block_ms = block_ms
        self._shard_sizes = shard_sizes or SHARD_SIZES
        self._listeners: dict[bytes, Deliver] = {}
        self._positions: dict[bytes, bytes | None] = {}
        self._shard_of: dict[bytes, _Shard] = {}
        self._shards: list[_Shard] = []
        self._next_shard = 0
        self._xread_head = b"".join(
            _bulk(arg)
            for arg in (b"XREAD", b"COUNT", b"500", b"BLOCK", b"%d" % block_ms, b"STREAMS")
        )
        # Per listened stream: its position and the RESP chunks of its key and that position.
        self._packed_keys: dict[bytes, tuple[bytes, bytes, bytes]] = {}
        self._outbox: deque[tuple[bytes, bytes, int]] = deque()
        self._ttl_set_at: dict[bytes, float] = {}
        self._outbox_ready = asyncio.Event()
        self._outbox_empty = asyncio.Event()
        self._outbox_empty.set()
        self._publisher: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._connected = True
        self._closed = False
        self.dropped = 0  # events given up on while Redis was away (recovered from the DB)

    def key(self, channel: str) -> bytes:
        # Keys and positions stay bytes, as Redis returns them: XREAD is re-issued with every
        # key of a shard after each event, and redis-py passes bytes through untouched.
        return (self._prefix + channel).encode()

    @property
    def connected(self) -> bool:
        return self._connected

    # -- health ----------------------------------------------------------------------------------

    def _mark_down(self, exc: BaseException) -> None:
        if self._connected:
            log.warning("Redis unreachable, serving local connections only: %s", exc)
        self._connected = False

    def _mark_up(self) -> None:
        if not self._connected:
            self._connected = True
            log.warning("Redis is back; resynchronising realtime channels")
            if self._on_reconnect is not None:
                self._on_reconnect()

    # -- publishing ------------------------------------------------------------------------------

    def publish(self, channel: str, event: Event, *, maxlen: int) -> None:
        """Queue `event` for the channel's stream; never blocks and never raises."""
        if self._closed:
            return
        self._outbox.append((self.key(channel), dumpb(event), maxlen))
        if len(self._outbox) > OUTBOX_LIMIT:
            self._outbox.popleft()
            self.dropped += 1
        self._outbox_ready.set()
        self._outbox_empty.clear()
        if self._publisher is None or self._publisher.done():
            self._publisher = asyncio.create_task(self._publish_loop())

    async def _publish_loop(self) -> None:
        backoff = 0.05
        while not self._closed:
            if not self._outbox:
                self._outbox_empty.set()
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
                continue
            batch = [self._outbox[i] for i in range(min(len(self._outbox), 500))]
            try:
                await self._xadd_many(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if _is_connection_error(exc):
                    # Keep the batch and retry: once Redis is back other nodes get it late
                    # (actors drop what they already have, and fill gaps from the DB).
                    self._mark_down(exc)
                    await asyncio.sleep(backoff)
                    backoff = min(1.0, backoff * 2)
                    continue
                log.exception("dropping %d realtime events Redis refused", len(batch))
            backoff = 0.05
            for _ in batch:
                if self._outbox:
                    self._outbox.popleft()

    async def _xadd_many(self, batch: list[tuple[bytes, bytes, int]]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        now = time.monotonic()
        expiring: set[bytes] = set()
        for key, payload, maxlen in batch:
            pipe.xadd(key, {"d": payload, "n": self._node}, maxlen=maxlen, approximate=True)
            # The TTL is pushed back now and then, not with every entry.
            if now - self._ttl_set_at.get(key, -STREAM_TTL_SECONDS) > STREAM_TTL_SECONDS / 24:
                expiring.add(key)
        for key in expiring:
            pipe.expire(key, STREAM_TTL_SECONDS)
        await pipe.execute()
        if len(self._ttl_set_at) > 100_000:
            self._ttl_set_at.clear()
        for key in expiring:
            self._ttl_set_at[key] = now

    async def flush(self, *, seconds: float) -> None:
        """Wait, at most `seconds`, until queued events reached Redis (not while it is away)."""
        if self._outbox and self._connected:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._outbox_empty.wait()

    # -- reading ---------------------------------------------------------------------------------

    async def position(self, channel: str) -> str | None:
        """The id of the channel's newest entry ("0-0" when empty), or None while Redis is away."""
        try:
            entries = await self._redis.xrevrange(self.key(channel), "+", "-", count=1)
        except Exception as exc:
            if not _is_connection_error(exc):
                raise
            self._mark_down(exc)
            return None
        return _text(entries[0][0]) if entries else "0-0"

    def listen(self, channel: str, position: str | None, deliver: Deliver) -> None:
        """Deliver every entry after `position` (None: after the next re-anchoring) to `deliver`."""
        key = self.key(channel)
        self._listeners[key] = deliver
        self._positions[key] = None if position is None else position.encode()
        if key in self._shard_of:
            self._wake(self._shard_of[key])
            return
        shard = self._shard_with_room(channel.partition(":")[0])
        shard.keys.add(key)
        self._shard_of[key] = shard
        self._wake(shard)

    def unlisten(self, channel: str) -> None:
        key = self.key(channel)
        self._listeners.pop(key, None)
        self._positions.pop(key, None)
        shard = self._shard_of.pop(key, None)
        if shard is not None:
            shard.keys.discard(key)

    def _shard_with_room(self, kind: str) -> _Shard:
        size = self._shard_sizes.get(kind, 512)
        for shard in self._shards:
            if not shard.closed and shard.kind == kind and len(shard.keys) < size:
                return shard
        self._next_shard += 1
        shard = _Shard(
            index=self._next_shard,
            kind=kind,
            wake_key=f"{self._prefix}node:{self.node_id}:wake:{self._next_shard}".encode(),
        )
        self._shards.append(shard)
        shard.task = asyncio.create_task(self._read_loop(shard))
        return shard

    def _wake(self, shard: _Shard) -> None:
        # Only a reader blocked in XREAD needs waking; otherwise it re-reads its keys anyway.
        if not shard.blocked or shard.wake_sent or self._closed:
            return
        shard.wake_sent = True
        self._spawn(self._send_wake(shard))

    async def _send_wake(self, shard: _Shard) -> None:
        with contextlib.suppress(Exception):
            pipe = self._redis.pipeline(transaction=False)
            pipe.xadd(shard.wake_key, {"w": b"1"}, maxlen=10, approximate=True)
            pipe.expire(shard.wake_key, 60)
            await pipe.execute()

    async def _read_loop(self, shard: _Shard) -> None:
        backoff = 0.05
        try:
            while not self._closed:
                if not shard.keys:
                    shard.closed = True
                    self._shards.remove(shard)
                    return
                command = self._xread_command(shard)
                shard.blocked = True
                shard.wake_sent = False
                try:
                    reply = await self._send_packed(command)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if not _is_connection_error(exc):
                        log.exception("realtime stream read failed")
                    self._mark_down(exc)
                    await asyncio.sleep(backoff)
                    backoff = min(1.0, backoff * 2)
                    continue
                finally:
                    shard.blocked = False
                backoff = 0.05
                self._mark_up()
                self._dispatch(shard, reply)
        finally:
            shard.closed = True

    def _xread_command(self, shard: _Shard) -> bytes:
        """XREAD COUNT 500 BLOCK ms STREAMS wake key... position..., packed as RESP here.

        A shard re-issues it after every event with all its keys (up to 512); redis-py's
        generic packing of those ~1,000 arguments was a fifth of a busy node's CPU. Each
        stream's chunks are packed once and kept until its position moves.
        """
        packed = self._packed_keys
        positions = self._positions
        head = [b"", self._xread_head, _bulk(shard.wake_key)]
        tail = [_bulk(shard.wake_position)]
        for key in shard.keys:
            position = positions.get(key)
            if position is None:
                continue
            cached = packed.get(key)
            if cached is None or cached[0] is not position:
                # A quiet stream keeps its position object: its chunks are packed once.
                cached = packed[key] = (position, _bulk(key), _bulk(position))
            head.append(cached[1])
            tail.append(cached[2])
        if len(packed) > 2 * len(positions) + 1024:  # streams no longer listened to
            for key in [k for k in packed if k not in positions]:
                del packed[key]
        head[0] = b"*%d\r\n" % (len(tail) * 2 + 6)
        parts = head + tail
        return b"".join(parts)

    async def _send_packed(self, command: bytes) -> Any:
        """Send a packed command on a pooled connection and read its raw reply."""
        pool = self._redis.connection_pool
        conn = await pool.get_connection()
        try:
            await conn.send_packed_command(command)
            return await conn.read_response()
        except BaseException:
            # Cut off mid-reply (cancelled, timed out, dropped): the connection cannot be reused.
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)

    def _dispatch(self, shard: _Shard, reply: Any) -> None:
        # RESP3 answers a map of key -> entries, RESP2 a list of [key, entries]; nil on timeout.
        items = reply.items() if isinstance(reply, dict) else (reply or [])
        now_ms = time.time() * 1000
        for key, entries in items:
            if key == shard.wake_key:
                if entries:
                    shard.wake_position = entries[-1][0]
                continue
            if key not in shard.keys:
                continue
            deliver = self._listeners.get(key)
            for entry_id, raw_fields in entries:
                self._positions[key] = entry_id
                # The raw reply: an entry's fields are a flat [name, value, ...] list.
                fields = (
                    raw_fields
                    if isinstance(raw_fields, dict)
                    else dict(zip(raw_fields[::2], raw_fields[1::2], strict=True))
                )
                if deliver is None or fields.get(b"n") == self._node:
                    continue
                try:
                    event = json.loads(fields[b"d"])
                except (KeyError, ValueError):
                    log.warning("skipping an unreadable entry on %r", key)
                    continue
                deliver(event)
                metrics.REALTIME_BRIDGE_LAG.observe(_lag_seconds(entry_id, now_ms))

    async def scan_back(
        self, channel: str, *, stop: StopScan, limit: int
    ) -> tuple[list[Event], bool] | None:
        """Events newest first until `stop(event)` holds (included; found=True) or `limit` is hit.

        None when Redis cannot be asked.
        """
        key = self.key(channel)
        collected: list[Event] = []
        end = "+"
        page = 50
        try:
            while len(collected) < limit:
                entries = await self._redis.xrevrange(key, end, "-", count=page)
                if not entries:
                    return collected, False
                for _entry_id, fields in entries:
                    try:
                        event = json.loads(fields[b"d"])
                    except (KeyError, ValueError):
                        continue
                    collected.append(event)
                    if stop(event):
                        return collected, True
                end = "(" + _text(entries[-1][0])
                page = min(page * 4, 1000)
        except Exception as exc:
            if not _is_connection_error(exc):
                raise
            self._mark_down(exc)
            return None
        return collected, False

    # -- lifecycle -------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        if self._closed:
            return
        await self.flush(seconds=2.0)
        self._closed = True
        tasks: list[asyncio.Task[Any]] = [s.task for s in self._shards if s.task is not None]
        if self._publisher is not None:
            tasks.append(self._publisher)
        tasks.extend(self._background)
        for task in tasks:
            task.cancel()
        await _gather_quietly(tasks)
        with contextlib.suppress(Exception):
            keys = [s.wake_key for s in self._shards]
            if keys:
                await self._redis.delete(*keys)


async def _gather_quietly(tasks: list[asyncio.Task[Any]]) -> None:
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


def _lag_seconds(entry_id: Any, now_ms: float) -> float:
    """How long ago Redis appended the entry: its id is `<milliseconds>-<sequence>` on the
    Redis server's clock (a clock ahead of this node's reads as no lag, not a negative one)."""
    try:
        appended_ms = int(_text(entry_id).partition("-")[0])
    except ValueError:
        return 0.0
    return max(0.0, now_ms - appended_ms) / 1000


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _is_connection_error(exc: BaseException) -> bool:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return isinstance(
        exc, RedisConnectionError | RedisTimeoutError | OSError | asyncio.TimeoutError
    )


async def call_quietly(awaitable: Awaitable[Any]) -> Any:
    """Await a Redis call whose failure only means Redis is away (None then)."""
    try:
        return await awaitable
    except Exception as exc:
        if not _is_connection_error(exc):
            log.exception("realtime Redis call failed")
        return None
