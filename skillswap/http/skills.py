"""Skill endpoints: /api/skills/ (browse, search, list), one skill, its images, categories,
and one person's skills under /api/users/{id}/skills/.

Anonymous reads are answered from the listing cache when nothing has changed since the answer
was made (see skillswap.skills.cache); everything else goes to the services.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from skillswap.errors import BadRequest
from skillswap.http.base import (
    BaseHandler,
    PageParams,
    idempotent,
    limited,
    path_id,
    public,
    route,
    takes_query,
)
from skillswap.http.operations import operation
from skillswap.http.schemas import CategoryTreeNode, Page, SkillImageOut, SkillOut, SkillPaused
from skillswap.http.validation import Body, Id, Nullable
from skillswap.i18n import N_, lazy
from skillswap.models.lessons import LESSON_MINUTES_MAX, LESSON_MINUTES_MIN
from skillswap.skills import browse, categories, images, listings
from skillswap.skills.browse import BrowseQuery, SkillPage
from skillswap.skills.queries import skill_view
from skillswap.skills.text import MAX_TAG_LENGTH, MAX_TAGS, normalise_tag

Level = Literal["beginner", "intermediate", "advanced", "expert"]
OrderingChoice = Literal["relevance", "newest", "price", "-price", "rating", "popular"]
MAX_PRICE_POINTS = 100_000
LANGUAGE_PATTERN = r"^[A-Za-z]{2}$"
LANGUAGE_RE = re.compile(LANGUAGE_PATTERN)
MAX_PRICE_FILTER = 1_000_000_000


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL: refuse it here rather than fail in the database.
    if "\x00" in value:
        raise ValueError(N_("Must not contain NUL characters."))
    return value


PlainText = Annotated[str, AfterValidator(_no_nul)]


def _whole_quarters(minutes: int | None) -> int | None:
    if minutes is not None and minutes % 15:
        raise ValueError(N_("A lesson lasts whole quarter hours: 15, 30, 45 ... 240 minutes."))
    return minutes


# A lesson's length (null: the skill is a piece of work delivered, not a lesson).
LessonMinutes = Annotated[
    int | None,
    Nullable,
    Field(ge=LESSON_MINUTES_MIN, le=LESSON_MINUTES_MAX, strict=True),
    AfterValidator(_whole_quarters),
]


def _check_tags(tags: list[str] | None) -> list[str] | None:
    if tags is None:
        return None
    for tag in tags:
        if not normalise_tag(tag):
            raise ValueError(N_("Tags may not be blank."))
        if len(normalise_tag(tag)) > MAX_TAG_LENGTH:
            raise ValueError(N_("Tags may be at most 30 characters."))
    return tags


def _check_languages(languages: list[str] | None) -> list[str] | None:
    if languages is None:
        return None
    cleaned: list[str] = []
    for code in languages:
        if not LANGUAGE_RE.match(code):
            raise ValueError(N_("Use two-letter language codes such as en or ar."))
        if code.lower() not in cleaned:
            cleaned.append(code.lower())
    return cleaned


class SkillBody(Body):
    """A whole listing (POST, PUT). At least one language needs a title and a description."""

    title_en: PlainText = Field(default="", max_length=120)
    title_ar: PlainText = Field(default="", max_length=120)
    description_en: PlainText = Field(default="", max_length=5000)
    description_ar: PlainText = Field(default="", max_length=5000)
    category_id: Id = Field(strict=True)
    price_points: int = Field(ge=1, le=MAX_PRICE_POINTS, strict=True)
    tags: list[PlainText] = Field(default_factory=list, max_length=MAX_TAGS)
    level: Level = "beginner"
    languages: list[str] = Field(
        default_factory=list,
        max_length=10,
        json_schema_extra={"items": {"pattern": LANGUAGE_PATTERN}},
    )
    delivery_days: int = Field(default=7, ge=1, le=365, strict=True)
    lesson_minutes: LessonMinutes = Field(
        default=None, description="A lesson of this many minutes (15 to 240, whole quarters)"
    )

    _tags = field_validator("tags")(_check_tags)
    _languages = field_validator("languages")(_check_languages)


class SkillPatchBody(Body):
    """Some fields of a listing; `status` pauses (`paused`) or reactivates (`active`) it."""

    title_en: PlainText | None = Field(default=None, max_length=120)
    title_ar: PlainText | None = Field(default=None, max_length=120)
    description_en: PlainText | None = Field(default=None, max_length=5000)
    description_ar: PlainText | None = Field(default=None, max_length=5000)
    category_id: Id | None = Field(default=None, strict=True)
    price_points: int | None = Field(default=None, ge=1, le=MAX_PRICE_POINTS, strict=True)
    tags: list[PlainText] | None = Field(default=None, max_length=MAX_TAGS)
    level: Level | None = None
    languages: list[str] | None = Field(default=None, max_length=10)
    delivery_days: int | None = Field(default=None, ge=1, le=365, strict=True)
    lesson_minutes: LessonMinutes = Field(
        default=None, description="A lesson of this many minutes; null: no longer a lesson"
    )
    status: Literal["active", "paused"] | None = None

    _tags = field_validator("tags")(_check_tags)
    _languages = field_validator("languages")(_check_languages)


class SkillListQuery(BaseModel):
    """Filters, search and ordering of GET /api/skills/."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    search: PlainText | None = Field(
        default=None, max_length=200, description="Words in titles, descriptions or tags (en/ar)"
    )
    category: Id | None = Field(default=None, description="Category id (children included)")
    min_price: int | None = Field(default=None, ge=0, le=MAX_PRICE_FILTER)
    max_price: int | None = Field(default=None, ge=0, le=MAX_PRICE_FILTER)
    min_rating: float | None = Field(default=None, ge=0, le=5)
    level: Level | None = None
    language: str | None = Field(default=None, pattern=LANGUAGE_PATTERN)
    owner: Id | None = Field(default=None, description="Owner's user id")
    tag: PlainText | None = Field(default=None, max_length=MAX_TAG_LENGTH)
    ordering: OrderingChoice | None = Field(
        default=None, description="Default: relevance with a search, newest without"
    )
    cursor: PlainText | None = Field(
        default=None, max_length=400, description="From next/previous links"
    )
    # Read by page_params(); declared so they are not refused as unknown.
    page: SkipJsonSchema[str | None] = None
    page_size: SkipJsonSchema[str | None] = None


