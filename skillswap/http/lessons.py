"""Lesson endpoints: the teacher's availability (/api/lessons/availability/), a lesson skill's
free slots (/api/skills/{id}/slots/), and the signed-in user's lessons (/api/lessons/)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field
from pydantic.json_schema import JsonDict, SkipJsonSchema

from skillswap.http.accounts import user_public
from skillswap.http.base import BaseHandler, path_id, public, route, takes_query
from skillswap.http.operations import operation
from skillswap.http.query import NoQuery
from skillswap.http.schemas import Out, Page, UserPublic
from skillswap.http.validation import Body
from skillswap.i18n import in_language
from skillswap.lessons import availability, queries, slots
from skillswap.lessons.availability import (
    MAX_EXCEPTIONS,
    MAX_WEEKLY_WINDOWS,
    AvailabilityView,
    zone_of,
)

_TIME_OF_DAY: JsonDict = {"pattern": "^([01][0-9]|2[0-4]):[0-5][0-9]$"}
_ISO_DATE: JsonDict = {"pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}


# -- availability --------------------------------------------------------------------------------


class WeeklyWindow(Body):
    weekday: int = Field(ge=0, le=6, description="Monday 0 ... Sunday 6")
    start: str = Field(
        max_length=5, json_schema_extra=_TIME_OF_DAY, description="HH:MM, a quarter hour"
    )
    end: str = Field(
        max_length=5, json_schema_extra=_TIME_OF_DAY, description="HH:MM, after start (24:00)"
    )


class DateException(Body):
    date: str = Field(max_length=10, json_schema_extra=_ISO_DATE, description="YYYY-MM-DD")
    available: bool = Field(description="false: closed that date; true: start-end replace it")
    start: str | None = Field(default=None, max_length=5, json_schema_extra=_TIME_OF_DAY)
    end: str | None = Field(default=None, max_length=5, json_schema_extra=_TIME_OF_DAY)


class AvailabilityBody(Body):
    timezone: str = Field(max_length=64, description="An IANA zone, e.g. Africa/Cairo")
    weekly: list[WeeklyWindow] = Field(default_factory=list, max_length=MAX_WEEKLY_WINDOWS)
    exceptions: list[DateException] = Field(default_factory=list, max_length=MAX_EXCEPTIONS)


class WeeklyWindowOut(Out):
    weekday: int
    start: str
    end: str


def _sometimes_absent(schema: JsonDict) -> None:
    schema.pop("default", None)  # absent, not null: None is no JSON value here


class DateExceptionOut(Out):
    date: str
    available: bool
    # Present when `available` is true: the hours that replace the week's that date.
    start: str | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_sometimes_absent)
    end: str | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_sometimes_absent)


class AvailabilityOut(Out):
    """A teacher's weekly hours in their zone and the dates that differ."""

    timezone: str
    weekly: list[WeeklyWindowOut]
    exceptions: list[DateExceptionOut]
    updated_at: datetime | None = Field(description="null: never set")


def availability_json(view: AvailabilityView) -> dict[str, Any]:
    return {
        "timezone": view.timezone,
        "weekly": view.weekly,
        "exceptions": view.exceptions,
        "updated_at": view.updated_at,
    }


class AvailabilityHandler(BaseHandler):
    @operation("getLessonAvailability", tag="Lessons", response=AvailabilityOut)
    @takes_query(NoQuery)
    async def get(self) -> None:
        """Your weekly lesson hours and exceptions (none yet: empty, in your profile's zone)."""
        view = await availability.get_availability(self.deps, actor=self.user)
        self.send(availability_json(view))

    @operation(
        "setLessonAvailability", tag="Lessons", body=AvailabilityBody, response=AvailabilityOut
    )
    async def put(self) -> None:
        """Replace your weekly lesson hours and exceptions (bookings already made stay)."""
        body = self.parse_body(AvailabilityBody)
        view = await availability.set_availability(
            self.deps,
            actor=self.user,
            timezone=body.timezone,
            weekly=[window.model_dump() for window in body.weekly],
            exceptions=[item.model_dump() for item in body.exceptions],
        )
        self.send(availability_json(view))


# -- free slots ----------------------------------------------------------------------------------


class SlotsQuery(Body):
    start: datetime | None = Field(
        default=None, alias="from", description="From (ISO 8601; default now)"
    )
    end: datetime | None = Field(
        default=None, alias="to", description="Until, excluded (default: 14 days on; at most 31)"
    )
    tz: str | None = Field(
        default=None,
        max_length=64,
        description="The IANA zone of local_start/local_end (default: the teacher's)",
    )


