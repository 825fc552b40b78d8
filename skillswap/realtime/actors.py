"""Actors: one task per room with local subscribers, and one per locally connected user.

An actor alone touches its subscribers, processing its inbox in order, so every subscriber of
a room sees that room's events in one order. Room actors deliver messages strictly by seq:
an older or repeated one is dropped, a jump means something was missed (another node's
publish overtook, or Redis was away) and is filled from PostgreSQL before going on - seqs are
dense and committed in order, so what is missing is already in the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import func, select

from skillswap.chat import services as chat
from skillswap.chat.services import MessageRecord, message_public
from skillswap.i18n import Message, lazy
from skillswap.models import ChatMember, Notification
from skillswap.notifications.services import notification_record
from skillswap.realtime.protocol import frame

if TYPE_CHECKING:
    from skillswap.realtime.hub import Hub

log = logging.getLogger("skillswap.realtime")

Command = tuple[Any, ...]
TYPING_EVERY_SECONDS = 1.0


class Mailbox:
    """An actor's inbox: unbounded, one consumer. Lighter than asyncio.Queue (one deque, one
    waiter), which matters with an actor per connected user."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[Command] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put(self, command: Command) -> None:
        self._items.append(command)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Command:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()

    def get_nowait(self) -> Command:
        return self._items.popleft()

    def empty(self) -> bool:
        return not self._items


class Connection(Protocol):
    """What actors need of a client connection (the WebSocket handler provides it)."""

    user_id: int
    is_admin: bool
    rooms: set[int]

    def send_frame(self, data: bytes) -> None: ...

    def send_error_frame(self, code: str, detail: Message, **context: Any) -> None: ...

    def render_notification(self, record: dict[str, Any]) -> bytes: ...

    def heartbeat(self, now: float, interval: float) -> None: ...

    def going_away(self) -> None: ...

    def session_ended(self) -> None: ...


