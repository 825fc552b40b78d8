"""The per-node hub: which actors run here, the connections they serve, and publishing.

Publishing always delivers to this node's actor first and then hands the event to the bridge,
so a node keeps serving its own connections while Redis is away; actors drop what they already
delivered, so the copy that comes back through Redis (or from the database) does no harm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from skillswap.chat import services as chat
from skillswap.realtime.actors import Connection, RoomActor, UserActor
from skillswap.realtime.bridge import Bridge
from skillswap.realtime.presence import LocalPresence

if TYPE_CHECKING:
    from skillswap.chat.services import MessageRecord
    from skillswap.db import Database
    from skillswap.settings import Settings

log = logging.getLogger("skillswap.realtime")

MAX_REPLAY = 1000  # messages replayed on one subscribe; older ones are paged over REST
USER_STREAM_MAXLEN = 200
MEMBER_CACHE_SIZE = 10_000
CLOSE_WAIT_SECONDS = 3.0  # at shutdown, how long clients get to answer the 1001 close


class Hub:
    def __init__(
        self, settings: Settings, db: Database, bridge: Bridge, presence: LocalPresence
    ) -> None:
        self.settings = settings
        self.db = db
        self.bridge = bridge
        self.presence = presence
        self.idle_seconds = float(settings.realtime_idle_seconds)
        self.max_replay = MAX_REPLAY
        self.rooms: dict[int, RoomActor] = {}
        self.users: dict[int, UserActor] = {}
        self.connections: set[Connection] = set()
        # Sockets opened here and not yet closed (a connection told to leave is still open
        # until its client answers the close): what a shutdown waits for.
        self._open: set[Connection] = set()
        self._all_closed = asyncio.Event()
        self._all_closed.set()
        # Room members, for telling them of activity (members never change after a room is made).
        self._members: OrderedDict[int, frozenset[int]] = OrderedDict()
        self._pinger: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._closed = False

    # -- actors ----------------------------------------------------------------------------------

    def room(self, room_id: int) -> RoomActor:
        """The room's actor on this node, started if needed."""
        actor = self.rooms.get(room_id)
        if actor is None:
            actor = self.rooms[room_id] = RoomActor(self, room_id)
        return actor

    def room_stopped(self, actor: RoomActor) -> None:
        if self.rooms.get(actor.room_id) is actor:
            del self.rooms[actor.room_id]
            self.bridge.unlisten(actor.channel)

    def user_stopped(self, actor: UserActor) -> None:
        if self.users.get(actor.user_id) is actor:
            del self.users[actor.user_id]
            self.bridge.unlisten(actor.channel)
            if actor.conns and not self._closed:
                # Stopped by a failure while still needed: start afresh for those connections.
                successor = self.users[actor.user_id] = UserActor(self, actor.user_id)
                for conn in actor.conns:
                    successor.put(("add", conn))

    # -- connections -----------------------------------------------------------------------------

    def attach(self, conn: Connection) -> None:
        """A connection opened: follow its user's notifications, count it present."""
        self.connections.add(conn)
        self._open.add(conn)
        self._all_closed.clear()
        actor = self.users.get(conn.user_id)
        if actor is None:
            actor = self.users[conn.user_id] = UserActor(self, conn.user_id)
        actor.put(("add", conn))
        self.presence.connected(conn.user_id)
        if self._pinger is None and self.settings.ws_ping_interval_seconds > 0:
            self._pinger = asyncio.create_task(self._ping_loop())

    def closed(self, conn: Connection) -> None:
        """A connection's socket is closed (after `detach`, or instead of it)."""
        self.detach(conn)
        self._open.discard(conn)
        if not self._open:
            self._all_closed.set()

    def detach(self, conn: Connection) -> None:
        """A connection closed (or was closed): leave its rooms and its user's channel."""
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        rooms = list(conn.rooms)
        conn.rooms.clear()
        for room_id in rooms:
            actor = self.rooms.get(room_id)
            if actor is not None:
                actor.put(("unsub", conn))
        user_actor = self.users.get(conn.user_id)
        if user_actor is not None:
            user_actor.put(("remove", conn))
        if self.presence.disconnected(conn.user_id) and rooms and not self._closed:
            self._spawn(self._announce_offline(conn.user_id, rooms))

    async def _announce_offline(self, user_id: int, rooms: list[int]) -> None:
        if user_id in await self.presence.online([user_id]):
            return  # still connected on another node
        for room_id in rooms:
            self.publish_room_event(
                room_id, {"type": "presence", "room": room_id, "user": user_id, "online": False}
            )

    # -- publishing (after commit) ------------------------------------------------------------------

    def publish_message(self, record: MessageRecord) -> None:
        """Deliver a committed message here, then to the other nodes; tell the other members
        (on their own streams) that their room has news."""
        actor = self.rooms.get(record["room"])
        if actor is not None:
            # One loop step later: the writer resolves the senders' futures right after
            # publishing, so a sending socket's `ack` (a callback of that future) is always
            # queued before this message's echo reaches it - the order docs/realtime.md shows.
            asyncio.get_running_loop().call_soon(actor.put, ("msg", record))
        self.bridge.publish(
            f"room:{record['room']}",
            {"t": "m", "m": record},
            maxlen=self.settings.realtime_stream_maxlen,
        )
        members = self._known_members(record["room"])
        if members is None:
            self._spawn(self._announce_activity_later(record))
        else:
            self._announce_activity(record, members)

    # -- room activity on the members' own streams -------------------------------------------------

    def _known_members(self, room_id: int) -> frozenset[int] | None:
        members = self._members.get(room_id)
        if members is not None:
            self._members.move_to_end(room_id)
            return members
        actor = self.rooms.get(room_id)
        if actor is not None and actor.members:
            return self._remember_members(room_id, actor.members)
        return None

    def _remember_members(self, room_id: int, members: frozenset[int]) -> frozenset[int]:
        self._members[room_id] = members
        while len(self._members) > MEMBER_CACHE_SIZE:
            self._members.popitem(last=False)
        return members

    async def _announce_activity_later(self, record: MessageRecord) -> None:
        try:
            state = await chat.load_room_state(self.db, record["room"])
        except Exception:
            log.warning("room %s: could not read its members to announce activity", record["room"])
            return
        if state is not None:
            self._announce_activity(record, self._remember_members(record["room"], state.members))

    def _announce_activity(self, record: MessageRecord, members: frozenset[int]) -> None:
        """A `room_activity` for every member but the sender, through their user channel (so
        it reaches their connections on every node; each UserActor adds the unread count)."""
        activity = {
            "room": record["room"],
            "last_id": record["id"],
            "seq": record["seq"],
            "sender": record["sender"],
        }
        for user_id in members:
            if user_id == record["sender"]:
                continue
            actor = self.users.get(user_id)
            if actor is not None:
                actor.put(("activity", activity))
            self.bridge.publish(
                f"user:{user_id}", {"t": "a", "a": activity}, maxlen=USER_STREAM_MAXLEN
            )

    def publish_room_event(self, room_id: int, event: dict[str, Any]) -> None:
        """Typing, read receipts and presence: delivered, never stored."""
        actor = self.rooms.get(room_id)
        if actor is not None:
            actor.put(("event", event))
        self.bridge.publish(
            f"room:{room_id}", {"t": "e", "e": event}, maxlen=self.settings.realtime_stream_maxlen
        )

    def publish_notification(self, user_id: int, record: dict[str, Any]) -> None:
        """Deliver a committed notification to the user's connections on every node."""
        actor = self.users.get(user_id)
        if actor is not None:
            actor.put(("note", record))
        self.bridge.publish(f"user:{user_id}", {"t": "n", "n": record}, maxlen=USER_STREAM_MAXLEN)

    def publish_call(self, user_id: int, signal: dict[str, Any]) -> None:
        """A lesson call's signal for one user's connections on every node (through their user
        channel, as notifications go); delivered, never written to the database."""
        actor = self.users.get(user_id)
        if actor is not None:
            actor.put(("call", signal))
        self.bridge.publish(f"user:{user_id}", {"t": "c", "c": signal}, maxlen=USER_STREAM_MAXLEN)

    def end_user_connections(self, user_id: int) -> None:
        """Close the user's connections here, then on the other nodes (through the user's
        channel, which every node with a connection of theirs follows)."""
        actor = self.users.get(user_id)
        if actor is not None:
            actor.put(("end",))
        self.bridge.publish(f"user:{user_id}", {"t": "x"}, maxlen=USER_STREAM_MAXLEN)

    def resync_all(self) -> None:
        """Redis is back: every actor re-anchors on its stream and fills gaps from the DB."""
        for room_actor in list(self.rooms.values()):
            room_actor.put(("resync", True))
        for user_actor in list(self.users.values()):
            user_actor.put(("resync",))

    # -- liveness --------------------------------------------------------------------------------

    async def _ping_loop(self) -> None:
        # One task pings every connection (instead of a ping task per connection).
        interval = float(self.settings.ws_ping_interval_seconds)
        while not self._closed:
            await asyncio.sleep(interval)
            now = asyncio.get_running_loop().time()
            for conn in list(self.connections):
                conn.heartbeat(now, interval)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Close every connection (1001: reconnect elsewhere), stop actors and the bridge.

        The clients' answers to the close are waited for (CLOSE_WAIT_SECONDS at most): a socket
        closed under unread input is reset, and a reset may destroy the close frame before the
        client reads it.
        """
        self._closed = True
        tasks: list[asyncio.Task[Any]] = [a.task for a in self.rooms.values()]
        tasks += [a.task for a in self.users.values()]
        tasks += list(self._background)
        if self._pinger is not None:
            tasks.append(self._pinger)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for conn in list(self.connections):
            conn.going_away()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_WAIT_SECONDS):
                await self._all_closed.wait()
        await self.bridge.close()
        await self.presence.close()
