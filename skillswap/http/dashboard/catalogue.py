"""What the marketplace offers: categories and points packages (/admin/categories/, /packages/)."""

from __future__ import annotations

from typing import Any

from skillswap.http.admin_categories import CategoryBody, CategoryPatchBody
from skillswap.http.admin_packages import PackageBody, PackagePatchBody
from skillswap.http.base import route
from skillswap.http.dashboard.base import PAGE_SIZE, DashboardHandler
from skillswap.http.dashboard.export import stream_csv
from skillswap.http.dashboard.forms import as_body, checkbox, prices_as_text, prices_from_text
from skillswap.payments import packages
from skillswap.skills import categories

CATEGORY_FIELDS = ("slug", "name_en", "name_ar", "icon", "parent_id", "position")
PACKAGE_FIELDS = ("name_en", "name_ar", "points", "price_minor", "currency", "sort_order")
PACKAGE_NUMBERS = ("points", "price_minor", "sort_order")


class CategoriesHandler(DashboardHandler):
    nav = "categories"

    async def show(self) -> None:
        """Every category, active or not, with the forms that create and edit them."""
        found = await categories.admin_list_categories(
            self.deps, actor=self.actor, locale=self.translator.locale
        )
        if self.get_query_argument("format", None) == "csv":
            await stream_csv(
                self,
                filename="categories.csv",
                header=["id", "slug", "name_en", "name_ar", "parent_id", "position", "is_active"],
                fetch=lambda offset, limit: _slice(found, offset, limit),
                row=lambda c: [
                    c[k]
                    for k in (
                        "id",
                        "slug",
                        "name_en",
                        "name_ar",
                        "parent_id",
                        "position",
                        "is_active",
                    )
                ],
            )
            return
        self.render_page(
            "admin/categories.html",
            categories=found,
            top_level=[c for c in found if c["parent_id"] is None],
        )

    async def post(self) -> None:
        """Create a category, edit one, or deactivate / reactivate one."""
        action = self.get_body_argument("action", "")
        if action == "create":
            await self.act(self._create(), done="saved")
        else:
            await self.act(self._update(action), done="saved")

    async def _create(self) -> None:
        body = as_body(CategoryBody, self.form(*CATEGORY_FIELDS), numbers=("parent_id", "position"))
        await categories.create_category(
            self.deps, actor=self.actor, fields=body.model_dump(), locale=self.translator.locale
        )

    async def _update(self, action: str) -> None:
        if action == "deactivate":
            changes: dict[str, Any] = {"is_active": False}
        elif action == "activate":
            changes = {"is_active": True}
        else:
            fields = self.form(*CATEGORY_FIELDS)
            parent = fields.pop("parent_id", "")
            body = as_body(CategoryPatchBody, fields, numbers=("position",))
            changes = body.model_dump(exclude_unset=True)
            changes["parent_id"] = int(parent) if parent.isdecimal() else None
        await categories.update_category(
            self.deps,
            actor=self.actor,
            category_id=self.form_id("category_id"),
            changes=changes,
            locale=self.translator.locale,
        )


async def _slice(rows: list[Any], offset: int, limit: int) -> tuple[int, list[Any]]:
    return len(rows), rows[offset : offset + limit]


class PackagesHandler(DashboardHandler):
    nav = "packages"

    async def show(self) -> None:
        """Every points package with its prices, and the forms that create and edit them."""
        if self.get_query_argument("format", None) == "csv":
            await stream_csv(
                self,
                filename="packages.csv",
                header=[
                    "id",
                    "name_en",
                    "name_ar",
                    "points",
                    "price_minor",
                    "currency",
                    "prices",
                    "is_active",
                    "sort_order",
                ],
                fetch=self._page,
                row=lambda p: [
                    p.id,
                    p.name_en,
                    p.name_ar,
                    p.points,
                    p.price_minor,
                    p.currency,
                    prices_as_text(p.extra_prices),
                    p.is_active,
                    p.sort_order,
                ],
            )
            return
        count, rows = await self._page(self.offset(), PAGE_SIZE)
        self.render_page(
            "admin/packages.html", count=count, packages=rows, prices_as_text=prices_as_text
        )

    async def _page(self, offset: int, limit: int) -> tuple[int, list[Any]]:
        return await packages.list_all_packages(
            self.deps, actor=self.actor, offset=offset, limit=limit
        )

    async def post(self) -> None:
        """Create a package, or change one (its prices included)."""
        if self.get_body_argument("action", "") == "create":
            await self.act(self._create(), done="saved")
        else:
            await self.act(self._update(), done="saved")

    def _fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = self.form(*PACKAGE_FIELDS, "is_active")
        checkbox(fields, "is_active")
        return fields

    def _prices(self) -> dict[str, Any]:
        return {"prices": prices_from_text(self.get_body_argument("prices", "") or "")}

    async def _create(self) -> None:
        body = as_body(PackageBody, self._fields(), numbers=PACKAGE_NUMBERS, extra=self._prices())
        await packages.create_package(self.deps, actor=self.actor, fields=body.model_dump())

    async def _update(self) -> None:
        body = as_body(
            PackagePatchBody, self._fields(), numbers=PACKAGE_NUMBERS, extra=self._prices()
        )
        changes = body.model_dump(exclude_unset=True)
        await packages.update_package(
            self.deps, actor=self.actor, package_id=self.form_id("package_id"), changes=changes
        )


routes = [
    route("/admin/categories/", CategoriesHandler),
    route("/admin/packages/", PackagesHandler),
]