class RoomActor:
    """Owns one room on this node: its local subscribers and the order they hear things in."""

    def __init__(self, hub: Hub, room_id: int) -> None:
        self.hub = hub
        self.room_id = room_id
        self.channel = f"room:{room_id}"
        self.inbox = Mailbox()
        # Each subscriber with the id of the newest message it was sent.
        self.subs: dict[Connection, int] = {}
        self.members: frozenset[int] = frozenset()
        self.seq = 0  # newest seq delivered here
        self.last_id = 0  # and its message id
        self._early: dict[int, MessageRecord] = {}
        self._typing: dict[int, float] = {}
        self._retry: asyncio.TimerHandle | None = None
        self.task = asyncio.create_task(self._run())

    def put(self, command: Command) -> None:
        self.inbox.put(command)

    def from_bridge(self, event: dict[str, Any]) -> None:
        kind = event.get("t")
        if kind == "m":
            self.put(("msg", event["m"]))
        elif kind == "e":
            self.put(("event", event["e"]))

    async def _run(self) -> None:
        refusal = "room_not_found"
        try:
            if await self._load():
                await self._serve()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("room actor %s failed", self.room_id)
            refusal = "unavailable"
        finally:
            self.hub.room_stopped(self)
            if self._retry is not None:
                self._retry.cancel()
            self._refuse_waiting(refusal)

    async def _load(self) -> bool:
        # The stream position is taken before the database is read: whatever is published
        # after it is read from the stream, whatever before it is already in the database.
        position = await self.hub.bridge.position(self.channel)
        state = await chat.load_room_state(self.hub.db, self.room_id)
        if state is None:
            return False
        self.members, self.seq, self.last_id = state.members, state.last_seq, state.last_id
        self.hub.bridge.listen(self.channel, position, self.from_bridge)
        return True

    async def _serve(self) -> None:
        idle = self.hub.idle_seconds
        while True:
            if self.subs:
                command = await self.inbox.get()
            else:
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
                    # cancellation that lands as a command arrives.
                    async with asyncio.timeout(idle):
                        command = await self.inbox.get()
                except TimeoutError:
                    if self.inbox.empty() and not self.subs:
                        return  # idle: the hub forgets this actor in the same step
                    continue
            await self._handle(command)

    async def _handle(self, command: Command) -> None:
        kind = command[0]
        if kind == "msg":
            await self._accept(command[1])
        elif kind == "sub":
            await self._subscribe(command[1], command[2])
        elif kind == "unsub":
            self.subs.pop(command[1], None)
        elif kind == "event":
            self._broadcast(command[1])
        elif kind == "typing":
            self._typing_from(command[1])
        elif kind == "resync":
            await self._resync(reanchor=command[1])

    # -- messages --------------------------------------------------------------------------------

    async def _accept(self, record: MessageRecord) -> None:
        seq = record["seq"]
        if seq <= self.seq:
            return  # already delivered (e.g. published locally and read back from the stream)
        if seq == self.seq + 1:
            self._deliver(record)
            self._deliver_early()
            return
        self._early[seq] = record
        await self._fill_from_database(upto=max(self._early))

    def _deliver(self, record: MessageRecord) -> None:
        data = frame("message", room=self.room_id, message=message_public(record))
        message_id = record["id"]
        for conn, last in self.subs.items():
            if message_id > last:
                self.subs[conn] = message_id
                conn.send_frame(data)
        self.seq, self.last_id = record["seq"], message_id

    def _deliver_early(self) -> None:
        while self.seq + 1 in self._early:
            self._deliver(self._early.pop(self.seq + 1))
        for stale in [s for s in self._early if s <= self.seq]:
            del self._early[stale]

    async def _fill_from_database(self, *, upto: int | None) -> None:
        try:
            missing = await chat.messages_by_seq(
                self.hub.db, room_id=self.room_id, after_seq=self.seq, upto_seq=upto
            )
        except Exception:
            log.warning("room %s: filling a gap from the database failed; retrying", self.room_id)
            self._schedule_retry()
            return
        for record in missing:
            if record["seq"] == self.seq + 1:
                self._deliver(record)
        self._deliver_early()
        if self._early:
            self._schedule_retry()

    def _schedule_retry(self) -> None:
        if self._retry is None:
            loop = asyncio.get_running_loop()

            def retry() -> None:
                self._retry = None
                self.put(("resync", False))

            self._retry = loop.call_later(1.0, retry)

    async def _resync(self, *, reanchor: bool) -> None:
        """Catch up from PostgreSQL (after Redis came back, or a failed gap fill)."""
        if reanchor:
            position = await self.hub.bridge.position(self.channel)
            if position is not None:
                self.hub.bridge.listen(self.channel, position, self.from_bridge)
        await self._fill_from_database(upto=None)

    # -- subscribers -----------------------------------------------------------------------------

    async def _subscribe(self, conn: Connection, last_id: int | None) -> None:
        if conn.user_id not in self.members and not conn.is_admin:
            conn.rooms.discard(self.room_id)
            conn.send_error_frame("room_not_found", lazy("No such chat room."), room=self.room_id)
            return
        if self.room_id not in conn.rooms:
            return  # unsubscribed, or gone, while waiting
        replay: list[MessageRecord] = []
        recovered = last_id is not None
        truncated = False
        if last_id is not None and last_id < self.last_id:
            replay, recovered, truncated = await self._missed(last_id)
        fields: dict[str, Any] = {"room": self.room_id, "recovered": recovered}
        if truncated:
            fields["truncated"] = True
        conn.send_frame(frame("subscribed", **fields))
        for record in replay:
            conn.send_frame(frame("message", room=self.room_id, message=message_public(record)))
        first_here = not any(c.user_id == conn.user_id for c in self.subs if c is not conn)
        # A client ahead of this node (it saw newer messages elsewhere) is not sent them again.
        self.subs[conn] = max(self.last_id, last_id or 0)
        await self._presence_for(conn, announce=first_here)

    async def _missed(self, last_id: int) -> tuple[list[MessageRecord], bool, bool]:
        """Messages after `last_id` up to what this node delivered: from the stream when it
        still holds all of them (recovered=True), otherwise from PostgreSQL."""
        limit = self.hub.max_replay

        def reached(event: dict[str, Any]) -> bool:
            return event.get("t") == "m" and event["m"]["id"] <= last_id

        scanned = await self.hub.bridge.scan_back(
            self.channel, stop=reached, limit=self.hub.settings.realtime_stream_maxlen
        )
        if scanned is not None and scanned[1]:
            events = scanned[0]
            boundary = events[-1]["m"]["seq"]
            by_seq = {
                e["m"]["seq"]: e["m"]
                for e in events[:-1]
                if e.get("t") == "m" and e["m"]["id"] > last_id and e["m"]["seq"] <= self.seq
            }
            wanted = range(boundary + 1, self.seq + 1)
            if len(wanted) <= limit and all(s in by_seq for s in wanted):
                return [by_seq[s] for s in wanted], True, False
        records, truncated = await chat.missed_messages(
            self.hub.db, room_id=self.room_id, after_id=last_id, upto_seq=self.seq, limit=limit
        )
        return records, False, truncated

    async def _presence_for(self, conn: Connection, *, announce: bool) -> None:
        if announce and conn.user_id in self.members:
            self.hub.publish_room_event(
                self.room_id,
                {"type": "presence", "room": self.room_id, "user": conn.user_id, "online": True},
            )
        others = [u for u in self.members if u != conn.user_id]
        online = await self.hub.presence.online(others)
        for user in sorted(others):
            conn.send_frame(frame("presence", room=self.room_id, user=user, online=user in online))

    def _typing_from(self, conn: Connection) -> None:
        if conn.user_id not in self.members:
            conn.send_error_frame(
                "room_not_found" if not conn.is_admin else "read_only",
                lazy("No such chat room.")
                if not conn.is_admin
                else lazy("Administrators can read this room but not write in it."),
                room=self.room_id,
            )
            return
        now = asyncio.get_running_loop().time()
        if now - self._typing.get(conn.user_id, -TYPING_EVERY_SECONDS) < TYPING_EVERY_SECONDS:
            return  # one typing event per user per second is plenty
        self._typing[conn.user_id] = now
        self.hub.publish_room_event(
            self.room_id, {"type": "typing", "room": self.room_id, "user": conn.user_id}
        )

    def _broadcast(self, event: dict[str, Any]) -> None:
        # Typing and presence are about a user; their own devices do not need to hear it.
        about = event.get("user") if event.get("type") in {"typing", "presence"} else None
        data = frame(event["type"], **{k: v for k, v in event.items() if k != "type"})
        for conn in self.subs:
            if conn.user_id != about:
                conn.send_frame(data)

    def _refuse_waiting(self, code: str) -> None:
        while not self.inbox.empty():
            command = self.inbox.get_nowait()
            if command[0] == "sub":
                conn = command[1]
                conn.rooms.discard(self.room_id)
                detail = (
                    lazy("No such chat room.")
                    if code == "room_not_found"
                    else lazy("The chat service is unavailable right now. Try again.")
                )
                conn.send_error_frame(code, detail, room=self.room_id)
        for conn in list(self.subs):
            conn.rooms.discard(self.room_id)
        self.subs.clear()


