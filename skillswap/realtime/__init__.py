"""Real-time chat and notifications: the WebSocket endpoint, actors, and the node bridge.

`Realtime` is what the rest of the service sees: publish a committed message, room event or
notification, and the writer that persists chat messages. It is built by `bootstrap` from the
platform resources (settings, database, clock) before `Deps`, in the running loop (nothing here
starts before it is needed), and closed with the other resources. Domain code sees it only as
a `Publisher` and a `MessageSink`. This package never imports skillswap.http.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from skillswap.chat.writer import MessageWriter
from skillswap.realtime.bridge import Bridge, LocalBridge, RedisBridge
from skillswap.realtime.connection_cap import LocalConnectionCap, RedisConnectionCap
from skillswap.realtime.hub import Hub
from skillswap.realtime.presence import LocalPresence, RedisPresence

if TYPE_CHECKING:
    from skillswap.chat.services import MessageRecord
    from skillswap.db import Database
    from skillswap.deps import Clock
    from skillswap.settings import Settings


class Realtime:
    """This node's realtime service: hub, bridge, presence and the chat message writer."""

    def __init__(self, settings: Settings, db: Database, clock: Clock) -> None:
        self.node_id = secrets.token_hex(6)
        self._redis: Any = None
        self.bridge: Bridge
        self.presence: LocalPresence
        self.connections: LocalConnectionCap  # WS_MAX_CONNECTIONS_PER_USER, on every node
        if settings.redis_url:
            from redis.asyncio import BlockingConnectionPool, Redis

            # Its own client: blocking XREADs hold connections (their socket timeout must
            # outlast the block), and a burst of actors starting waits for a free connection
            # instead of failing.
            self._redis = Redis.from_pool(
                BlockingConnectionPool.from_url(
                    settings.redis_url,
                    max_connections=256,
                    timeout=20,
                    socket_timeout=15,
                    socket_connect_timeout=2,
                )
            )
            self.bridge = RedisBridge(
                self._redis,
                prefix=settings.redis_prefix,
                node_id=self.node_id,
                on_reconnect=self._on_reconnect,
            )
            self.presence = RedisPresence(
                self._redis, prefix=settings.redis_prefix, node_id=self.node_id
            )
            self.connections = RedisConnectionCap(
                self._redis,
                prefix=settings.redis_prefix,
                limit=settings.ws_max_connections_per_user,
            )
        else:
            self.bridge = LocalBridge(self.node_id)
            self.presence = LocalPresence()
            self.connections = LocalConnectionCap(settings.ws_max_connections_per_user)
        self.hub = Hub(settings, db, self.bridge, self.presence)
        # Away members' notifications are pushed to their phones when push is configured.
        self.writer = MessageWriter(
            db,
            clock=clock,
            presence=self.presence,
            publisher=self,
            pushes=bool(settings.fcm_credentials_file),
        )

    def _on_reconnect(self) -> None:
        self.hub.resync_all()

    def publish_message(self, record: MessageRecord) -> None:
        """Deliver a committed chat message to every subscriber, on every node."""
        self.hub.publish_message(record)

    def publish_room_event(self, room_id: int, event: dict[str, Any]) -> None:
        """Deliver an ephemeral room event (typing, read receipt, presence)."""
        self.hub.publish_room_event(room_id, event)

    def publish_notification(self, user_id: int, record: dict[str, Any]) -> None:
        """Deliver a committed notification to the user's connections, on every node."""
        self.hub.publish_notification(user_id, record)

    def end_user_connections(self, user_id: int) -> None:
        """Close the user's open connections, on every node (their sessions were ended)."""
        self.hub.end_user_connections(user_id)

    async def close(self) -> None:
        """Finish queued writes, close connections with 1001, stop actors, release Redis."""
        await self.writer.close()
        await self.hub.close()
        await self.connections.close()
        if self._redis is not None:
            await self._redis.aclose()
