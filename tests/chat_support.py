"""The chat, notification and realtime tests' WebSocket clients and raw frames (their order
rooms come from tests/factories.py)."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import time
from collections.abc import Callable
from typing import Any

import tornado.httpclient
import tornado.testing
import tornado.websocket

Frame = dict[str, Any]


class WsClient:
    """A real WebSocket client that reads like the protocol: send frames, expect frames.

    Frames are kept until a test asks for them, so waiting for one kind of frame never loses
    another that arrived first.
    """

    def __init__(self, conn: tornado.websocket.WebSocketClientConnection) -> None:
        self.conn = conn
        self.seen: list[Frame] = []  # every frame received, in order
        self.pending: list[Frame] = []  # received and not yet taken by a test

    async def send(self, **frame: Any) -> None:
        await self.conn.write_message(json.dumps(frame))

    async def _receive(self, within: float) -> Frame:
        raw = await asyncio.wait_for(self.conn.read_message(), within)
        if raw is None:
            raise ConnectionError(f"closed with {self.conn.close_code} {self.conn.close_reason}")
        frame: Frame = json.loads(raw)
        self.seen.append(frame)
        self.pending.append(frame)
        return frame

    async def until(self, match: Callable[[Frame], bool], within: float = 5.0) -> Frame:
        """Take the first frame (already received or still to come) that matches."""
        deadline = time.monotonic() + within
        for frame in self.pending:
            if match(frame):
                self.pending.remove(frame)
                return frame
        while True:
            frame = await self._receive(max(0.01, deadline - time.monotonic()))
            if match(frame):
                self.pending.remove(frame)
                return frame

    async def next(self, within: float = 5.0) -> Frame:
        """The oldest frame not yet taken."""
        return await self.until(lambda _frame: True, within)

    async def of_type(self, kind: str, within: float = 5.0, **fields: Any) -> Frame:
        """The first frame of `kind` whose fields equal `fields`."""
        return await self.until(
            lambda f: f.get("type") == kind and all(f.get(k) == v for k, v in fields.items()),
            within,
        )

    async def messages(self, room: int, count: int, within: float = 5.0) -> list[Frame]:
        """The next `count` chat messages of `room`, in the order they arrived."""
        got: list[Frame] = []
        deadline = time.monotonic() + within
        while len(got) < count:
            frame = await self.of_type("message", max(0.01, deadline - time.monotonic()), room=room)
            got.append(frame["message"])
        return got

    async def quiet(self, seconds: float) -> list[Frame]:
        """Every frame not yet taken, plus those arriving within `seconds` (proves silence)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                await self._receive(left)
            except TimeoutError:
                break
        got, self.pending = self.pending, []
        return got

    async def subscribe(self, room: int, last_id: int | None = None) -> Frame:
        await self.send(type="subscribe", room=room, last_id=last_id)
        return await self.until(
            lambda f: f.get("room") == room and f.get("type") in {"subscribed", "error"}
        )

    async def closed(self, within: float = 5.0) -> int | None:
        """Wait for the server to close the socket; its close code."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                await self._receive(max(0.01, deadline - time.monotonic()))
            except ConnectionError:
                return self.conn.close_code
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


async def wait_for(condition: Callable[[], Any], within: float = 5.0, every: float = 0.02) -> Any:
    """Poll `condition` (sync or async) until it is truthy; its value."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(every)


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A masked client-to-server WebSocket frame (for raw-socket clients)."""
    mask = os.urandom(4)
    header = bytes([0x80 | opcode])
    size = len(payload)
    if size < 126:
        header += bytes([0x80 | size])
    elif size < 65536:
        header += bytes([0x80 | 126]) + struct.pack(">H", size)
    else:
        header += bytes([0x80 | 127]) + struct.pack(">Q", size)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Split what a server sent into (opcode, payload) frames (a trailing partial one is cut)."""
    frames: list[tuple[int, bytes]] = []
    at = 0
    while at + 2 <= len(data):
        opcode, size = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if size == 126:
            size = struct.unpack(">H", data[at : at + 2])[0]
            at += 2
        elif size == 127:
            size = struct.unpack(">Q", data[at : at + 8])[0]
            at += 8
        if at + size > len(data):
            break
        frames.append((opcode, data[at : at + size]))
        at += size
    return frames
