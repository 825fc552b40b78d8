"""Chat endpoints: /api/chat/rooms/ and each room's messages, sends and read receipts.

The same rooms are live over the WebSocket at /ws/ (docs/realtime.md); a message sent here is
delivered there to everyone connected, on every node.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from skillswap.chat import services as chat
from skillswap.chat.services import RoomSummary
from skillswap.http.accounts import user_public
from skillswap.http.base import BaseHandler, idempotent, limited, path_id, route, takes_query
from skillswap.http.operations import operation
from skillswap.http.query import PageQuery
from skillswap.http.schemas import MessageOut, Page, ReadReceipt, RoomDetailOut, RoomOut
from skillswap.http.validation import Body, Id
from skillswap.i18n import Translator


def room_view(summary: RoomSummary, translator: Translator | None = None) -> dict[str, Any]:
    room = summary.room
    return {
        "id": room.id,
        "kind": room.kind,
        "order_id": room.order_id,
        "members": [user_public(u, translator) for u in summary.members],
        "last_message": (
            chat.message_public(summary.last_message) if summary.last_message else None
        ),
        "unread_count": summary.unread_count,
        "last_read_id": summary.last_read_id,
        "last_activity_at": room.last_activity_at,
        "created_at": room.created_at,
    }


class DirectRoomBody(Body):
    user_id: Id


class RoomsQuery(PageQuery):
    order_id: Id | None = Field(default=None, description="Only the room of this order")


class RoomQuery(Body):
    before: Id | None = Field(default=None, description="Only messages older than this id")
    limit: int = Field(default=chat.DEFAULT_PAGE, ge=1, le=chat.MAX_PAGE)


class SendBody(Body):
    body: str = Field(min_length=1, max_length=20_000)
    client_id: str | None = Field(default=None, min_length=1, max_length=64)


class ReadBody(Body):
    message_id: Id


class RoomsHandler(BaseHandler):
    @operation("listRooms", tag="Chat", response=Page[RoomOut], paged=True)
    @takes_query(RoomsQuery)
    async def get(self) -> None:
        """The signed-in user's chat rooms, newest activity first, with unread counts
        (`?order_id=` for the room of one of your orders)."""
        query = self.query(RoomsQuery)
        params = self.page_params()
        count, rooms = await chat.list_rooms(
            self.deps,
            actor=self.user,
            offset=params.offset,
            limit=params.page_size,
            order_id=query.order_id,
        )
        self.send_page(params, count=count, results=[room_view(r, self.translator) for r in rooms])

    @operation(
        "openDirectRoom",
        tag="Chat",
        body=DirectRoomBody,
        response=RoomOut,
        status=201,
        also={200: RoomOut},
        problems=(403, 404),
    )
    @idempotent
    async def post(self) -> None:
        """Open (or get) the direct room with a user you share an order with."""
        body = self.parse_body(DirectRoomBody)
        summary, created = await chat.open_direct_room(
            self.deps, actor=self.user, user_id=body.user_id
        )
        view = room_view(summary, self.translator)
        self.send(view, status=201 if created else 200, location=self.location_of(view))

    def location_of(self, created: Any) -> str:
        return f"/api/chat/rooms/{created['id']}/"


class RoomHandler(BaseHandler):
    @operation("getRoom", tag="Chat", response=RoomDetailOut, problems=(404,))
    @takes_query(RoomQuery)
    async def get(self, room_id: str) -> None:
        """A room and its latest messages (older ones with `?before=<message id>`)."""
        query = self.query(RoomQuery)
        detail = await chat.get_room(
            self.deps,
            actor=self.user,
            room_id=path_id(room_id),
            before=query.before,
            limit=query.limit,
        )
        self.send(
            {
                **room_view(detail.summary, self.translator),
                "messages": [chat.message_public(m) for m in detail.messages],
                "has_more": detail.has_more,
            }
        )


class SendHandler(BaseHandler):
    @operation(
        "sendMessage",
        tag="Chat",
        body=SendBody,
        response=MessageOut,
        status=201,
        also={200: MessageOut},
        problems=(403, 404, 409, 429),
    )
    @limited("message")
    @idempotent
    async def post(self, room_id: str) -> None:
        """Send a message: stored first (once per `client_id`), then delivered live."""
        body = self.parse_body(SendBody)
        sent = await chat.send_message(
            self.deps,
            actor=self.user,
            room_id=path_id(room_id),
            body=body.body,
            client_id=body.client_id,
        )
        message = chat.message_public(sent.message)
        self.send(message, status=201 if sent.created else 200, location=self.location_of(message))

    def location_of(self, created: Any) -> str:
        # A message has no address of its own: it is found in its room, which lists it.
        return f"/api/chat/rooms/{path_id(self.path_args[0])}/"


class ReadHandler(BaseHandler):
    @operation("markRoomRead", tag="Chat", body=ReadBody, response=ReadReceipt, problems=(403, 404))
    async def post(self, room_id: str) -> None:
        """Mark the room read up to a message (a read receipt; never moves backwards)."""
        body = self.parse_body(ReadBody)
        result = await chat.mark_read(
            self.deps, actor=self.user, room_id=path_id(room_id), message_id=body.message_id
        )
        self.send(result)


routes = [
    route("/api/chat/rooms/", RoomsHandler),
    route(r"/api/chat/rooms/(\d+)/", RoomHandler),
    route(r"/api/chat/rooms/(\d+)/send/", SendHandler),
    route(r"/api/chat/rooms/(\d+)/read/", ReadHandler),
]
