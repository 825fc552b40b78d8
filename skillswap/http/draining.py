"""The HTTP server of a node, and how it stops without cutting off a request it took.

Tornado's `stop()` + `close_all_connections()` closes every connection at once: a request being
handled loses its answer (the client sees a reset), and connections the kernel had already
accepted into the listening socket's backlog are reset when that socket closes. `DrainingServer`
stops politely instead (`drain`):

1. the backlog is accepted, then the listening sockets are closed: nothing new comes in;
2. every answer from then on says `Connection: close` and ends its connection;
3. a connection with a request in progress is closed once that request is answered; one
   without is closed once it has been quiet for IDLE_GRACE_SECONDS (closing it at once would
   race a client that is writing its next request on it: that request would be lost, unread);
4. whatever is still open at the deadline is closed anyway.

WebSocket connections leave the HTTP server at their upgrade: the realtime hub closes them (1001).
Tornado has no public hook for "a request is in progress on this connection" nor for "answer and
close", so this reads `HTTP1Connection._finish_future` and sets `_disconnect_on_finish`, both
stable since Tornado 4.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any

import tornado.httpserver
import tornado.httputil
import tornado.iostream
from tornado.http1connection import HTTP1Connection, HTTP1ServerConnection

log = logging.getLogger("skillswap.http")

# While draining, a connection with no request in progress is closed once it has been quiet
# (since it was accepted or its last answer) this long: a client in the middle of sending its
# next request gets it answered, with `Connection: close`, instead of a reset.
IDLE_GRACE_SECONDS = 1.0
POLL_SECONDS = 0.02


class DrainingServer(tornado.httpserver.HTTPServer):
    """Tornado's HTTP server, knowing which requests are in progress so that it can drain."""

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        super().initialize(*args, **kwargs)
        self._in_progress: dict[HTTP1Connection, tornado.iostream.IOStream] = {}
        # Per open connection: when it was accepted or last answered.
        self._active_at: weakref.WeakKeyDictionary[tornado.iostream.IOStream, float] = (
            weakref.WeakKeyDictionary()
        )
        self.draining = False

    # -- tracking --------------------------------------------------------------------------------

    def handle_stream(self, stream: tornado.iostream.IOStream, address: Any) -> None:
        self._active_at[stream] = time.monotonic()
        super().handle_stream(stream, address)

    def start_request(
        self, server_conn: object, request_conn: tornado.httputil.HTTPConnection
    ) -> tornado.httputil.HTTPMessageDelegate:
        delegate = super().start_request(server_conn, request_conn)
        if isinstance(request_conn, HTTP1Connection):
            return _Tracked(self, delegate, request_conn)
        return delegate  # pragma: no cover - HTTP/1 only here

    def request_began(self, conn: HTTP1Connection) -> None:
        """The request's headers are in: it is in progress until its answer is written."""
        stream = conn.stream
        self._in_progress[conn] = stream
        if self.draining:
            conn._disconnect_on_finish = True
        conn._finish_future.add_done_callback(lambda _f: self._request_ended(conn, stream))

    def _request_ended(self, conn: HTTP1Connection, stream: tornado.iostream.IOStream) -> None:
        self._in_progress.pop(conn, None)
        self._active_at[stream] = time.monotonic()

    @property
    def requests_in_progress(self) -> int:
        return len(self._in_progress)

    # -- stopping --------------------------------------------------------------------------------

    def stop_accepting(self) -> None:
        """Accept what the kernel already queued, then close the listening sockets."""
        for sock in list(self._sockets.values()):
            while True:
                try:
                    connection, address = sock.accept()
                except OSError:  # BlockingIOError: the backlog is empty
                    break
                connection.setblocking(False)
                self._handle_connection(connection, address)
        self.stop()

    async def drain(self, *, within: float) -> bool:
        """Stop accepting, answer the requests in progress, close every connection; whether
        everything finished within `within` seconds (what did not is closed regardless)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        self.stop_accepting()
        self.draining = True
        for conn in self._in_progress:
            conn._disconnect_on_finish = True
        while self._connections and loop.time() < deadline:
            self._close_idle()
            await asyncio.sleep(POLL_SECONDS)
        left = self.requests_in_progress
        if left:
            log.warning("%d requests still in progress at the shutdown deadline: closed", left)
        await self.close_all_connections()
        return left == 0

    def _close_idle(self) -> None:
        busy = set(self._in_progress.values())
        now = time.monotonic()
        for server_conn in list(self._connections):
            assert isinstance(server_conn, HTTP1ServerConnection)
            stream = server_conn.stream
            if stream in busy or now - self._active_at.get(stream, 0.0) < IDLE_GRACE_SECONDS:
                continue
            stream.close()


class _Tracked(tornado.httputil.HTTPMessageDelegate):
    """Tells the server when a request's headers arrive; everything else goes to `inner`."""

    def __init__(
        self,
        server: DrainingServer,
        inner: tornado.httputil.HTTPMessageDelegate,
        conn: HTTP1Connection,
    ) -> None:
        self.server = server
        self.inner = inner
        self.conn = conn

    def headers_received(
        self,
        start_line: tornado.httputil.RequestStartLine | tornado.httputil.ResponseStartLine,
        headers: tornado.httputil.HTTPHeaders,
    ) -> Any:
        self.server.request_began(self.conn)
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Any:
        return self.inner.data_received(chunk)

    def finish(self) -> None:
        self.inner.finish()

    def on_connection_close(self) -> None:
        self.inner.on_connection_close()
