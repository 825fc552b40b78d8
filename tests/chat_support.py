"""Factories for the chat, notification and realtime tests: order rooms and WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import tornado.httpclient
import tornado.websocket

from skillswap.deps import Deps
from tests.conftest import Api, TestUser
from tests.points_support import make_skill

Frame = dict[str, Any]


async def place_order(api: Api, deps: Deps, buyer: TestUser, seller: TestUser) -> dict[str, Any]:
    """A real order of a 1-point skill of `seller`, placed by `buyer` through the API."""
    skill_id = await make_skill(deps, owner_id=seller.id, price=1)
    response = await api.post(
        "/api/points/orders/", token=buyer.access, json={"skill_id": skill_id}
    )
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    return order


async def order_room(api: Api, deps: Deps, buyer: TestUser, seller: TestUser) -> int:
    """The chat room that comes with a new order between `buyer` and `seller`."""
    order = await place_order(api, deps, buyer, seller)
    listing = await api.get("/api/chat/rooms/?page_size=100", token=buyer.access)
    assert listing.status_code == 200, listing.text
    for room in listing.json()["results"]:
        if room["order_id"] == order["id"]:
            return int(room["id"])
    raise AssertionError(f"no chat room for order {order['id']}")


class WsClient:
    """A real WebSocket client that reads like the protocol: send frames, expect frames."""

    def __init__(self, conn: tornado.websocket.WebSocketClientConnection) -> None:
        self.conn = conn
        self.seen: list[Frame] = []  # every frame received, in order

    async def send(self, **frame: Any) -> None:
        await self.conn.write_message(json.dumps(frame))

    async def next(self, timeout: float = 5.0) -> Frame:
        """The next frame (fails if the socket closes or nothing comes in time)."""
        raw = await asyncio.wait_for(self.conn.read_message(), timeout)
        if raw is None:
            raise ConnectionError(f"closed with {self.conn.close_code} {self.conn.close_reason}")
        frame: Frame = json.loads(raw)
        self.seen.append(frame)
        return frame

    async def until(self, match: Callable[[Frame], bool], timeout: float = 5.0) -> Frame:
        """Read until a frame matches (those before it stay in `seen`)."""
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.next(max(0.01, deadline - time.monotonic()))
            if match(frame):
                return frame

    async def of_type(self, kind: str, timeout: float = 5.0, **fields: Any) -> Frame:
        """The next frame of `kind` whose fields equal `fields`."""
        return await self.until(
            lambda f: f.get("type") == kind and all(f.get(k) == v for k, v in fields.items()),
            timeout,
        )

    async def messages(self, room: int, count: int, timeout: float = 5.0) -> list[Frame]:
        """The next `count` chat messages of `room`, in the order they arrived."""
        got: list[Frame] = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            frame = await self.of_type("message", max(0.01, deadline - time.monotonic()), room=room)
            got.append(frame["message"])
        return got

    async def quiet(self, seconds: float) -> list[Frame]:
        """Every frame arriving within `seconds` (to prove nothing more comes)."""
        got: list[Frame] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                got.append(await self.next(left))
            except TimeoutError:
                break
        return got

    async def subscribe(self, room: int, last_id: int | None = None) -> Frame:
        await self.send(type="subscribe", room=room, last_id=last_id)
        return await self.until(
            lambda f: f.get("room") == room and f.get("type") in {"subscribed", "error"}
        )

    async def closed(self, timeout: float = 5.0) -> int | None:
        """Wait for the server to close the socket; its close code."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            raw = await asyncio.wait_for(
                self.conn.read_message(), max(0.01, deadline - time.monotonic())
            )
            if raw is None:
                return self.conn.close_code
            self.seen.append(json.loads(raw))
        raise TimeoutError("the socket stayed open")

    def close(self) -> None:
        self.conn.close()


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://", 1) + "/ws/"


async def ws_connect(
    base: str,
    token: str | None = None,
    *,
    via_query: bool = False,
    origin: str | None = None,
    headers: dict[str, str] | None = None,
) -> WsClient:
    """Open /ws/ on the server at `base` (an http:// URL) as the owner of `token`."""
    url = ws_url(base)
    request_headers = dict(headers or {})
    if token and via_query:
        url += f"?token={token}"
    elif token:
        request_headers["Authorization"] = f"Bearer {token}"
    if origin:
        request_headers["Origin"] = origin
    request = tornado.httpclient.HTTPRequest(url, headers=request_headers, connect_timeout=5)
    conn = await tornado.websocket.websocket_connect(request)
    return WsClient(conn)


async def wait_for(condition: Callable[[], Any], timeout: float = 5.0, every: float = 0.02) -> Any:
    """Poll `condition` (sync or async) until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(every)
