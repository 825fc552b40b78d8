"""The base API handler: authentication in `prepare`, JSON in and out, problem+json errors."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

import tornado.httputil
import tornado.web
from pydantic import BaseModel

from skillswap import idempotency, metrics
from skillswap.admin import audit
from skillswap.api.encoding import dumpb
from skillswap.api.input_rules import (
    MAX_JSON_DEPTH,
    UNSTORABLE_TEXT,
    MalformedJson,
    UnstorableText,
    has_unstorable_text,
    load_json,
    printable_name,
)
from skillswap.api.paging import PageParams as PageParams  # where http modules find it
from skillswap.api.problems import (
    CORS_EXPOSED_HEADERS,
    allowed_methods,
    error_for,
    implements,
    is_outage,
    request_id_for,
)
from skillswap.api.problems import ProblemAnswers as ProblemAnswers  # where http modules find it
from skillswap.api.problems import problem_response as problem_response
from skillswap.auth.bearer import bearer_token
from skillswap.auth.current_user import authenticate
from skillswap.auth.ratelimits import subject_for
from skillswap.deps import Deps
from skillswap.errors import (
    AppError,
    BadRequest,
    InvalidToken,
    MethodNotAllowed,
    NotAuthenticated,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    problem_document,
)
from skillswap.http.query import NoQuery
from skillswap.http.validation import (
    MAX_ID,
    refuse_unstorable_text,
    unstorable_text_error,
    validate,
)
from skillswap.i18n import Translator, lazy, negotiate_locale
from skillswap.models import User
from skillswap.settings import Settings

log = logging.getLogger("skillswap.http")

M = TypeVar("M", bound=BaseModel)
HandlerMethod = Callable[..., Awaitable[None]]

CORS_ALLOWED_HEADERS = (
    "Authorization, Content-Type, Idempotency-Key, Accept-Language, X-Request-ID, If-None-Match"
)
# Every route under /api/ is served under /api/v1/ too (`with_version_aliases`).
API_PREFIX = "/api/"
API_V1_PREFIX = "/api/v1/"
# Far past the end of any list here, and small enough that OFFSET stays far inside BIGINT.
MAX_PAGE = 1_000_000

_MALFORMED_JSON = {
    "syntax": lazy("The body is not valid JSON."),
    "encoding": lazy("The body must be JSON encoded as UTF-8."),
    "depth": lazy("The body is nested more than {max} levels deep.", max=MAX_JSON_DEPTH),
}


def path_id(text: str) -> int:
    """An id from the URL path; one past BIGINT is looked up as 0, which no row has."""
    # Such an id must not reach the driver, which fails on it instead of finding nothing; as 0
    # it gets exactly the service's answer for any unknown id (its 404, its checks first).
    # Length first: int() refuses over 4,300 digits with a ValueError.
    if not text.isdecimal() or len(text.lstrip("0")) > len(str(MAX_ID)) or int(text) > MAX_ID:
        return 0
    return int(text)


def decode_argument_text(value: bytes, name: str | None) -> str:
    """A path (or query) argument as text: 400 naming it unless it is UTF-8 the database can store.

    Tornado decodes every path argument through here before the handler runs; `/media/%00`
    would otherwise reach the filesystem (and `%ED%A0%80` be a bare 400).
    """
    field = printable_name(name) if name else "path"
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationFailed(errors={field: [lazy("Must be valid UTF-8.")]}) from None
    if has_unstorable_text(text):
        raise ValidationFailed(errors={field: [lazy(UNSTORABLE_TEXT)]})
    return text


def body_limit(handler: type[tornado.web.RequestHandler], settings: Settings) -> int:
    """The largest body a request to `handler` may carry (uploads have their own, larger one)."""
    # Upload handlers check the file size themselves (with a clear message) below this cap.
    if getattr(handler, "accepts_uploads", False):
        return settings.max_upload_bytes + 65_536
    return settings.max_body_bytes


def public(method: HandlerMethod) -> HandlerMethod:
    """Mark a handler method as reachable without signing in (everything else needs a user)."""
    method.public = True  # type: ignore[attr-defined]
    return method


def takes_query(model: type[BaseModel]) -> Callable[[HandlerMethod], HandlerMethod]:
    """Declare the query arguments a handler method takes; read them with `self.query(model)`."""

    def declare(method: HandlerMethod) -> HandlerMethod:
        method.query_model = model  # type: ignore[attr-defined]
        return method

    return declare


def idempotent(method: HandlerMethod) -> HandlerMethod:
    """Honour `Idempotency-Key`: the same key and body replay the first response; another body 409."""

    @functools.wraps(method)
    async def wrapper(self: BaseHandler, *args: Any, **kwargs: Any) -> None:
        key = self.request.headers.get("Idempotency-Key")
        if key is None:
            await method(self, *args, **kwargs)
            return
        claim = await _claim_key(self, key)
        if claim.replay is not None:
            _replay(self, claim.replay)
            return
        assert claim.record_id is not None
        await _run_under_key(self, claim.record_id, method(self, *args, **kwargs))

    wrapper.idempotent = True  # type: ignore[attr-defined]
    return wrapper


def limited(policy: str) -> Callable[[HandlerMethod], HandlerMethod]:
    """Count each call against the rate-limit `policy` (skillswap.auth.ratelimits) first.

    Per signed-in user, else per client address; over the limit a 429 `rate_limited` with
    Retry-After, before the body is read. Every answer (success or refusal) carries the
    RateLimit-Policy and RateLimit fields. Put it above `idempotent`: a refusal must not be
    stored as the key's outcome, or the retry the client is told to make would replay it.
    """

    def decorate(method: HandlerMethod) -> HandlerMethod:
        @functools.wraps(method)
        async def wrapper(self: BaseHandler, *args: Any, **kwargs: Any) -> None:
            await self.take_rate_limit(policy)
            await method(self, *args, **kwargs)

        wrapper.rate_limit = policy  # type: ignore[attr-defined]
        return wrapper

    return decorate


async def _claim_key(handler: BaseHandler, key: str) -> idempotency.Claim:
    """Claim `key` for this caller and request, or find the response it already has."""
    if not key or len(key) > idempotency.MAX_KEY_LENGTH or has_unstorable_text(key):
        raise BadRequest(
            lazy("Idempotency-Key must be 1 to 255 characters."), code="invalid_idempotency_key"
        )
    settings = handler.deps.settings
    user = handler.current_user
    request = handler.request
    return await idempotency.claim_key(
        handler.deps.db,
        owner=f"user:{user.id}" if user else "anonymous",
        # One resource under both prefixes: a retry through the other one replays too.
        scope=idempotency.scope_of(request.method or "", unversioned(request.path)),
        key=key,
        fingerprint=idempotency.request_fingerprint(request.body or b""),
        ttl_seconds=settings.idempotency_ttl_seconds,
        lease_seconds=settings.idempotency_lease_seconds,
        now=handler.deps.clock(),
    )


def _replay(handler: BaseHandler, stored: idempotency.StoredResponse) -> None:
    """Answer with the first response to this key, marked as a replay."""
    handler.set_status(stored.status_code)
    handler.set_header("Content-Type", stored.content_type)
    handler.set_header("Idempotent-Replayed", "true")
    if stored.status_code == 201:  # a replayed creation names it again
        created = json.loads(stored.body)
        handler.set_header("Location", handler.absolute_url(handler.location_of(created)))
    handler.write(stored.body.encode("utf-8"))


async def _run_under_key(handler: BaseHandler, record_id: int, work: Awaitable[None]) -> None:
    """Run the use case holding the key, then keep its outcome (a refusal too) for replays."""
    db = handler.deps.db
    try:
        await work
    except AppError as exc:
        if exc.status >= 500:
            await idempotency.release_key(db, record_id=record_id)
        else:
            # A refused request is an outcome too: retrying the key must not change it.
            body = json.dumps(handler.problem_document(exc), ensure_ascii=False)
            await idempotency.store_outcome(
                db,
                record_id=record_id,
                response=idempotency.StoredResponse(exc.status, body, "application/problem+json"),
            )
        raise
    except BaseException:
        await idempotency.release_key(db, record_id=record_id)
        raise
    try:
        await idempotency.store_outcome(
            db,
            record_id=record_id,
            response=idempotency.StoredResponse(
                handler.get_status(), handler._json_written.decode("utf-8"), "application/json"
            ),
        )
    except Exception:
        # The use case succeeded; only its record failed. Free the key (a retry then runs
        # the use case again, which is safe) rather than leave it claimed until its lease ends.
        log.exception("request %s: storing the idempotent outcome failed", handler.request_id)
        with contextlib.suppress(Exception):
            await idempotency.release_key(db, record_id=record_id)


class BaseHandler(tornado.web.RequestHandler):
    """Resolves the user and locale in `prepare`, refuses unmarked methods to anonymous callers."""

    current_user: User | None
    translator: Translator
    access_claims: Any = None
    accepts_uploads = False  # True: the body may be a file up to MAX_UPLOAD_BYTES
    _json_written: bytes = b""
    _query: BaseModel | None = None
    _rate_limit_headers: dict[str, str] | None = None  # kept on error answers too

    @property
    def deps(self) -> Deps:
        deps: Deps = self.application.settings["deps"]
        return deps

    @functools.cached_property
    def request_id(self) -> str:
        """Known from the first moment, so that an answer given before `prepare` carries it."""
        return request_id_for(self.request)

    @property
    def user(self) -> User:
        """The signed-in user (only in methods not marked public)."""
        if self.current_user is None:
            raise NotAuthenticated()
        return self.current_user

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        origin = self.request.headers.get("Origin")
        if origin and origin in self.deps.settings.cors_origins:
            # Browsers on the configured web origins may read the API (tokens travel in the
            # Authorization header, never in cookies, so no credentials mode is needed).
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Access-Control-Expose-Headers", CORS_EXPOSED_HEADERS)
            self.add_header("Vary", "Origin")

    @public
    async def options(self, *args: str, **kwargs: str) -> None:
        """CORS preflight: which methods and headers a configured web origin may use."""
        origin = self.request.headers.get("Origin")
        if origin and origin in self.deps.settings.cors_origins:
            methods = [
                verb
                for verb in ("GET", "POST", "PUT", "PATCH", "DELETE")
                if implements(type(self), verb)
            ]
            self.set_header("Access-Control-Allow-Methods", ", ".join(methods))
            self.set_header("Access-Control-Allow-Headers", CORS_ALLOWED_HEADERS)
            self.set_header("Access-Control-Max-Age", "600")
        self.set_status(204)

    def compute_etag(self) -> str | None:
        """A weak ETag of the body written (answers to GET and HEAD; Tornado answers a matching
        If-None-Match with 304 when the handler finishes). Weak because it is of the body
        before any gzip: the compressed and the plain answer carry the same tag, which a strong
        one may not (RFC 9110 8.8.3); If-None-Match compares weakly anyway."""
        etag = super().compute_etag()
        return None if etag is None else "W/" + etag

    @public
    async def head(self, *args: str, **kwargs: str) -> None:
        """What GET answers, without the body (Tornado drops the body of a HEAD answer)."""
        answered = self.get(*args, **kwargs)
        if answered is not None:
            await answered

    async def prepare(self) -> None:
        self._count_in_flight()
        self.set_header("X-Request-ID", self.request_id)
        # Each request runs in a task of its own, so this is seen by its audit rows only.
        audit.REQUEST_ID.set(self.request_id)
        self.current_user = None
        allowed_hosts = self.deps.settings.allowed_hosts
        if allowed_hosts and self.request.host_name not in allowed_hosts:
            raise BadRequest(lazy("This host name is not served here."), code="host_not_allowed")
        self.translator = self.deps.catalogs.get(
            negotiate_locale(
                user_locale=None,
                accept_language=self.request.headers.get("Accept-Language"),
                default=self.deps.settings.default_locale,
            )
        )
        name = (self.request.method or "").lower()
        # HEAD is served by `head` above wherever GET is, and needs what GET needs.
        served_by = "get" if name == "head" else name
        if not implements(type(self), served_by):
            raise MethodNotAllowed()
        method = getattr(self, served_by)
        if served_by == "get" and getattr(method, "public", False):
            # Such an answer may differ for a signed-in caller (a paused skill its owner sees).
            self.add_header("Vary", "Authorization")
        # The transport refuses bodies over the limit before they are read (RequestGuard); this
        # covers an app served without it.
        if len(self.request.body or b"") > body_limit(type(self), self.deps.settings):
            raise PayloadTooLarge()
        await self._authenticate()
        if self.current_user is None and not getattr(method, "public", False):
            raise NotAuthenticated()
        # Every method declares the query arguments it takes (`takes_query`); any other
        # argument, on any endpoint, is a 400 naming it, before the method runs.
        self._query = self.parse_query(getattr(method, "query_model", NoQuery))

    _in_flight = False

    def _count_in_flight(self) -> None:
        """Count this request in flight until it is answered or its client goes away."""
        metrics.HTTP_REQUESTS_IN_FLIGHT.inc()
        self._in_flight = True

    def _landed(self) -> None:
        if self._in_flight:
            self._in_flight = False
            metrics.HTTP_REQUESTS_IN_FLIGHT.dec()

    def on_finish(self) -> None:
        self._landed()

    def on_connection_close(self) -> None:
        self._landed()
        super().on_connection_close()

    async def _authenticate(self) -> None:
        header = self.request.headers.get("Authorization")
        if not header:
            return
        token = bearer_token(header)
        if token is None:
            raise InvalidToken()
        user, claims = await authenticate(self.deps, token)
        self.current_user = user
        self.access_claims = claims
        self.translator = self.deps.catalogs.get(
            negotiate_locale(
                user_locale=user.locale,
                accept_language=self.request.headers.get("Accept-Language"),
                default=self.deps.settings.default_locale,
            )
        )

    async def take_rate_limit(self, policy: str) -> None:
        """Spend one request under `policy` (see `limited`); 429 `rate_limited` when over it."""
        user = self.current_user
        subject = subject_for(user.id if user else None, self.request.remote_ip)
        decision = await self.deps.rate_limits.take(policy, subject)
        if decision is None:
            return
        self._rate_limit_headers = decision.headers()
        if not decision.allowed:
            raise decision.refusal()
        for name, value in self._rate_limit_headers.items():
            self.set_header(name, value)

    # -- input ---------------------------------------------------------------------------------

    def decode_argument(self, value: bytes, name: str | None = None) -> str:
        return decode_argument_text(value, name)

    def json_body(self) -> Any:
        """The body as JSON (see skillswap.api.input_rules): UTF-8, at most MAX_JSON_DEPTH deep,
        and holding only text the database can store (else a 400 naming each such field)."""
        body = self.request.body or b""
        if not body.strip():
            return {}
        content_type = self.request.headers.get("Content-Type", "application/json")
        if content_type.split(";")[0].strip().lower() not in {"application/json", ""}:
            raise UnsupportedMediaType()
        try:
            return load_json(body)
        except MalformedJson as exc:
            raise BadRequest(_MALFORMED_JSON[exc.reason], code="malformed_json") from None
        except UnstorableText as exc:
            raise unstorable_text_error(exc.paths) from None

    def parse_body(self, model: type[M]) -> M:
        """The request body validated against `model`: unknown fields refused, types strict."""
        return validate(model, self.json_body(), strict=True)

    def parse_query(self, model: type[M]) -> M:
        """Query arguments validated against `model`; a repeated argument becomes a list."""
        data: dict[str, Any] = {}
        list_fields = {
            name
            for name, info in model.model_fields.items()
            if getattr(info.annotation, "__origin__", None) is list
        }
        for name, values in self.request.query_arguments.items():
            decoded = [v.decode("utf-8", "replace") for v in values]
            data[name] = decoded if name in list_fields else decoded[-1]
        refuse_unstorable_text(data)
        # Every value is text here: "5" is the number 5 and "true" a boolean.
        return validate(model, data, strict=False)

    def query(self, model: type[M]) -> M:
        """The query arguments, validated in `prepare` against the model the method declared."""
        if not isinstance(self._query, model):
            raise TypeError(f"{type(self).__name__} did not declare @takes_query({model.__name__})")
        return self._query

    def page_params(self) -> PageParams:
        settings = self.deps.settings
        errors: dict[str, Any] = {}
        page = self._positive_int_arg("page", 1, MAX_PAGE, errors)
        page_size = self._positive_int_arg(
            "page_size", settings.default_page_size, settings.max_page_size, errors
        )
        if errors:
            raise ValidationFailed(errors=errors)
        return PageParams(page=page, page_size=page_size)

    def _positive_int_arg(
        self, name: str, default: int, maximum: int, errors: dict[str, Any]
    ) -> int:
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return default
        digits = raw.strip().lstrip("0")
        # Too many digits is "too large", not "not a number" (int() refuses over 4,300).
        if digits.isdecimal() and len(digits) > len(str(maximum)):
            errors[name] = [lazy("Must be at most {max}.", max=maximum)]
            return default
        try:
            value = int(raw)
        except ValueError:
            errors[name] = [lazy("Must be a whole number.")]
            return default
        if value < 1:
            errors[name] = [lazy("Must be at least {min}.", min=1)]
        elif value > maximum:
            errors[name] = [lazy("Must be at most {max}.", max=maximum)]
        return value

    # -- output --------------------------------------------------------------------------------

    def send(self, data: Any, status: int = 200, *, location: str | None = None) -> None:
        """Write `data` as the JSON response; a 201 names what it created in Location
        (`location`, else `location_of` the document)."""
        if location is None and status == 201:
            location = self.location_of(data)
        if location is not None:
            self.set_header("Location", self.absolute_url(location))
        self.set_status(status)
        self._json_written = dumpb(data)
        self.write(self._json_written)

    def location_of(self, created: Any) -> str:
        """The path of what this handler's POST created, from the document it answered with:
        so that an idempotent replay, which has only that document, names it too."""
        raise NotImplementedError(f"{type(self).__name__} answers 201 without a location")

    def absolute_url(self, path: str) -> str:
        """`path` (from the root, query string included) as the absolute URL clients use.

        Every link the API writes (pagination, image URLs, `Location`, the OAuth redirect)
        comes from here. With PUBLIC_URL set it is always the base; otherwise the request's own
        scheme and host, which `prepare` has checked against ALLOWED_HOSTS when that is set.
        With neither set any Host header is echoed: fine on a laptop, not in production.
        """
        if not path.startswith("/"):
            return path  # already absolute (e.g. a storage backend's own URL)
        return self.url_base() + self.same_prefix(path)

    def same_prefix(self, path: str) -> str:
        """`path` under /api/v1/ when this request came through /api/v1/ and `path` is an API
        path: links keep the prefix the client chose."""
        if self.request.path.startswith(API_V1_PREFIX):
            return versioned(path)
        return path

    def url_base(self) -> str:
        """The scheme and host of every absolute link (see `absolute_url`), without a slash."""
        public_url = self.deps.settings.public_url
        if public_url:
            return public_url.rstrip("/")
        return f"{self.request.protocol}://{self.request.host}"

    def send_page(self, params: PageParams, *, count: int, results: list[Any]) -> None:
        """Write the standard list envelope `{count, next, previous, results}`."""

        def link(page: int) -> str:
            # Every value of a repeated argument (?status=a&status=b) is kept.
            args = {k: self.get_query_arguments(k) for k in self.request.query_arguments}
            args["page"] = [str(page)]
            return self.absolute_url(f"{self.request.path}?{urlencode(args, doseq=True)}")

        has_next = params.offset + len(results) < count
        self.send(
            {
                "count": count,
                "next": link(params.page + 1) if has_next else None,
                "previous": link(params.page - 1) if params.page > 1 else None,
                "results": results,
            }
        )

    def problem_document(self, exc: AppError) -> dict[str, Any]:
        return problem_document(
            exc,
            self.translator,
            instance=self.request.path,
            request_id=self.request_id,
        )

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        exc = exc_info[1] if exc_info else None
        if not hasattr(self, "translator"):
            self.translator = self.deps.catalogs.get(self.deps.settings.default_locale)
        error = error_for(status_code, exc)
        self.clear()
        self.set_status(error.status)
        for name, value in (self._rate_limit_headers or {}).items():
            self.set_header(name, value)
        for name, value in error.headers.items():
            self.set_header(name, value)
        if error.status == 405:
            self.set_header("Allow", ", ".join(allowed_methods(type(self))))
        self.set_header("Content-Type", "application/problem+json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Request-ID", self.request_id)
        self.finish(dumpb(self.problem_document(error)))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if is_outage(value):
            # Redis or the database unreachable: one line per request, not a traceback each.
            log.warning(
                "request %s answered 503: a store is unreachable (%s: %s) for %s %s",
                self.request_id,
                typ.__name__,
                value,
                self.request.method,
                self.request.uri,
            )
            return
        if isinstance(value, AppError):
            # Expected refusals; a 5xx among them (a dependency down, a feature not configured)
            # is logged with the request id but without a traceback, which would say nothing.
            if value.status >= 500:
                log.warning(
                    "request %s answered %s %s: %s %s",
                    self.request_id,
                    value.status,
                    value.code,
                    self.request.method,
                    self.request.uri,
                )
            return
        if isinstance(value, tornado.web.HTTPError) and value.status_code < 500:
            return
        log.error(
            "request %s failed: %s %s",
            self.request_id,
            self.request.method,
            self.request.uri,
            exc_info=(typ, value, tb),
        )


class NotFoundHandler(BaseHandler):
    """Every unknown path: a problem+json 404."""

    async def prepare(self) -> None:
        raise NotFound()


def route(
    path: str, handler: type[tornado.web.RequestHandler], **kwargs: Any
) -> tornado.web.URLSpec:
    """A URL served with and without its trailing slash."""
    pattern = path.rstrip("/") + "/?$" if path != "/" else "/$"
    return tornado.web.url(pattern, handler, kwargs or None)


def versioned(path: str) -> str:
    """An /api/ path (query string and all) as the same path under /api/v1/."""
    if path.startswith(API_PREFIX) and not path.startswith(API_V1_PREFIX):
        return API_V1_PREFIX + path.removeprefix(API_PREFIX)
    return path


def unversioned(path: str) -> str:
    """An /api/v1/ path as the /api/ path of the same resource (other paths as they are)."""
    if path.startswith(API_V1_PREFIX):
        return API_PREFIX + path.removeprefix(API_V1_PREFIX)
    return path


def with_version_aliases(routes: list[Any]) -> list[Any]:
    """`routes`, then every route under /api/ again under /api/v1/: the same handler, kwargs and
    name-less. Appended after all of them, so a handler's first route (the one the API document
    and the metrics' route label name) stays the unversioned path.

    A route whose pattern is itself under /api/v1/ would be shadowed; none is (the API has one
    version, so /api/v1/ is only ever this alias).
    """
    aliases = []
    for spec in routes:
        pattern = spec.regex.pattern if isinstance(spec, tornado.web.URLSpec) else None
        if pattern is None or not pattern.startswith(API_PREFIX):
            continue
        aliases.append(tornado.web.url(versioned(pattern), spec.target, spec.target_kwargs))
    return [*routes, *aliases]