class OwnerSkillsQuery(BaseModel):
    """Ordering of one person's skills."""

    model_config = ConfigDict(extra="forbid")

    ordering: Literal["newest", "price", "-price", "rating", "popular"] | None = None
    cursor: PlainText | None = Field(default=None, max_length=400)
    page: SkipJsonSchema[str | None] = None
    page_size: SkipJsonSchema[str | None] = None


class SkillOutPage(Page[SkillOut]):
    """A page of listings: `count` is exact up to 1,000 matches (200 for a relevance search),
    and PostgreSQL's estimate beyond, which `count_is_estimate` says."""

    count_is_estimate: bool = Field(
        default=False, description="true: `count` is an estimate (more than 1,000 matches)"
    )


class SkillsBaseHandler(BaseHandler):
    """Shared serialisation of skills and pages of skills."""

    def skill_document(self, record: listings.SkillRecord) -> dict[str, Any]:
        row, row_images = record
        return self.with_absolute_images(
            skill_view(row, row_images, locale=self.translator.locale, storage=self.deps.storage)
        )

    def with_absolute_images(self, document: dict[str, Any]) -> dict[str, Any]:
        """`document` (a skill) with absolute image URLs (storage gives `/media/...`)."""
        for image in document["images"]:
            image["url"] = self.absolute_url(image["url"])
        return document

    def page_document(self, params: PageParams, page: SkillPage) -> dict[str, Any]:
        """The standard envelope; next/previous follow keyset cursors."""
        storage = self.deps.storage
        locale = self.translator.locale
        previous = self._link(cursor=page.previous_cursor) if page.previous_cursor else None
        if previous is None and page.previous_page:
            previous = self._link(page=page.previous_page)
        return {
            "count": page.count,
            "count_is_estimate": page.count_is_estimate,
            "next": self._link(cursor=page.next_cursor) if page.next_cursor else None,
            "previous": previous,
            "results": [
                self.with_absolute_images(
                    skill_view(row, page.images.get(row["id"], ()), locale=locale, storage=storage)
                )
                for row in page.rows
            ],
        }

    def _link(self, *, cursor: str | None = None, page: int | None = None) -> str:
        args = {
            k: self.get_query_argument(k)
            for k in self.request.query_arguments
            if k not in ("cursor", "page")
        }
        if cursor is not None:
            args["cursor"] = cursor
        if page is not None:
            args["page"] = str(page)
        return self.absolute_url(f"{self.request.path}?{urlencode(args)}")

    async def send_cached(self, key: tuple[Any, ...]) -> tuple[Any, bool]:
        """Answer from the listing cache if possible; returns (token, answered)."""
        cache = self.deps.listing_cache
        token = await cache.token()
        if token is not None:
            body = cache.get(key, token)
            if body is not None:
                self.write(body)
                return token, True
        return token, False

    def remember(self, key: tuple[Any, ...], token: Any) -> None:
        """Keep the response just sent for the next identical read."""
        if token is not None:
            self.deps.listing_cache.put(key, token, self._json_written)

    def list_key(self) -> tuple[Any, ...]:
        return (
            "list",
            self.translator.locale,
            self.url_base(),  # the answer's links start with it
            self.request.uri,
        )


