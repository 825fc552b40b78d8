"""What a request meets before any handler runs: size limits and framing, answered as problems.

Tornado's own limits end a connection with a bare `400 Bad Request` (a body over
`max_body_size`) or with no answer at all (headers over `max_header_size`), and a body refused
early is followed by an immediate close, which resets the connection while the client is still
sending: most clients then never read the answer. Here every request passes through
`RequestGuard`, which knows the limit of the handler the request is routed to and refuses:

- headers over MAX_HEADER_BYTES with 431, a declared body over the limit with 413, a body whose
  framing cannot be trusted (Content-Length not a number, two different ones, Content-Length
  with Transfer-Encoding, a coding other than chunked) with 400 - all before reading the body;
- a chunked body that grows past the limit with 413 as soon as it does.

Each answer is problem+json with a request id and `Connection: close`. The connection is then
closed politely: what the client still sends is read and dropped (for at most LINGER_SECONDS),
so that the close does not destroy the answer in the client's receive buffer (RFC 9112 9.6).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import Awaitable
from typing import Any

import tornado.httputil
import tornado.iostream
import tornado.web
from tornado.http1connection import HTTP1Connection

from skillswap.deps import Deps
from skillswap.errors import (
    AppError,
    BadRequest,
    PayloadTooLarge,
    RequestHeadersTooLarge,
)
from skillswap.http.base import body_limit, problem_response
from skillswap.i18n import lazy

# Headers past this are answered with 431 (Tornado's default limit, so no client that worked
# stops working); the server reads up to HEADER_READ_CAP to be able to answer, and past that
# it cuts the connection, as it cannot tell where the request ends.
MAX_HEADER_BYTES = 65_536
HEADER_READ_CAP = 1_048_576
# How long a refused client may go on sending before its connection is closed anyway.
LINGER_SECONDS = 10.0
_DIGITS = re.compile(r"^[0-9]+$")
# Tornado enforces no limit of its own on a guarded request: RequestGuard does.
_UNLIMITED = 1 << 62


class GuardedApplication(tornado.web.Application):
    """The Tornado application with every request routed through a `RequestGuard`."""

    def get_handler_delegate(  # type: ignore[override]  # a delegate around Tornado's
        self,
        request: tornado.httputil.HTTPServerRequest,
        target_class: type[tornado.web.RequestHandler],
        target_kwargs: dict[str, Any] | None = None,
        path_args: list[bytes] | None = None,
        path_kwargs: dict[str, bytes] | None = None,
    ) -> tornado.httputil.HTTPMessageDelegate:
        inner = super().get_handler_delegate(
            request, target_class, target_kwargs, path_args, path_kwargs
        )
        deps: Deps = self.settings["deps"]
        return RequestGuard(inner, request, deps, limit=body_limit(target_class, deps.settings))


class RequestGuard(tornado.httputil.HTTPMessageDelegate):
    """Passes a request on to its handler unless its headers or body are over the limits."""

    def __init__(
        self,
        inner: tornado.httputil.HTTPMessageDelegate,
        request: tornado.httputil.HTTPServerRequest,
        deps: Deps,
        *,
        limit: int,
    ) -> None:
        self.inner = inner
        self.request = request
        self.deps = deps
        self.limit = limit
        self.received = 0
        self.refused = False
        self._written: Awaitable[None] | None = None
        self._deadline: asyncio.TimerHandle | None = None

    # -- before the body --------------------------------------------------------------------------

    def headers_received(
        self,
        start_line: tornado.httputil.RequestStartLine | tornado.httputil.ResponseStartLine,
        headers: tornado.httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        error = self._refusal_before_body(start_line, headers)
        if error is not None:
            return self._refuse_now(error)
        connection = self.request.connection
        if isinstance(connection, HTTP1Connection):
            connection.set_max_body_size(_UNLIMITED)
        return self.inner.headers_received(start_line, headers)

    def _refusal_before_body(
        self,
        start_line: tornado.httputil.RequestStartLine | tornado.httputil.ResponseStartLine,
        headers: tornado.httputil.HTTPHeaders,
    ) -> AppError | None:
        size = len(str(start_line)) + sum(
            len(name) + len(value) + 4 for name, value in headers.get_all()
        )
        if size > MAX_HEADER_BYTES:
            return RequestHeadersTooLarge()
        lengths = headers.get_list("Content-Length")
        coding = headers.get("Transfer-Encoding")
        values = {v.strip() for value in lengths for v in value.split(",")}
        if lengths and (len(values) != 1 or not _DIGITS.match(next(iter(values)))):
            return _malformed(lazy("Content-Length must be one whole number."))
        if coding is not None and (lengths or coding.strip().lower() != "chunked"):
            return _malformed(
                lazy("Send the body with a Content-Length or as chunked, not both or otherwise.")
            )
        if lengths and int(next(iter(values))) > self.limit:
            return PayloadTooLarge()
        return None

    def _refuse_now(self, error: AppError) -> Awaitable[None] | None:
        """Answer before the body is read: take the stream over, answer, then linger."""
        self.refused = True
        connection = self.request.connection
        if not isinstance(connection, HTTP1Connection):  # pragma: no cover - HTTP/1 only here
            return None
        status, headers, body = problem_response(self.deps, self.request, error)
        headers["Connection"] = "close"
        reason = tornado.httputil.responses.get(status, "Unknown")
        stream = connection.detach()
        head = [f"HTTP/1.1 {status} {reason}"]
        head += [f"{name}: {value}" for name, value in headers.get_all()]
        payload = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        return _answer_and_linger(stream, payload)

    # -- the body ---------------------------------------------------------------------------------

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self.refused:
            return None  # dropped: read only so that the client gets to read the answer
        self.received += len(chunk)
        if self.received > self.limit:
            self._refuse_midway(PayloadTooLarge())
            return None
        return self.inner.data_received(chunk)

    def _refuse_midway(self, error: AppError) -> None:
        """A chunked body grew past the limit: answer now, keep reading (and dropping) it."""
        self.refused = True
        self.inner.on_connection_close()  # the handler never sees this request
        connection = self.request.connection
        if not isinstance(connection, HTTP1Connection):  # pragma: no cover - HTTP/1 only here
            return
        status, headers, body = problem_response(self.deps, self.request, error)
        headers["Connection"] = "close"
        headers["Content-Length"] = str(len(body))
        start = tornado.httputil.ResponseStartLine(
            "HTTP/1.1", status, tornado.httputil.responses.get(status, "Unknown")
        )
        self._written = connection.write_headers(start, headers, body)
        self._deadline = asyncio.get_running_loop().call_later(LINGER_SECONDS, self._close)

    def finish(self) -> None:
        if not self.refused:
            self.inner.finish()
            return
        # The whole body is in: closing now resets nothing. The answer was written already.
        if self._written is None:
            self._close()
        else:
            asyncio.ensure_future(self._written).add_done_callback(lambda _f: self._close())

    def on_connection_close(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        if not self.refused:
            self.inner.on_connection_close()

    def _close(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        connection = self.request.connection
        if isinstance(connection, HTTP1Connection):
            connection.close()


def _malformed(detail: Any) -> BadRequest:
    return BadRequest(detail, code="malformed_request")


async def _answer_and_linger(stream: tornado.iostream.IOStream, payload: bytes) -> None:
    """Write `payload`, end our side, and drop what the client still sends, then close."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LINGER_SECONDS
    try:
        await stream.write(payload)
        with contextlib.suppress(OSError):
            stream.socket.shutdown(socket.SHUT_WR)
        while (left := deadline - loop.time()) > 0:
            await asyncio.wait_for(stream.read_bytes(65_536, partial=True), left)
    except (tornado.iostream.StreamClosedError, TimeoutError):
        pass
    finally:
        stream.close()
