"""The lesson's call: its ICE servers for a participant, and the page that joins it in a browser."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from skillswap.api.encoding import iso
from skillswap.http.base import BaseHandler, path_id, public, route
from skillswap.http.operations import operation
from skillswap.http.schemas import Out
from skillswap.lessons import calls


def _no_default(schema: dict[str, Any]) -> None:
    # Present (TURN) or absent (STUN), never null: the schema shows neither null nor a default.
    schema.pop("default", None)


class IceServerOut(Out):
    """One RTCIceServer, as RTCPeerConnection takes it."""

    urls: list[str]
    username: str | SkipJsonSchema[None] = Field(
        default=None,
        description="TURN only: `expiry:user_id` (coturn's REST API)",
        json_schema_extra=_no_default,
    )
    credential: str | SkipJsonSchema[None] = Field(
        default=None,
        description="TURN only: base64 HMAC-SHA1 of the username under TURN_SECRET",
        json_schema_extra=_no_default,
    )


class CallOut(Out):
    """What a participant joins the lesson's call with."""

    room_id: int = Field(description="The order's chat room: send `call` frames there (/ws/)")
    ice_servers: list[IceServerOut]
    expires_at: datetime = Field(description="When the TURN credentials expire: fetch again")


class LessonCallHandler(BaseHandler):
    @operation("joinLessonCall", tag="Lessons", response=CallOut, problems=(404, 409))
    async def get(self, order_id: str) -> None:
        """The call of a lesson order, for its buyer or seller, from LESSON_CALL_EARLY_SECONDS
        before the start until a quarter hour after the end (409 `call_not_open` otherwise,
        with `opens_at` and `closes_at`): its room and the ICE servers (STUN, and TURN with
        credentials valid for TURN_TTL_SECONDS when configured)."""
        access = await calls.join_call(self.deps, actor=self.user, order_id=path_id(order_id))
        self.set_header("Cache-Control", "no-store")
        self.send(
            {
                "room_id": access.room_id,
                "ice_servers": access.ice_servers,
                "expires_at": iso(access.expires_at),
            }
        )


class CallPage(BaseHandler):
    """/lessons/call/: join a lesson's call in the browser (two tabs make a call to try)."""

    openapi_exclude = True

    @public
    async def get(self) -> None:
        """The page; it signs in with an access token the reader pastes (or the URL's fragment
        carries), never sent to this address."""
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; media-src 'self' blob:; "
            "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        )
        translator = self.translator
        template = self.application.settings["jinja"].get_template("lessons/call.html")
        self.write(
            template.render(
                _=translator.gettext,
                locale=translator.locale,
                direction=translator.direction,
                static_url=self.static_url,
            )
        )


routes = [
    route(r"/api/lessons/(?P<order_id>\d+)/call/", LessonCallHandler),
    route("/lessons/call/", CallPage),
]