class SkillListHandler(SkillsBaseHandler):
    @operation("listSkills", tag="Skills", response=SkillOutPage, paged=True)
    @public
    @takes_query(SkillListQuery)
    async def get(self) -> None:
        """Browse and search active skills (filters, ordering, pagination)."""
        key = self.list_key()
        token, answered = await self.send_cached(key)
        if answered:
            return
        params = self.page_params()
        query = self.query(SkillListQuery)
        page = await browse.browse_skills(
            self.deps,
            query=BrowseQuery(
                **query.model_dump(exclude={"page", "page_size"}),
                page=params.page,
                page_size=params.page_size,
            ),
        )
        self.send(self.page_document(params, page))
        self.remember(key, token)

    @operation(
        "createSkill", tag="Skills", body=SkillBody, response=SkillOut, status=201, problems=(409,)
    )
    @limited("skill")
    @idempotent
    async def post(self) -> None:
        """List a new skill."""
        body = self.parse_body(SkillBody)
        record = await listings.create_skill(self.deps, actor=self.user, fields=body.model_dump())
        self.send(self.skill_document(record), status=201)

    def location_of(self, created: Any) -> str:
        return f"/api/skills/{created['id']}/"


class SkillDetailHandler(SkillsBaseHandler):
    @operation("getSkill", tag="Skills", response=SkillOut, problems=(404,))
    @public
    async def get(self, skill_id: str) -> None:
        """One skill (paused ones only for their owner)."""
        key = ("detail", self.translator.locale, self.url_base(), skill_id)
        token: Any = None
        if self.current_user is None:
            token, answered = await self.send_cached(key)
            if answered:
                return
        record = await listings.get_skill(
            self.deps, skill_id=path_id(skill_id), viewer=self.current_user
        )
        self.send(self.skill_document(record))
        if self.current_user is None:
            self.remember(key, token)

    @operation("replaceSkill", tag="Skills", body=SkillBody, response=SkillOut, problems=(403, 404))
    async def put(self, skill_id: str) -> None:
        """Replace a skill of yours."""
        body = self.parse_body(SkillBody)
        record = await listings.update_skill(
            self.deps,
            actor=self.user,
            skill_id=path_id(skill_id),
            changes=body.model_dump(),
            replace=True,
        )
        self.send(self.skill_document(record))

    @operation(
        "updateSkill", tag="Skills", body=SkillPatchBody, response=SkillOut, problems=(403, 404)
    )
    async def patch(self, skill_id: str) -> None:
        """Change some fields of a skill of yours, or pause/reactivate it with `status`."""
        body = self.parse_body(SkillPatchBody)
        changes = {
            k: v
            for k, v in body.model_dump(exclude_unset=True).items()
            if v is not None or k in body.nullable_fields
        }
        record = await listings.update_skill(
            self.deps, actor=self.user, skill_id=path_id(skill_id), changes=changes
        )
        self.send(self.skill_document(record))

    @operation(
        "deleteSkill", tag="Skills", status=204, also={200: SkillPaused}, problems=(403, 404)
    )
    async def delete(self, skill_id: str) -> None:
        """Delete a skill of yours; with open orders it is paused instead (200, says so)."""
        outcome = await listings.delete_skill(
            self.deps, actor=self.user, skill_id=path_id(skill_id)
        )
        if outcome.status == "deleted":
            self.set_status(204)
            return
        detail = (
            lazy(
                "This skill has open orders, so it was not deleted and stays hidden. "
                "Delete it again once they are finished."
            )
            if outcome.status == "hidden"
            else lazy(
                "This skill has open orders, so it was paused instead of deleted. "
                "Delete it again once they are finished."
            )
        )
        self.send(
            {
                "status": outcome.status,
                "open_orders": outcome.open_orders,
                "detail": self.translator.text(detail),
            },
            status=200,
        )


