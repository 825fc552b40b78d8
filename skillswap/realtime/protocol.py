"""The WebSocket wire protocol: client frames parsed into typed commands, server frames built once.

Every frame is one JSON object with a `type`. A frame that cannot be understood is answered
with an `error` frame and the socket stays open; abuse (too large, too fast, too slow to read)
closes the socket with one of the codes below. docs/realtime.md describes the whole protocol.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from skillswap.api.encoding import dumpb
from skillswap.api.input_rules import (
    MAX_JSON_DEPTH,
    MalformedJson,
    UnstorableText,
    has_unstorable_text,
    load_json,
)
from skillswap.i18n import Message, lazy
from skillswap.models.base import MAX_ID

# Close codes. 1009 is the standard "message too big"; the 4xxx codes are ours.
CLOSE_GOING_AWAY = 1001  # the node is shutting down: reconnect (to any node) and resume
CLOSE_TOO_LARGE = 1009  # a frame larger than WS_MAX_FRAME_BYTES
CLOSE_TOKEN_EXPIRED = 4001  # the access token expired and no fresh one was sent
CLOSE_SLOW_CONSUMER = 4008  # the client did not read fast enough; reconnect and resume
CLOSE_RATE_LIMITED = 4029  # more frames than WS_RATE_PER_SECOND / WS_RATE_BURST allow
CLOSE_UNRESPONSIVE = 4002  # no answer to the server's pings
CLOSE_SESSION_ENDED = 4003  # the account's sessions were ended (e.g. it was suspended): the
# token is refused from now on, so reconnecting with it fails; sign in again


class FrameError(Exception):
    """A client frame that cannot be acted on; answered with an `error` frame."""

    def __init__(self, code: str, detail: Message, **context: Any) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail
        self.context = context


@dataclass(frozen=True, slots=True)
class Subscribe:
    room: int
    last_id: int | None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    room: int


@dataclass(frozen=True, slots=True)
class Send:
    room: int
    body: str
    client_id: str | None


@dataclass(frozen=True, slots=True)
class Typing:
    room: int


@dataclass(frozen=True, slots=True)
class Read:
    room: int
    message_id: int


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Auth:
    token: str


@dataclass(frozen=True, slots=True)
class Call:
    """A lesson call's signal for the room's other participant (see skillswap/lessons/calls.py)."""

    room: int
    signal: dict[str, Any]
    size: int  # the frame's length in bytes, held against CALL_SIGNAL_MAX_BYTES


Command = Subscribe | Unsubscribe | Send | Typing | Read | Ping | Auth | Call

SIGNAL_KINDS = ("offer", "answer", "candidate", "hangup")

MAX_CLIENT_ID = 64


def _int(frame: dict[str, Any], name: str, *, minimum: int = 1, nullable: bool = False) -> Any:
    value = frame.get(name)
    if value is None and nullable:
        return None
    # bool is an int in Python; `true` is not a room id.
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise FrameError(
            "invalid_frame",
            lazy("`{field}` must be a whole number of at least {min}.", field=name, min=minimum),
            field=name,
        )
    if value > MAX_ID:
        # Past BIGINT no room or message exists, and the database driver would fail on it.
        raise FrameError(
            "invalid_frame",
            lazy(
                "`{field}` must be a whole number from {min} to {max}.",
                field=name,
                min=minimum,
                max=MAX_ID,
            ),
            field=name,
        )
    return value


def _str(frame: dict[str, Any], name: str, *, max_length: int, nullable: bool = False) -> Any:
    value = frame.get(name)
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise FrameError("invalid_frame", lazy("`{field}` must be a string.", field=name))
    if len(value) > max_length or (nullable and not value):
        raise FrameError(
            "invalid_frame",
            lazy("`{field}` must be 1 to {max} characters.", field=name, max=max_length),
        )
    return value


def _unstorable(exc: UnstorableText) -> FrameError:
    """The error for a frame with text the database cannot store, naming the (first) field and,
    when they are sound, the frame's room and client_id (so a client can match a failed send)."""
    context: dict[str, Any] = {"field": exc.paths[0]}
    frame = exc.document
    if isinstance(frame, dict):
        room = frame.get("room")
        if isinstance(room, int) and not isinstance(room, bool) and 1 <= room <= MAX_ID:
            context["room"] = room
        client_id = frame.get("client_id")
        if (
            isinstance(client_id, str)
            and 1 <= len(client_id) <= MAX_CLIENT_ID
            and not has_unstorable_text(client_id)
        ):
            context["client_id"] = client_id
    return FrameError(
        "invalid_frame",
        lazy(
            "`{field}` must not contain NUL characters or unpaired surrogates.",
            field=exc.paths[0],
        ),
        **context,
    )


def parse_frame(raw: str | bytes) -> Command:
    """Decode one client frame, or raise FrameError saying what is wrong with it."""
    try:
        frame = load_json(raw)
    except MalformedJson as exc:
        if exc.reason == "depth":
            raise FrameError(
                "malformed_frame",
                lazy("The frame is nested more than {max} levels deep.", max=MAX_JSON_DEPTH),
            ) from None
        raise FrameError("malformed_frame", lazy("The frame is not valid JSON.")) from None
    except UnstorableText as exc:
        raise _unstorable(exc) from None
    if not isinstance(frame, dict):
        raise FrameError("malformed_frame", lazy("A frame must be a JSON object."))
    kind = frame.get("type")
    if kind == "ping":
        return Ping()
    if kind == "send":
        return Send(
            room=_int(frame, "room"),
            body=_str(frame, "body", max_length=1_000_000),
            client_id=_str(frame, "client_id", max_length=MAX_CLIENT_ID, nullable=True),
        )
    if kind == "subscribe":
        return Subscribe(
            room=_int(frame, "room"), last_id=_int(frame, "last_id", minimum=0, nullable=True)
        )
    if kind == "unsubscribe":
        return Unsubscribe(room=_int(frame, "room"))
    if kind == "typing":
        return Typing(room=_int(frame, "room"))
    if kind == "read":
        return Read(room=_int(frame, "room"), message_id=_int(frame, "message_id"))
    if kind == "auth":
        return Auth(token=_str(frame, "token", max_length=4096))
    if kind == "call":
        return _call(frame, raw)
    raise FrameError(
        "unknown_type",
        lazy(
            "Unknown frame type. Use subscribe, unsubscribe, send, typing, read, ping, auth"
            " or call."
        ),
    )


def _call(frame: dict[str, Any], raw: str | bytes) -> Call:
    room = _int(frame, "room")
    signal = frame.get("signal")
    if not isinstance(signal, dict) or signal.get("kind") not in SIGNAL_KINDS:
        raise FrameError(
            "invalid_frame",
            lazy("`signal` must be an object whose `kind` is offer, answer, candidate or hangup."),
            field="signal",
            room=room,
        )
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    return Call(room=room, signal=signal, size=size)


# -- server frames ------------------------------------------------------------------------------

PONG = dumpb({"type": "pong"})


def frame(kind: str, **fields: Any) -> bytes:
    """One server frame, encoded once (the same bytes go to every subscriber)."""
    return dumpb({"type": kind, **fields})


def text_frame(payload: bytes) -> bytes:
    """`payload` as one unmasked, final, uncompressed RFC 6455 text frame (server to client)."""
    size = len(payload)
    if size < 126:
        return struct.pack(">BB", 0x81, size) + payload
    if size < 65536:
        return struct.pack(">BBH", 0x81, 126, size) + payload
    return struct.pack(">BBQ", 0x81, 127, size) + payload
