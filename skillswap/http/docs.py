"""API documentation: the OpenAPI document, Swagger UI and ReDoc (assets served locally)."""

from __future__ import annotations

from typing import Any

import tornado.web

from skillswap.http.base import BaseHandler, ProblemAnswers, public, route
from skillswap.http.openapi import build_openapi


class StaticFiles(ProblemAnswers, tornado.web.StaticFileHandler):
    """The docs pages' own assets under /static/; a missing one is a problem like any other."""


class SchemaHandler(BaseHandler):
    openapi_exclude = True

    @public
    async def get(self) -> None:
        """The OpenAPI 3.1 document describing every endpoint."""
        cached: dict[str, Any] | None = self.application.settings.get("openapi_document")
        if cached is None:
            cached = build_openapi(self.application)
            self.application.settings["openapi_document"] = cached
        self.set_header("Cache-Control", "public, max-age=60")
        self.send(cached)


class _DocsPage(BaseHandler):
    openapi_exclude = True
    template = ""

    @public
    async def get(self) -> None:
        """An HTML page rendering the OpenAPI document."""
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "public, max-age=300")
        self.set_header(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "worker-src 'self' blob:; script-src 'self'",
        )
        template = self.application.settings["jinja"].get_template(self.template)
        self.write(
            template.render(
                locale=self.translator.locale,
                direction=self.translator.direction,
                schema_url="/api/schema/",
                static_url=self.static_url,
            )
        )


class SwaggerHandler(_DocsPage):
    template = "docs/swagger.html"


class RedocHandler(_DocsPage):
    template = "docs/redoc.html"


routes = [
    route("/api/schema/", SchemaHandler),
    route("/api/docs/", SwaggerHandler),
    route("/api/redoc/", RedocHandler),
]