class UserActor:
    """Owns one user's channel on this node and their local connections: notifications, and
    `room_activity` for rooms a connection does not follow (so an app need not follow them all).
    """

    RECENT = 256

    def __init__(self, hub: Hub, user_id: int) -> None:
        self.hub = hub
        self.user_id = user_id
        self.channel = f"user:{user_id}"
        self.inbox = Mailbox()
        self.conns: set[Connection] = set()
        # Ids of notifications delivered lately (made on the first one): the same one may come
        # both locally and through Redis.
        self._recent: deque[int] | None = None
        self._recent_set: set[int] = set()
        self._newest: int | None = 0
        # Room activity waiting to be sent: the newest per room, sent once the inbox is empty
        # (a burst of messages in a room becomes one frame and one read of the unread count).
        self._activity: dict[int, dict[str, Any]] = {}
        self.task = asyncio.create_task(self._run())

    def put(self, command: Command) -> None:
        self.inbox.put(command)

    def from_bridge(self, event: dict[str, Any]) -> None:
        kind = event.get("t")
        if kind == "n":
            self.put(("note", event["n"]))
        elif kind == "a":
            self.put(("activity", event["a"]))
        elif kind == "c":
            self.put(("call", event["c"]))
        elif kind == "x":
            self.put(("end",))

    async def _run(self) -> None:
        try:
            position = await self.hub.bridge.position(self.channel)
            self._newest = await _newest_notification(self.hub, self.user_id)
            self.hub.bridge.listen(self.channel, position, self.from_bridge)
            while True:
                command = await self.inbox.get()
                kind = command[0]
                if kind == "add":
                    self.conns.add(command[1])
                elif kind == "remove":
                    self.conns.discard(command[1])
                    if not self.conns and self.inbox.empty():
                        return
                elif kind == "note":
                    self._deliver(command[1])
                elif kind == "activity":
                    self._note_activity(command[1])
                elif kind == "call":
                    data = frame("call", **command[1])
                    for conn in self.conns:
                        conn.send_frame(data)
                elif kind == "resync":
                    await self._resync()
                elif kind == "end":
                    # The user's sessions ended (a ban): each connection closes itself,
                    # which removes it here.
                    for conn in list(self.conns):
                        conn.session_ended()
                if self._activity and self.inbox.empty():
                    await self._send_activity()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("user actor %s failed", self.user_id)
        finally:
            self.hub.user_stopped(self)

    def _deliver(self, record: dict[str, Any]) -> None:
        note_id = record["id"]
        if note_id in self._recent_set:
            return
        if self._recent is None:
            self._recent = deque(maxlen=self.RECENT)
        if len(self._recent) == self._recent.maxlen:
            self._recent_set.discard(self._recent[0])
        self._recent.append(note_id)
        self._recent_set.add(note_id)
        if self._newest is not None:
            self._newest = max(self._newest, note_id)
        for conn in self.conns:
            conn.send_frame(conn.render_notification(record))

    def _note_activity(self, activity: dict[str, Any]) -> None:
        known = self._activity.get(activity["room"])
        if known is None or activity["seq"] > known["seq"]:
            self._activity[activity["room"]] = activity

    async def _send_activity(self) -> None:
        pending, self._activity = self._activity, {}
        # Connections following a room hear its messages there; the others hear of it here.
        wanted = {room: [c for c in self.conns if room not in c.rooms] for room in pending}
        rooms = [room for room, conns in wanted.items() if conns]
        if not rooms:
            return
        try:
            async with self.hub.db.read() as session:
                read_upto = dict(
                    (
                        await session.execute(
                            select(ChatMember.room_id, ChatMember.last_read_seq).where(
                                ChatMember.user_id == self.user_id,
                                ChatMember.room_id.in_(rooms),
                            )
                        )
                    ).all()
                )
        except Exception:
            log.warning("user %s: could not count unread messages; activity not sent", self.user_id)
            return
        for room in rooms:
            if room not in read_upto:
                continue
            activity = pending[room]
            data = frame(
                "room_activity",
                room=room,
                last_id=activity["last_id"],
                unread=max(0, activity["seq"] - read_upto[room]),
            )
            for conn in wanted[room]:
                conn.send_frame(data)

    async def _resync(self) -> None:
        position = await self.hub.bridge.position(self.channel)
        if position is not None:
            self.hub.bridge.listen(self.channel, position, self.from_bridge)
        if self._newest is None:
            return  # never learnt where the user stood; the REST list has everything
        async with self.hub.db.read() as session:
            rows = await session.scalars(
                select(Notification)
                .where(Notification.user_id == self.user_id, Notification.id > self._newest)
                .order_by(Notification.id)
                .limit(100)
            )
            records = [notification_record(n) for n in rows]
        for record in records:
            self._deliver(record)


async def _newest_notification(hub: Hub, user_id: int) -> int | None:
    try:
        async with hub.db.read() as session:
            newest = await session.scalar(
                select(func.max(Notification.id)).where(Notification.user_id == user_id)
            )
    except Exception:
        log.warning("could not read the newest notification of user %s", user_id)
        return None
    return int(newest or 0)
