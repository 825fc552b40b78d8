"""The WebSocket endpoint `/ws/`: one connection per client carries every room and notification.

The handshake is authenticated (access token in `Authorization: Bearer` or `?token=`) and,
for browsers, checked against the allowed origins. After that `on_message` stays synchronous
and quick - Tornado reads the next frame only once it returns - handing work to the room's
actor, to the message writer (with a completion callback), or to a small task.

Outbound frames go straight into the socket's buffer; the bytes not yet taken by the kernel are
counted, and a client that lets them pile up past WS_OUTBOUND_MAX_BYTES is closed (4008) so it
never holds up anyone else. It reconnects and resumes with `last_id`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
import time
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import tornado.iostream
import tornado.web
import tornado.websocket

from skillswap import metrics
from skillswap.api.problems import ProblemAnswers, error_for
from skillswap.auth.bearer import bearer_token
from skillswap.auth.current_user import authenticate
from skillswap.auth.ratelimits import subject_for
from skillswap.chat import services as chat
from skillswap.deps import Deps
from skillswap.errors import (
    AppError,
    BadRequest,
    InvalidToken,
    MethodNotAllowed,
    PermissionDenied,
    TooManyRequests,
)
from skillswap.i18n import Message, Translator, lazy, negotiate_locale
from skillswap.lessons import calls
from skillswap.lessons.calls import CallRoom
from skillswap.models import User
from skillswap.notifications.services import notification_view
from skillswap.realtime import Realtime
from skillswap.realtime.connection_cap import TTL_SECONDS as SLOT_TTL_SECONDS
from skillswap.realtime.protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_RATE_LIMITED,
    CLOSE_SESSION_ENDED,
    CLOSE_SLOW_CONSUMER,
    CLOSE_TOKEN_EXPIRED,
    CLOSE_UNRESPONSIVE,
    PONG,
    Auth,
    Call,
    FrameError,
    Ping,
    Read,
    Send,
    Subscribe,
    Typing,
    Unsubscribe,
    frame,
    parse_frame,
    text_frame,
)

log = logging.getLogger("skillswap.realtime")

# Checked this long after the outbound bytes passed the limit: bytes the kernel takes within
# it were a burst (a replay), not a slow reader.
SLOW_CHECK_SECONDS = 0.2
# A lesson call's room, read for its first signal, is trusted this long for the next ones (a
# call's candidates come in bursts); a cancelled order stops its signals within it.
CALL_ROOM_SECONDS = 5.0
# Call signals being relayed, held here rather than by their socket: what a client sent before
# closing is still relayed and noted (a hang-up is often the last frame before a page closes).
_RELAYING: set[asyncio.Task[Any]] = set()


class RealtimeSocket(ProblemAnswers, tornado.websocket.WebSocketHandler):
    """One client's connection: authenticated at the handshake, then JSON frames both ways."""

    user: User
    user_id: int
    is_admin: bool
    translator: Translator

    def initialize(self) -> None:
        self.rooms: set[int] = set()
        self._expiry: asyncio.TimerHandle | None = None
        self._expires_at = 0
        self._unsent = 0
        self._outgoing: list[bytes] | None = None  # frames waiting for this loop turn's write
        self._slow_check: asyncio.TimerHandle | None = None
        self._gone = False
        self._tokens = 0.0
        self._tokens_at = 0.0
        self._last_pong = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._slot: str | None = None  # this socket's place under WS_MAX_CONNECTIONS_PER_USER
        # Sends waiting for the `message` rate limit, checked one at a time to keep their order.
        self._limited_sends: collections.deque[Send] = collections.deque()
        self._checking_sends = False
        # Call signals waiting to be relayed, one at a time to keep their order.
        self._signals: collections.deque[Call] = collections.deque()
        self._relaying = False
        self._call_rooms: dict[int, tuple[float, CallRoom]] = {}
        self._counted = False  # in the open connections gauge

    @property
    def deps(self) -> Deps:
        deps: Deps = self.application.settings["deps"]
        return deps

    @property
    def realtime(self) -> Realtime:
        return self.deps.realtime

    # -- handshake -------------------------------------------------------------------------------

    async def prepare(self) -> None:
        # Tornado's own refusals in `get` (no upgrade, a foreign origin) are plain text: the
        # same checks come first here, as problems. A foreign page learns nothing of its token.
        if self.request.method != "GET":
            raise MethodNotAllowed()
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            self._refuse(
                BadRequest(
                    lazy("This address takes WebSocket connections only."),
                    code="websocket_required",
                )
            )
            return
        if self._foreign_origin():
            self._refuse(
                PermissionDenied(
                    lazy("Pages from this origin may not connect here."),
                    code="origin_not_allowed",
                )
            )
            return
        token = self._token_from_request()
        try:
            if not token:
                raise InvalidToken()
            user, claims = await authenticate(self.deps, token)
        except InvalidToken as refused:  # TokenExpired keeps its own code
            self._refuse(refused)
            return
        slot = secrets.token_hex(8)
        if not await self.realtime.connections.claim(user.id, slot):
            limit = self.realtime.connections.limit
            self._refuse(
                TooManyRequests(
                    lazy(
                        "At most {max} connections may be open at once; close one first.", max=limit
                    ),
                    code="too_many_connections",
                    headers={"Retry-After": str(SLOT_TTL_SECONDS)},
                    extra={"limit": limit},
                )
            )
            return
        self._slot = slot
        self.user = user
        self.user_id = user.id
        self.is_admin = user.is_admin
        self._expires_at = claims.expires_at
        self.translator = self.deps.catalogs.get(
            negotiate_locale(
                user_locale=user.locale,
                accept_language=self.request.headers.get("Accept-Language"),
                default=self.deps.settings.default_locale,
            )
        )

    def _token_from_request(self) -> str | None:
        from_header = bearer_token(self.request.headers.get("Authorization"))
        if from_header is not None:
            return from_header
        token = self.get_query_argument("token", None)
        if token is not None:
            # The access log prints the URI: keep the token out of it.
            self.request.uri = self.request.path + "?token=[redacted]"
        return token or None

    def _refuse(self, error: AppError) -> None:
        """End the handshake with `error` as problem+json, in the language the client asks."""
        self.write_problem(error)

    def _foreign_origin(self) -> bool:
        """Tornado's cross-origin rule for WebSockets (repeated after `prepare`, in `get`), with
        `check_origin` deciding the origins that are not this host."""
        headers = self.request.headers
        fetch_site = headers.get("Sec-Fetch-Site")
        origin = headers.get("Origin")
        if fetch_site in {"same-origin", "none"}:
            return False
        if fetch_site is None and (origin is None or self._origin_is_this_host(origin)):
            return False
        return not (origin and self.check_origin(origin))

    def _origin_is_this_host(self, origin: str) -> bool:
        return urlsplit(origin).netloc.lower() == self.request.headers.get("Host", "").lower()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """A handshake that fails otherwise (the database down, say) is a problem too, never
        Tornado's page; what went wrong is logged, not told."""
        exc_info = kwargs.get("exc_info")
        self._refuse(error_for(status_code, exc_info[1] if exc_info else None))

    def check_origin(self, origin: str) -> bool:
        """A browser page from another origin must be listed in WS_ALLOWED_ORIGINS.

        Tornado has already let through pages of this very host and clients that send no
        Origin (apps and servers are not browsers); an empty list allows nothing more."""
        allowed = self.deps.settings.ws_allowed_origins
        return "*" in allowed or origin.rstrip("/") in {o.rstrip("/") for o in allowed}

    def get_compression_options(self) -> dict[str, Any] | None:
        return None  # per-message deflate costs ~100 KB of zlib state per connection

    @property
    def max_message_size(self) -> int:
        return self.deps.settings.ws_max_frame_bytes

    def open(self, *args: Any, **kwargs: Any) -> None:
        """The socket is open: join the hub and watch the token's expiry."""
        loop = asyncio.get_running_loop()
        settings = self.deps.settings
        self._tokens = float(settings.ws_rate_burst)
        self._tokens_at = self._last_pong = loop.time()
        self.set_nodelay(True)
        self._arm_expiry()
        self.realtime.hub.attach(self)
        metrics.WEBSOCKET_CONNECTIONS.inc()
        self._counted = True

    def _arm_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._expires_at - time.time())
        self._expiry = loop.call_later(delay, self._token_expired)

    def _token_expired(self) -> None:
        self._expiry = None
        self._leave(CLOSE_TOKEN_EXPIRED, "token expired")

    # -- frames in -------------------------------------------------------------------------------

    def on_message(self, message: str | bytes) -> None:
        """Rate-limit, parse and dispatch one client frame, without awaiting anything."""
        if self._gone:
            return
        metrics.WEBSOCKET_MESSAGES.labels("in").inc()
        if not self._take_token():
            self._leave(CLOSE_RATE_LIMITED, "too many frames")
            return
        try:
            command = parse_frame(message)
        except FrameError as exc:
            self.send_error_frame(exc.code, exc.detail, **exc.context)
            return
        if isinstance(command, Ping):
            self.send_frame(PONG)
        elif isinstance(command, Send):
            self._send(command)
        elif isinstance(command, Subscribe):
            self._subscribe(command)
        elif isinstance(command, Unsubscribe):
            if command.room in self.rooms:
                self.rooms.discard(command.room)
                actor = self.realtime.hub.rooms.get(command.room)
                if actor is not None:
                    actor.put(("unsub", self))
        elif isinstance(command, Typing):
            self.realtime.hub.room(command.room).put(("typing", self))
        elif isinstance(command, Read):
            self._spawn(self._read(command))
        elif isinstance(command, Auth):
            self._spawn(self._reauthenticate(command.token))
        elif isinstance(command, Call):
            self._call(command)

    def _take_token(self) -> bool:
        settings = self.deps.settings
        now = asyncio.get_running_loop().time()
        self._tokens = min(
            float(settings.ws_rate_burst),
            self._tokens + (now - self._tokens_at) * settings.ws_rate_per_second,
        )
        self._tokens_at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _subscribe(self, command: Subscribe) -> None:
        limit = self.deps.settings.ws_max_subscriptions
        if command.room not in self.rooms and len(self.rooms) >= limit:
            self.send_error_frame(
                "too_many_subscriptions",
                lazy("Follow at most {max} rooms on one connection.", max=limit),
                room=command.room,
            )
            return
        self.rooms.add(command.room)
        self.realtime.hub.room(command.room).put(("sub", self, command.last_id))

    def _send(self, command: Send) -> None:
        if self.deps.rate_limits.rate("message") is None:
            self._queue_send(command)
            return
        # The `message` policy is one budget for REST and WebSocket sends, kept in Redis: its
        # answer is awaited, off this method, and sends are checked in the order they came.
        self._limited_sends.append(command)
        if not self._checking_sends:
            self._checking_sends = True
            self._spawn(self._check_sends())

    async def _check_sends(self) -> None:
        try:
            while self._limited_sends and not self._gone:
                command = self._limited_sends.popleft()
                decision = await self.deps.rate_limits.take(
                    "message", subject_for(self.user_id, None)
                )
                if decision is not None and not decision.allowed:
                    # Refused, not disconnected: the client waits `retry_after` and sends again.
                    self._send_app_error(
                        decision.refusal(),
                        room=command.room,
                        client_id=command.client_id,
                        policy=decision.policy,
                        retry_after=decision.retry_after_seconds,
                    )
                    continue
                self._queue_send(command)
        finally:
            self._checking_sends = False

    def _queue_send(self, command: Send) -> None:
        try:
            sent = chat.queue_message(
                self.deps,
                actor=self.user,
                room_id=command.room,
                body=command.body,
                client_id=command.client_id,
            )
        except AppError as exc:
            self._send_app_error(exc, room=command.room, client_id=command.client_id)
            return
        sent.add_done_callback(partial(self._sent, command.room, command.client_id))

    def _sent(self, room_id: int, client_id: str | None, outcome: asyncio.Future[Any]) -> None:
        if outcome.cancelled():
            return
        error = outcome.exception()
        if error is None:
            message = chat.message_public(outcome.result().message)
            self.send_frame(frame("ack", room=room_id, client_id=client_id, message=message))
        elif isinstance(error, AppError):
            self._send_app_error(error, room=room_id, client_id=client_id)
        else:
            self.send_error_frame(
                "internal_error",
                lazy("Something went wrong on our side. The error was logged."),
                room=room_id,
                client_id=client_id,
            )

    def _call(self, command: Call) -> None:
        limit = self.deps.settings.call_signal_max_bytes
        if command.size > limit:
            self.send_error_frame(
                "signal_too_large",
                lazy("A call signal may be at most {max} bytes.", max=limit),
                room=command.room,
                max=limit,
            )
            return
        self._signals.append(command)
        if not self._relaying:
            self._relaying = True
            task = asyncio.create_task(self._relay_signals())
            _RELAYING.add(task)
            task.add_done_callback(_RELAYING.discard)

    async def _relay_signals(self) -> None:
        try:
            while self._signals:
                command = self._signals.popleft()
                try:
                    await self._relay(command)
                except AppError as exc:  # with the call's window, when it is not open
                    self._send_app_error(exc, room=command.room, **exc.extra)
                except Exception:
                    log.exception("relaying a call signal in room %s failed", command.room)
                    self.send_error_frame(
                        "internal_error",
                        lazy("Something went wrong on our side. The error was logged."),
                        room=command.room,
                    )
        finally:
            self._relaying = False

    async def _relay(self, command: Call) -> None:
        """Hand one signal to the room's other participant, on whatever node they are; the
        first offer of a call and its hang-up are noted in the room's history."""
        room = await self._call_room(command.room)
        refusal = calls.call_refusal(room, self.deps.settings, self.deps.clock())
        if refusal is not None:
            self._call_rooms.pop(command.room, None)  # the order may be accepted meanwhile
            raise refusal
        self.realtime.hub.publish_call(
            room.other(self.user_id),
            {"room": command.room, "from": self.user_id, "signal": command.signal},
        )
        kind = command.signal["kind"]
        if kind == "offer":
            await calls.call_started(self.deps, room=room, actor=self.user)
        elif kind == "hangup":
            await calls.call_ended(self.deps, room=room, actor=self.user)

    async def _call_room(self, room_id: int) -> CallRoom:
        """The lesson of the room, if this user is one of its two participants."""
        now = asyncio.get_running_loop().time()
        cached = self._call_rooms.get(room_id)
        if cached is not None and now - cached[0] < CALL_ROOM_SECONDS:
            return cached[1]
        room = await calls.room_call(self.deps.db, room_id)
        if room is None:
            state = await chat.load_room_state(self.deps.db, room_id)
            if state is not None and self.user_id in state.members:
                raise calls.lesson_not_found()
            raise chat.room_not_found()
        if not room.has(self.user_id):
            raise chat.room_not_found()
        self._call_rooms[room_id] = (now, room)
        return room

    async def _read(self, command: Read) -> None:
        try:
            await chat.mark_read(
                self.deps, actor=self.user, room_id=command.room, message_id=command.message_id
            )
        except AppError as exc:
            self._send_app_error(exc, room=command.room)

    async def _reauthenticate(self, token: str) -> None:
        try:
            user, claims = await authenticate(self.deps, token)
            if user.id != self.user_id:
                raise InvalidToken()
        except InvalidToken as exc:
            self._send_app_error(exc)
            return
        if claims.expires_at > self._expires_at:
            self._expires_at = claims.expires_at
            self._arm_expiry()
        self.send_frame(frame("auth", expires_at=self._expires_at))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- frames out ------------------------------------------------------------------------------

    def send_frame(self, data: bytes) -> None:
        """Queue one text frame for this client, unless it has fallen too far behind.

        Frames queued during one turn of the event loop go out together in one write (one
        system call), written as RFC 6455 frames straight to the connection's stream: with
        compression off a server frame is a two-to-ten-byte header and the payload, and this
        skips the task Tornado's write_message creates for every frame.
        """
        if self._gone:
            return
        if self._outgoing is None:
            self._outgoing = []
            asyncio.get_running_loop().call_soon(self._flush)
        self._outgoing.append(data)

    def _flush(self) -> None:
        frames, self._outgoing = self._outgoing or [], None
        if self._gone or not frames:
            return
        connection = self.ws_connection
        stream = connection.stream if connection is not None else None
        if connection is None or stream is None or connection.is_closing():
            self._leave(None, None)
            return
        payload = b"".join(text_frame(data) for data in frames)
        metrics.WEBSOCKET_MESSAGES.labels("out").inc(len(frames))
        try:
            written = stream.write(payload)
        except tornado.iostream.StreamClosedError:
            self._leave(None, None)
            return
        self._unsent += len(payload)
        written.add_done_callback(partial(self._flushed, len(payload)))
        limit = self.deps.settings.ws_outbound_max_bytes
        if self._unsent > 8 * limit:
            self._leave(CLOSE_SLOW_CONSUMER, "slow consumer")
        elif self._unsent > limit and self._slow_check is None:
            self._slow_check = asyncio.get_running_loop().call_later(
                SLOW_CHECK_SECONDS, self._check_slow
            )

    def _flushed(self, size: int, written: asyncio.Future[Any]) -> None:
        self._unsent -= size
        if not written.cancelled():
            written.exception()  # retrieved: a write to a closed socket is expected here

    def _check_slow(self) -> None:
        self._slow_check = None
        if self._unsent > self.deps.settings.ws_outbound_max_bytes:
            self._leave(CLOSE_SLOW_CONSUMER, "slow consumer")

    def send_error_frame(self, code: str, detail: Message, **context: Any) -> None:
        """An `error` frame in the user's language; the socket stays open."""
        self.send_frame(frame("error", code=code, detail=detail.render(self.translator), **context))

    def _send_app_error(self, exc: AppError, **context: Any) -> None:
        fields = {k: v for k, v in context.items() if v is not None}
        if exc.errors:
            fields["errors"] = {
                name: [self.translator.text(m) for m in messages]
                for name, messages in exc.errors.items()
            }
        self.send_frame(
            frame("error", code=exc.code, detail=self.translator.text(exc.detail), **fields)
        )

    def render_notification(self, record: dict[str, Any]) -> bytes:
        """A notification frame in this user's language."""
        return frame("notification", notification=notification_view(record, self.translator))

    # -- liveness and leaving ---------------------------------------------------------------------

    def on_pong(self, data: bytes) -> None:
        self._last_pong = asyncio.get_running_loop().time()

    def heartbeat(self, now: float, interval: float) -> None:
        """Called by the hub's pinger: close a client that missed the previous ping."""
        if self._gone:
            return
        if now - self._last_pong > 2.5 * interval:
            self._leave(CLOSE_UNRESPONSIVE, "no pong")
            return
        try:
            self.ping(b"")
        except tornado.websocket.WebSocketClosedError:
            self._leave(None, None)

    def going_away(self) -> None:
        """The node is shutting down: the client should reconnect, to any node, and resume."""
        self._leave(CLOSE_GOING_AWAY, "server shutting down")

    def session_ended(self) -> None:
        """The user's sessions were ended (a ban): forget the user on this node and close."""
        # This node's copy of the user would otherwise let a fresh handshake in until it
        # expired (AUTH_USER_CACHE_SECONDS); the tokens themselves are denied everywhere.
        self.deps.signed_in.forget(self.user_id)
        self._leave(CLOSE_SESSION_ENDED, "session ended")

    def _leave(self, code: int | None, reason: str | None) -> None:
        if self._gone:
            return
        self._gone = True
        self.realtime.hub.detach(self)
        if code is not None:
            self.close(code, reason)

    def on_finish(self) -> None:
        # Also called once the 101 is written; any other status means the handshake was
        # refused after its slot was claimed.
        if self.get_status() != 101:
            self._release_slot()

    def _release_slot(self) -> None:
        if self._slot is not None:
            self.realtime.connections.release(self.user_id, self._slot)
            self._slot = None

    def on_close(self) -> None:
        """The socket closed, by either side."""
        self._gone = True
        self._release_slot()
        if self._counted:
            self._counted = False
            metrics.WEBSOCKET_CONNECTIONS.dec()
        for handle in (self._expiry, self._slow_check):
            if handle is not None:
                handle.cancel()
        self._expiry = self._slow_check = None
        if hasattr(self, "user_id"):
            self.realtime.hub.closed(self)
        for task in self._tasks:
            task.cancel()


routes = [tornado.web.url(r"/ws/?$", RealtimeSocket)]
