"""Administrators and listings: `GET /api/admin/skills/` (every status) and
`PATCH /api/admin/skills/{id}/` `{status: hidden|active, note}` (hide with a reason, restore)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from skillswap.admin import skills as admin_skills
from skillswap.http.admin_audit import AdminHandler
from skillswap.http.base import path_id, route, takes_query
from skillswap.http.operations import operation
from skillswap.http.query import PageQuery
from skillswap.http.schemas import Out, Page
from skillswap.http.skills import PlainText
from skillswap.http.validation import Body, Id
from skillswap.models import Skill, User
from skillswap.models.skills import SkillStatus

SkillStatusName = Literal["active", "paused", "hidden", "deleted"]


class AdminSkillOut(Out):
    """A listing as administrators see it, whatever its status."""

    id: int
    owner_id: int
    category_id: int
    title_en: str
    title_ar: str
    price_points: int
    status: SkillStatusName
    moderation_note: str = Field(description="Why an administrator hid it (empty otherwise)")
    orders_completed: int
    created_at: datetime
    updated_at: datetime


class AdminSkillListed(AdminSkillOut):
    """A listing in the administrators' list, with its owner's name and standing."""

    owner_username: str
    owner_is_active: bool = Field(description="false: the owner is banned (the skill is not shown)")


def admin_skill_json(skill: Skill) -> dict[str, Any]:
    return {
        "id": skill.id,
        "owner_id": skill.owner_id,
        "category_id": skill.category_id,
        "title_en": skill.title_en,
        "title_ar": skill.title_ar,
        "price_points": skill.price_points,
        "status": skill.status,
        "moderation_note": skill.moderation_note,
        "orders_completed": skill.orders_completed,
        "created_at": skill.created_at,
        "updated_at": skill.updated_at,
    }


def listed_skill_json(skill: Skill, owner: User) -> dict[str, Any]:
    return {
        **admin_skill_json(skill),
        "owner_username": owner.username,
        "owner_is_active": owner.is_active,
    }


class AdminSkillsQuery(PageQuery):
    search: PlainText | None = Field(
        default=None, min_length=1, max_length=200, description="In either title (any case)"
    )
    status: SkillStatusName | None = None
    owner_id: Id | None = None
    sort: Literal["newest", "oldest", "updated", "title"] | None = Field(
        default=None, description="Default: newest first"
    )


class ModerateSkillBody(Body):
    status: Literal["hidden", "active"]
    note: PlainText = Field(
        default="",
        max_length=1000,
        description="Why it is hidden (required to hide): its owner reads it",
    )


class AdminSkillsHandler(AdminHandler):
    @operation(
        "adminListSkills", tag="Admin", response=Page[AdminSkillListed], paged=True, problems=(403,)
    )
    @takes_query(AdminSkillsQuery)
    async def get(self) -> None:
        """Every skill, whatever its status, newest first: search titles, filter, sort."""
        query = self.query(AdminSkillsQuery)
        page = self.page_params()
        count, rows = await admin_skills.list_skills(
            self.deps,
            actor=self.user,
            search=query.search,
            status=query.status,
            owner_id=query.owner_id,
            sort=query.sort,
            offset=page.offset,
            limit=page.page_size,
        )
        self.send_page(page, count=count, results=[listed_skill_json(s, o) for s, o in rows])


class AdminSkillHandler(AdminHandler):
    @operation(
        "adminModerateSkill",
        tag="Admin",
        body=ModerateSkillBody,
        response=AdminSkillOut,
        problems=(403, 404, 409),
    )
    async def patch(self, skill_id: str) -> None:
        """Hide a skill from the marketplace (`hidden`, with a note its owner reads) or restore it."""
        body = self.parse_body(ModerateSkillBody)
        skill = await admin_skills.moderate_skill(
            self.deps,
            actor=self.user,
            skill_id=path_id(skill_id),
            status=SkillStatus(body.status),
            note=body.note,
        )
        self.send(admin_skill_json(skill))


routes = [
    route("/api/admin/skills/", AdminSkillsHandler),
    route(r"/api/admin/skills/(?P<skill_id>\d+)/", AdminSkillHandler),
]
