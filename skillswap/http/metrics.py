"""`/metrics` for Prometheus, and what every finished request leaves: its timing and its log line.

The endpoint is public but for METRICS_TOKEN: when that is set, a scrape must send it as a
bearer token (compared in constant time). It is kept out of the OpenAPI document, like the
probes' infrastructure around it: a scraper, not an API client, reads it.

`log_request` is the application's `log_function`: Tornado calls it once per answered request
of every handler (API, dashboard, media, static files, WebSocket handshakes). It observes the
request's duration under its route template - the route's pattern as the API document writes
it (`/api/skills/{id}/`), never the raw path, so ids do not multiply the series - and writes
the access log line with the route, status, duration, request id and user id as fields (which
LOG_FORMAT=json writes out). Query strings are logged with the values of credentials blanked.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from datetime import UTC
from typing import Any
from urllib.parse import parse_qsl, urlencode

import tornado.web

from skillswap import metrics
from skillswap.api.problems import request_id_for
from skillswap.auth.bearer import bearer_token
from skillswap.errors import InvalidToken, MethodNotAllowed, NotAuthenticated
from skillswap.http.base import BaseHandler, NotFoundHandler, route
from skillswap.http.openapi import _path_and_parameters
from skillswap.i18n import lazy
from skillswap.tasks import outbox

access_log = logging.getLogger("tornado.access")
log = logging.getLogger("skillswap.http.metrics")

# A scrape reads the outbox's backlog; a database too slow to answer leaves the last values.
BACKLOG_TIMEOUT_SECONDS = 2.0
# Query arguments whose values never reach the log (OAuth codes, tokens in links, signatures).
SECRET_ARGUMENTS = frozenset(
    {"code", "state", "token", "access_token", "refresh_token", "key", "password", "secret"}
)
UNMATCHED = "unmatched"  # the route label of every path no route serves (404s)


class MetricsHandler(BaseHandler):
    """The Prometheus exposition of this node (of every worker, under `serve --workers N`)."""

    openapi_exclude = True

    async def prepare(self) -> None:
        # Not BaseHandler's: the bearer here is METRICS_TOKEN, not a user's access token.
        self.set_header("X-Request-ID", self.request_id)
        self.current_user = None
        if self.request.method not in {"GET", "HEAD"}:
            raise MethodNotAllowed()
        expected = self.deps.settings.metrics_token
        if not expected:
            return
        header = self.request.headers.get("Authorization")
        if not header:
            raise NotAuthenticated(
                lazy("Reading the metrics needs the metrics token."),
                code="metrics_token_required",
            )
        given = bearer_token(header) or ""
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise InvalidToken(lazy("This is not the metrics token."))

    async def get(self) -> None:
        """Every metric in the text format the scraper asks for (Prometheus or OpenMetrics)."""
        await self._read_backlog()
        body, content_type = metrics.render(self.request.headers.get("Accept"))
        self.set_header("Content-Type", content_type)
        self.write(body)

    async def _read_backlog(self) -> None:
        now = self.deps.clock()
        try:
            found = await asyncio.wait_for(
                outbox.backlog(self.deps.db, now=now), BACKLOG_TIMEOUT_SECONDS
            )
        except Exception as exc:  # the scrape still answers, with the other metrics
            log.warning("metrics: the outbox backlog could not be read (%r)", exc)
            return
        metrics.OUTBOX_BACKLOG.labels("pending").set(found.pending_due)
        metrics.OUTBOX_BACKLOG.labels("running").set(found.running)
        metrics.OUTBOX_BACKLOG.labels("failed").set(found.failed)
        oldest = found.oldest_due_at
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        age = 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())
        metrics.OUTBOX_OLDEST_DUE_AGE.set(age)


routes = [route("/metrics", MetricsHandler)]


# -- every finished request -------------------------------------------------------------------------


def route_template(handler: tornado.web.RequestHandler) -> str:
    """The pattern of the route that served `handler`'s request, as the API document writes it."""
    if isinstance(handler, NotFoundHandler):
        return UNMATCHED
    application = handler.application
    templates: dict[type[Any], str] | None = application.settings.get("route_templates")
    if templates is None:
        templates = _route_templates(application)
        application.settings["route_templates"] = templates
    return templates.get(type(handler), UNMATCHED)


def _route_templates(application: tornado.web.Application) -> dict[type[Any], str]:
    """Each handler class's route template (every class serves exactly one route here)."""
    templates: dict[type[Any], str] = {}
    for rule in application.default_router.rules[0].target.rules:
        pattern = getattr(rule.matcher, "regex", None)
        if pattern is None or not isinstance(rule.target, type):
            continue
        path, _parameters = _path_and_parameters(pattern.pattern, [])
        templates.setdefault(rule.target, path)
    return templates


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Time the finished request under its route template and write its access log line."""
    request = handler.request
    status = handler.get_status()
    duration = request.request_time()
    template = route_template(handler)
    method = request.method or ""
    metrics.HTTP_REQUEST_DURATION.labels(template, method, str(status)).observe(duration)
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    if not access_log.isEnabledFor(level):
        return
    # Read without resolving: a handler that never looked for its user is not made to now.
    user = getattr(handler, "_current_user", None)
    fields = {
        "request_id": getattr(handler, "request_id", None) or request_id_for(request),
        "user_id": getattr(user, "id", None),
        "method": method,
        "route": template,
        "path": request.path,
        "status": status,
        "duration_ms": round(duration * 1000, 2),
        "client": request.remote_ip,
    }
    access_log.log(
        level,
        "%d %s %s (%s) %.2fms",
        status,
        method,
        loggable_uri(request.path, request.query),
        request.remote_ip,
        duration * 1000,
        extra=fields,
    )


def loggable_uri(path: str, query: str) -> str:
    """`path?query` with the value of every credential-like argument blanked."""
    if not query:
        return path
    pairs = parse_qsl(query, keep_blank_values=True)
    shown = [(name, "[redacted]" if name.lower() in SECRET_ARGUMENTS else v) for name, v in pairs]
    return f"{path}?{urlencode(shown)}"