class MySkillsHandler(SkillsBaseHandler):
    @operation("listMySkills", tag="Skills", response=SkillOutPage, paged=True)
    @takes_query(OwnerSkillsQuery)
    async def get(self) -> None:
        """Your own skills: active, paused, and hidden by an administrator (with the note)."""
        params = self.page_params()
        query = self.query(OwnerSkillsQuery)
        page = await browse.browse_skills(
            self.deps,
            query=BrowseQuery(
                owner=self.user.id,
                ordering=query.ordering,
                cursor=query.cursor,
                page=params.page,
                page_size=params.page_size,
                statuses=("active", "paused", "hidden"),
            ),
        )
        self.send(self.page_document(params, page))


class UserSkillsHandler(SkillsBaseHandler):
    @operation("listUserSkills", tag="Skills", response=SkillOutPage, paged=True, problems=(404,))
    @public
    @takes_query(OwnerSkillsQuery)
    async def get(self, user_id: str) -> None:
        """One person's active skills."""
        key = self.list_key()
        token, answered = await self.send_cached(key)
        if answered:
            return
        params = self.page_params()
        query = self.query(OwnerSkillsQuery)
        page = await browse.browse_owner_skills(
            self.deps,
            owner_id=path_id(user_id),
            query=BrowseQuery(
                ordering=query.ordering,
                cursor=query.cursor,
                page=params.page,
                page_size=params.page_size,
            ),
        )
        self.send(self.page_document(params, page))
        self.remember(key, token)


class SkillImagesHandler(SkillsBaseHandler):
    accepts_uploads = True

    @operation(
        "addSkillImage",
        tag="Skills",
        upload="image",
        response=SkillImageOut,
        status=201,
        problems=(403, 404, 409, 413, 415),
    )
    async def post(self, skill_id: str) -> None:
        """Add an image to a skill of yours (multipart field `image`, or the raw image body)."""
        files = self.request.files.get("image")
        if files:
            data = files[0].body
        elif self.request.headers.get("Content-Type", "").lower().startswith("image/"):
            data = self.request.body
        else:
            raise BadRequest(
                lazy("Send the image as the multipart/form-data field 'image'."),
                code="image_missing",
            )
        image = await images.add_image(
            self.deps, actor=self.user, skill_id=path_id(skill_id), data=data
        )
        image["url"] = self.absolute_url(image["url"])
        self.send(
            image, status=201, location=f"/api/skills/{path_id(skill_id)}/images/{image['id']}/"
        )


class SkillImageHandler(SkillsBaseHandler):
    @operation("deleteSkillImage", tag="Skills", status=204, problems=(403, 404))
    async def delete(self, skill_id: str, image_id: str) -> None:
        """Remove an image from a skill of yours."""
        await images.remove_image(
            self.deps, actor=self.user, skill_id=path_id(skill_id), image_id=path_id(image_id)
        )
        self.set_status(204)


class CategoriesHandler(SkillsBaseHandler):
    @operation("listCategories", tag="Skills", response=Page[CategoryTreeNode])
    @public
    async def get(self) -> None:
        """Active categories as a two-level tree, with the number of active skills in each."""
        key = ("categories", self.translator.locale)
        token, answered = await self.send_cached(key)
        if answered:
            return
        tree = await categories.category_tree(self.deps, locale=self.translator.locale)
        self.send({"count": len(tree), "next": None, "previous": None, "results": tree})
        self.remember(key, token)


routes = [
    route("/api/skills/", SkillListHandler),
    route("/api/skills/categories/", CategoriesHandler),
    route("/api/skills/mine/", MySkillsHandler),
    route(r"/api/skills/(?P<skill_id>\d+)/", SkillDetailHandler),
    route(r"/api/skills/(?P<skill_id>\d+)/images/", SkillImagesHandler),
    route(r"/api/skills/(?P<skill_id>\d+)/images/(?P<image_id>\d+)/", SkillImageHandler),
    route(r"/api/users/(?P<user_id>\d+)/skills/", UserSkillsHandler),
]