class SlotOut(Out):
    start: datetime = Field(description="UTC")
    end: datetime = Field(description="UTC")
    local_start: str = Field(description="ISO 8601 with the offset of `timezone`")
    local_end: str


class SlotsOut(Out):
    """The free starts of a lesson skill, on quarter hours."""

    skill_id: int
    minutes: int
    timezone: str = Field(description="The zone of local_start and local_end")
    start: datetime = Field(alias="from")
    end: datetime = Field(alias="to")
    slots: list[SlotOut]


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).isoformat()


class SkillSlotsHandler(BaseHandler):
    @operation("listLessonSlots", tag="Lessons", response=SlotsOut, problems=(404,))
    @public
    @takes_query(SlotsQuery)
    async def get(self, skill_id: str) -> None:
        """The free slots of a lesson skill from `from` to `to`, in UTC and in `tz`."""
        query = self.query(SlotsQuery)
        found = await slots.list_slots(
            self.deps,
            skill_id=path_id(skill_id),
            start=query.start,
            end=query.end,
            timezone=query.tz,
        )
        self.send(
            {
                "skill_id": found.skill_id,
                "minutes": found.minutes,
                "timezone": found.zone.key,
                "from": found.start,
                "to": found.end,
                "slots": [
                    {
                        "start": slot.starts_at,
                        "end": slot.ends_at,
                        "local_start": _local(slot.starts_at, found.zone),
                        "local_end": _local(slot.ends_at, found.zone),
                    }
                    for slot in found.slots
                ],
            }
        )


# -- the signed-in user's lessons ----------------------------------------------------------------


class LessonListQuery(Body):
    when: Literal["upcoming", "past"] = "upcoming"
    role: Literal["buyer", "seller"] | None = Field(
        default=None, description="buyer: lessons you take; seller: lessons you teach"
    )
    page: SkipJsonSchema[str | None] = None  # read by page_params()
    page_size: SkipJsonSchema[str | None] = None


class LessonSkillRef(Out):
    id: int
    title: str


class LessonListed(Out):
    """One of your lessons: its order, the other participant, when (UTC and your zone)."""

    order_id: int
    status: str = Field(description="The order's status")
    role: Literal["buyer", "seller"]
    skill: LessonSkillRef
    other: UserPublic = Field(description="The teacher if you are the buyer, else the buyer")
    minutes: int
    starts_at: datetime
    ends_at: datetime
    local_starts_at: str = Field(description="ISO 8601 with the offset of `timezone`")
    local_ends_at: str
    timezone: str = Field(description="Your profile's zone")
    proposed_starts_at: datetime | None


class LessonsHandler(BaseHandler):
    @operation("listLessons", tag="Lessons", response=Page[LessonListed], paged=True)
    @takes_query(LessonListQuery)
    async def get(self) -> None:
        """Your lessons: upcoming (soonest first) or past (latest first), taken or taught."""
        page = self.page_params()
        query = self.query(LessonListQuery)
        count, views = await queries.list_lessons(
            self.deps,
            actor=self.user,
            when=query.when,
            role=query.role,
            offset=page.offset,
            limit=page.page_size,
        )
        zone = zone_of(self.user.timezone)
        locale = self.translator.locale
        results = [
            {
                "order_id": view.lesson.order_id,
                "status": view.status,
                "role": view.role,
                "skill": {
                    "id": view.skill_id,
                    "title": in_language(view.skill_title_en, view.skill_title_ar, locale)[0],
                },
                "other": user_public(view.other, self.translator),
                "minutes": view.lesson.minutes,
                "starts_at": view.lesson.starts_at,
                "ends_at": view.lesson.ends_at,
                "local_starts_at": _local(view.lesson.starts_at, zone),
                "local_ends_at": _local(view.lesson.ends_at, zone),
                "timezone": zone.key,
                "proposed_starts_at": view.lesson.proposed_starts_at,
            }
            for view in views
        ]
        self.send_page(page, count=count, results=results)


routes = [
    route("/api/lessons/", LessonsHandler),
    route("/api/lessons/availability/", AvailabilityHandler),
    route(r"/api/skills/(?P<skill_id>\d+)/slots/", SkillSlotsHandler),
]
