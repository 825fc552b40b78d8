"""Lesson calendar endpoints: the signed-in user's feed URL, and the private iCalendar feed.

`GET /api/lessons/calendar/` answers the feed's URL (the feed is made on the first call), the
same URL every time; `POST` replaces it with a new one (the old stops working) and `DELETE`
turns the feed off. `GET /api/lessons/calendar.ics?key=...` is the feed itself, with no sign-in:
the key is the credential (see skillswap.lessons.calendar).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from skillswap.http.base import BaseHandler, public, route, takes_query
from skillswap.http.operations import operation
from skillswap.http.schemas import Out
from skillswap.http.validation import Body
from skillswap.lessons import calendar
from skillswap.mail.render import links_base


class CalendarFeedOut(Out):
    """The private feed of one's lessons, for a calendar app to subscribe to."""

    url: str = Field(description="The feed's absolute URL; anyone with it reads the feed")


class CalendarFeedQuery(Body):
    # Optional in the schema: a missing key is like a wrong one, a 404.
    key: str = Field(default="", max_length=200, description="The feed's key, from its URL")


class CalendarFeedHandler(BaseHandler):
    def _answer(self, key: str) -> None:
        self.send({"url": self.absolute_url(calendar.feed_path(key))})

    @operation("getLessonCalendarFeed", tag="Lessons", response=CalendarFeedOut)
    async def get(self) -> None:
        """The URL of your lessons' calendar feed (made on the first call)."""
        self._answer(await calendar.get_feed_key(self.deps, actor=self.user))

    @operation("rotateLessonCalendarFeed", tag="Lessons", response=CalendarFeedOut)
    async def post(self) -> None:
        """Replace the feed's URL with a new one: the previous URL stops working."""
        self._answer(await calendar.rotate_feed_key(self.deps, actor=self.user))

    @operation("revokeLessonCalendarFeed", tag="Lessons", response=None, status=204)
    async def delete(self) -> None:
        """Turn the feed off: its URL answers 404 until a new one is asked for."""
        await calendar.revoke_feed(self.deps, actor=self.user)
        self.set_status(204)


class CalendarDocumentHandler(BaseHandler):
    @operation(
        "getLessonCalendar",
        tag="Lessons",
        response=None,
        file="text/calendar",
        problems=(404,),
    )
    @takes_query(CalendarFeedQuery)
    @public
    async def get(self) -> None:
        """Your lessons as iCalendar (RFC 5545), for calendar apps; the key is the sign-in."""
        query = self.query(CalendarFeedQuery)
        document = await calendar.calendar_feed(
            self.deps, key=query.key, links_base=links_base(self.deps.settings)
        )
        self.set_header("Content-Type", "text/calendar; charset=utf-8")
        self.set_header("Content-Disposition", 'inline; filename="lessons.ics"')
        self.set_header("Cache-Control", "private, max-age=300")
        self.write(document)


routes: list[Any] = [
    route("/api/lessons/calendar/", CalendarFeedHandler),
    route(r"/api/lessons/calendar\.ics", CalendarDocumentHandler),
]
