"""Problem answers (RFC 9457) for any Tornado handler: the REST API's and the WebSocket handshake's.

What a refused or failed request is told, whichever layer answers it: the error a failure is
shown as (`error_for`), the request's id, and the whole problem+json answer with its headers.
`skillswap.http` and `skillswap.realtime` both build on this module; it imports neither.
"""

from __future__ import annotations

import functools
import re
import uuid
from typing import TYPE_CHECKING, Any

import redis.exceptions
import sqlalchemy.exc
import tornado.httputil
import tornado.web

from skillswap.api.encoding import dumpb
from skillswap.errors import (
    AppError,
    BadRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RequestHeadersTooLarge,
    ServiceUnavailable,
    problem_document,
)
from skillswap.i18n import N_, lazy, negotiate_locale

if TYPE_CHECKING:
    from skillswap.deps import Deps

CORS_EXPOSED_HEADERS = (
    "X-Request-ID, Idempotent-Replayed, Retry-After, Location, RateLimit, RateLimit-Policy, ETag"
)
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

_GENERIC_BY_STATUS: dict[int, type[AppError]] = {
    400: BadRequest,
    403: PermissionDenied,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    431: RequestHeadersTooLarge,
}


def error_for(status_code: int, exc: BaseException | None) -> AppError:
    """The error a client is shown for whatever ended its request (a bug: only that it failed)."""
    if isinstance(exc, AppError):
        return exc
    if isinstance(exc, tornado.web.HTTPError):
        status_code = exc.status_code
    if status_code < 500:
        error = _GENERIC_BY_STATUS.get(status_code, BadRequest)()
        error.status = status_code
        return error
    if exc is not None and is_outage(exc):
        return outage_error()
    error = AppError(lazy("Something went wrong on our side. The error was logged."))
    error.status = 500
    error.code = "internal_error"
    error.title = N_("Internal server error")
    return error


# What a store that cannot be reached raises: the request failed through no fault of its own and
# may well work in a moment (Redis restarting, the database failing over).
_OUTAGES: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection came free
    ConnectionError,
    TimeoutError,
)
OUTAGE_RETRY_AFTER_SECONDS = 5


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` means a store this node needs (Redis, the database) could not be reached."""
    if isinstance(exc, _OUTAGES):
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        return bool(exc.connection_invalidated) or isinstance(exc.orig, ConnectionError | OSError)
    return False


def outage_error() -> AppError:
    """A 503 with `Retry-After`: the client may try again shortly, and the operator is told."""
    return ServiceUnavailable(
        lazy("A service this request needs is unreachable for a moment. Try again shortly."),
        code="dependency_unavailable",
        headers={"Retry-After": str(OUTAGE_RETRY_AFTER_SECONDS)},
    )


def request_id_for(request: tornado.httputil.HTTPServerRequest) -> str:
    """The id a request is known by in logs and answers: the client's X-Request-ID when sane."""
    incoming = request.headers.get("X-Request-ID", "")
    return incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex


def allowed_methods(handler: type[tornado.web.RequestHandler]) -> list[str]:
    """The verbs `handler` serves, for `Allow` (HEAD wherever GET is)."""
    verbs = [
        verb for verb in ("GET", "POST", "PUT", "PATCH", "DELETE") if implements(handler, verb)
    ]
    if "GET" in verbs and implements(handler, "HEAD"):
        verbs.insert(1, "HEAD")
    if implements(handler, "OPTIONS"):
        verbs.append("OPTIONS")
    return verbs


def problem_response(
    deps: Deps,
    request: tornado.httputil.HTTPServerRequest,
    error: AppError,
    *,
    request_id: str | None = None,
) -> tuple[int, tornado.httputil.HTTPHeaders, bytes]:
    """`error` as a whole answer (status, headers, body), for code that runs without a handler."""
    translator = deps.catalogs.get(
        negotiate_locale(
            user_locale=None,
            accept_language=request.headers.get("Accept-Language"),
            default=deps.settings.default_locale,
        )
    )
    request_id = request_id or request_id_for(request)
    body = dumpb(problem_document(error, translator, instance=request.path, request_id=request_id))
    headers = tornado.httputil.HTTPHeaders(error.headers)
    headers["Content-Type"] = "application/problem+json; charset=utf-8"
    headers["Content-Length"] = str(len(body))
    headers["Cache-Control"] = "no-store"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Request-ID"] = request_id
    origin = request.headers.get("Origin")
    if origin and origin in deps.settings.cors_origins:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Expose-Headers"] = CORS_EXPOSED_HEADERS
        headers["Vary"] = "Origin"
    return error.status, headers, body


class ProblemAnswers(tornado.web.RequestHandler):
    """For handlers outside BaseHandler (files, the WebSocket handshake): errors as problems."""

    @functools.cached_property
    def request_id(self) -> str:
        return request_id_for(self.request)

    def write_problem(self, error: AppError) -> None:
        """Finish the request with `error` as problem+json (keeping the handler's own headers)."""
        deps: Deps = self.application.settings["deps"]
        status, headers, body = problem_response(
            deps, self.request, error, request_id=self.request_id
        )
        self.set_status(status)
        for name, value in headers.get_all():
            if name != "Content-Length":
                self.set_header(name, value)
        if error.status == 405:
            self.set_header("Allow", ", ".join(allowed_methods(type(self))))
        self.finish(body)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        self.write_problem(error_for(status_code, exc_info[1] if exc_info else None))


def implements(handler: type[tornado.web.RequestHandler], verb: str) -> bool:
    """Whether `handler` serves `verb` (RequestHandler defines every verb as a 405; only an
    override is a real endpoint)."""
    name = verb.lower()
    return getattr(handler, name, None) not in (
        None,
        getattr(tornado.web.RequestHandler, name, None),
    )
