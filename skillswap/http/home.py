"""`GET /`: where a newcomer (or a browser) finds the API documentation."""

from __future__ import annotations

from skillswap.http.base import BaseHandler, public, route


class HomeHandler(BaseHandler):
    openapi_exclude = True

    @public
    async def get(self) -> None:
        """Browsers are sent to the API docs; other clients get the links as JSON."""
        accept = self.request.headers.get("Accept", "")
        if "text/html" in accept:
            self.redirect(self.absolute_url("/api/docs/"), status=302)
            return
        self.send(
            {
                "name": "SkillSwap API",
                "docs": self.absolute_url("/api/docs/"),
                "redoc": self.absolute_url("/api/redoc/"),
                "openapi": self.absolute_url("/api/schema/"),
                "websocket": self.absolute_url("/ws/").replace("http", "ws", 1),
                "health": self.absolute_url("/healthz"),
            }
        )


routes = [route("/", HomeHandler)]
