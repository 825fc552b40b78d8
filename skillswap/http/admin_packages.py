"""Administrators manage the points packages: /api/admin/packages/."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from skillswap.http.admin_audit import AdminHandler
from skillswap.http.base import idempotent, path_id, route, takes_query
from skillswap.http.operations import operation
from skillswap.http.points import package_json
from skillswap.http.query import PageQuery
from skillswap.http.schemas import AdminPackageOut, Page
from skillswap.http.validation import Body
from skillswap.payments import packages as points_packages

CURRENCY = r"^[A-Z]{3}$"
MAX_PRICES = 50  # far more currencies than any gateway takes


class PriceBody(Body):
    currency: str = Field(pattern=CURRENCY)
    amount_minor: int = Field(ge=1, le=1_000_000_000)


class PackageBody(Body):
    name_en: str = Field(min_length=1, max_length=80)
    name_ar: str = Field(min_length=1, max_length=80)
    points: int = Field(ge=1, le=10_000_000)
    price_minor: int = Field(ge=1, le=1_000_000_000)
    currency: str = Field(pattern=CURRENCY)
    is_active: bool = True
    sort_order: int = Field(default=0, ge=-1_000_000, le=1_000_000)
    prices: list[PriceBody] = Field(
        default_factory=list,
        max_length=MAX_PRICES,
        description="Its prices in other currencies (`price_minor`/`currency` is the default)",
    )


class PackagePatchBody(Body):
    name_en: str | None = Field(default=None, min_length=1, max_length=80)
    name_ar: str | None = Field(default=None, min_length=1, max_length=80)
    points: int | None = Field(default=None, ge=1, le=10_000_000)
    price_minor: int | None = Field(default=None, ge=1, le=1_000_000_000)
    currency: str | None = Field(default=None, pattern=CURRENCY)
    is_active: bool | None = None
    sort_order: int | None = Field(default=None, ge=-1_000_000, le=1_000_000)
    prices: list[PriceBody] | None = Field(
        default=None,
        max_length=MAX_PRICES,
        description="Replaces its prices in other currencies (`[]` leaves only the default)",
    )


class AdminPackagesHandler(AdminHandler):
    @operation(
        "adminListPackages",
        tag="Admin",
        response=Page[AdminPackageOut],
        paged=True,
        problems=(403,),
    )
    @takes_query(PageQuery)
    async def get(self) -> None:
        """Every package, on sale or not."""
        page = self.page_params()
        count, packages = await points_packages.list_all_packages(
            self.deps, actor=self.user, offset=page.offset, limit=page.page_size
        )
        self.send_page(
            page,
            count=count,
            results=[package_json(p, self.translator, admin=True) for p in packages],
        )

    @operation(
        "createPackage",
        tag="Admin",
        body=PackageBody,
        response=AdminPackageOut,
        status=201,
        problems=(403,),
    )
    @idempotent
    async def post(self) -> None:
        """Add a package."""
        body = self.parse_body(PackageBody)
        package = await points_packages.create_package(
            self.deps, actor=self.user, fields=body.model_dump()
        )
        self.send(package_json(package, self.translator, admin=True), status=201)

    def location_of(self, created: Any) -> str:
        return f"/api/admin/packages/{created['id']}/"


class AdminPackageHandler(AdminHandler):
    @operation("getPackage", tag="Admin", response=AdminPackageOut, problems=(403, 404))
    async def get(self, package_id: str) -> None:
        """One package."""
        package = await points_packages.get_package(
            self.deps, actor=self.user, package_id=path_id(package_id)
        )
        self.send(package_json(package, self.translator, admin=True))

    @operation(
        "replacePackage",
        tag="Admin",
        body=PackageBody,
        response=AdminPackageOut,
        problems=(403, 404),
    )
    async def put(self, package_id: str) -> None:
        """Replace a package's fields."""
        body = self.parse_body(PackageBody)
        package = await points_packages.update_package(
            self.deps, actor=self.user, package_id=path_id(package_id), changes=body.model_dump()
        )
        self.send(package_json(package, self.translator, admin=True))

    @operation(
        "updatePackage",
        tag="Admin",
        body=PackagePatchBody,
        response=AdminPackageOut,
        problems=(403, 404),
    )
    async def patch(self, package_id: str) -> None:
        """Change some of a package's fields."""
        body = self.parse_body(PackagePatchBody)
        changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
        package = await points_packages.update_package(
            self.deps, actor=self.user, package_id=path_id(package_id), changes=changes
        )
        self.send(package_json(package, self.translator, admin=True))

    @operation("deletePackage", tag="Admin", status=204, problems=(403, 404, 409))
    async def delete(self, package_id: str) -> None:
        """Remove a package (to stop selling it but keep it, set is_active to false)."""
        await points_packages.delete_package(
            self.deps, actor=self.user, package_id=path_id(package_id)
        )
        self.set_status(204)


routes = [
    route("/api/admin/packages/", AdminPackagesHandler),
    route(r"/api/admin/packages/(\d+)/", AdminPackageHandler),
]
