"""Category administration: /api/admin/categories/ (administrators only; the service checks)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from skillswap.http.admin_audit import AdminHandler
from skillswap.http.base import path_id, route
from skillswap.http.operations import operation
from skillswap.http.schemas import AdminCategoryOut, Page
from skillswap.http.skills import PlainText
from skillswap.http.validation import Body, Id, Nullable
from skillswap.skills import categories


class CategoryBody(Body):
    slug: PlainText = Field(min_length=1, max_length=60)
    name_en: PlainText = Field(min_length=1, max_length=80)
    name_ar: PlainText = Field(min_length=1, max_length=80)
    icon: PlainText = Field(default="", max_length=60)
    parent_id: Annotated[Id | None, Nullable] = Field(default=None)  # null: top level
    position: int | None = Field(default=None, ge=0, le=100_000, strict=True)


class CategoryPatchBody(Body):
    slug: PlainText | None = Field(default=None, min_length=1, max_length=60)
    name_en: PlainText | None = Field(default=None, min_length=1, max_length=80)
    name_ar: PlainText | None = Field(default=None, min_length=1, max_length=80)
    icon: PlainText | None = Field(default=None, max_length=60)
    parent_id: Annotated[Id | None, Nullable] = Field(default=None)  # null: top level
    position: int | None = Field(default=None, ge=0, le=100_000, strict=True)
    is_active: bool | None = None


class ReorderBody(Body):
    ids: list[Id] = Field(min_length=1, max_length=200)


class AdminCategoriesHandler(AdminHandler):
    @operation("adminListCategories", tag="Admin", response=Page[AdminCategoryOut], problems=(403,))
    async def get(self) -> None:
        """Every category, active or not."""
        found = await categories.admin_list_categories(
            self.deps, actor=self.user, locale=self.translator.locale
        )
        self.send({"count": len(found), "next": None, "previous": None, "results": found})

    @operation(
        "createCategory",
        tag="Admin",
        body=CategoryBody,
        response=AdminCategoryOut,
        status=201,
        problems=(403, 404, 409),
    )
    async def post(self) -> None:
        """Create a category (top-level, or under a top-level parent)."""
        body = self.parse_body(CategoryBody)
        created = await categories.create_category(
            self.deps, actor=self.user, fields=body.model_dump(), locale=self.translator.locale
        )
        self.send(created, status=201, location=f"/api/admin/categories/{created['id']}/")


class AdminCategoryHandler(AdminHandler):
    @operation(
        "updateCategory",
        tag="Admin",
        body=CategoryPatchBody,
        response=AdminCategoryOut,
        problems=(403, 404, 409),
    )
    async def patch(self, category_id: str) -> None:
        """Rename, move, reposition, deactivate (`is_active: false`) or reactivate a category."""
        body = self.parse_body(CategoryPatchBody)
        updated = await categories.update_category(
            self.deps,
            actor=self.user,
            category_id=path_id(category_id),
            changes=body.model_dump(exclude_unset=True),
            locale=self.translator.locale,
        )
        self.send(updated)

    @operation("deactivateCategory", tag="Admin", response=AdminCategoryOut, problems=(403, 404))
    async def delete(self, category_id: str) -> None:
        """Deactivate a category (categories are never removed: skills refer to them)."""
        updated = await categories.update_category(
            self.deps,
            actor=self.user,
            category_id=path_id(category_id),
            changes={"is_active": False},
            locale=self.translator.locale,
        )
        self.send(updated)


class AdminCategoryReorderHandler(AdminHandler):
    @operation(
        "reorderCategories",
        tag="Admin",
        body=ReorderBody,
        response=Page[AdminCategoryOut],
        problems=(403, 404),
    )
    async def post(self) -> None:
        """Order sibling categories as listed in `ids`."""
        body = self.parse_body(ReorderBody)
        ordered = await categories.reorder_categories(
            self.deps, actor=self.user, ordered_ids=body.ids, locale=self.translator.locale
        )
        self.send({"count": len(ordered), "next": None, "previous": None, "results": ordered})


routes = [
    route("/api/admin/categories/", AdminCategoriesHandler),
    route("/api/admin/categories/reorder/", AdminCategoryReorderHandler),
    route(r"/api/admin/categories/(?P<category_id>\d+)/", AdminCategoryHandler),
]
