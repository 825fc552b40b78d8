"""Points packages: bundles of points for sale, named in English and Arabic; admins manage them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from skillswap.admin import audit
from skillswap.errors import FieldErrors, NotFound, PermissionDenied, ValidationFailed
from skillswap.i18n import lazy
from skillswap.models import PointsPackage, User
from skillswap.models.admin import AuditTarget
from skillswap.models.ledger import PointsPackagePrice

if TYPE_CHECKING:
    from skillswap.deps import Deps

# Digits after the decimal point of currencies whose minor unit is not a hundredth (ISO 4217).
_MINOR_DIGITS = {
    "JPY": 0,
    "KRW": 0,
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
}
EDITABLE_FIELDS = (
    "name_en",
    "name_ar",
    "points",
    "price_minor",
    "currency",
    "is_active",
    "sort_order",
)


@dataclass(frozen=True)
class Price:
    """One of a package's prices: an amount in a currency's minor units."""

    currency: str
    amount_minor: int


def package_prices(package: PointsPackage) -> list[Price]:
    """Every price of the package: its default first, then the others by currency."""
    others = sorted(package.extra_prices, key=lambda price: price.currency)
    return [Price(package.currency, package.price_minor)] + [
        Price(price.currency, price.amount_minor) for price in others
    ]


def price_text(price_minor: int, currency: str) -> str:
    """The price in major units as an exact decimal string ("9.99", "1.250", "500")."""
    digits = _MINOR_DIGITS.get(currency, 2)
    return str(Decimal(price_minor).scaleb(-digits).quantize(Decimal(1).scaleb(-digits)))


def _require_admin(actor: User) -> None:
    if not actor.is_admin:
        raise PermissionDenied(
            lazy("Only administrators can manage points packages."), code="admin_only"
        )


def _audited(package: PointsPackage) -> dict[str, Any]:
    """What an audit row keeps of a package: its fields and its other prices."""
    fields: dict[str, Any] = {name: getattr(package, name) for name in EDITABLE_FIELDS}
    fields["prices"] = [
        {"currency": price.currency, "amount_minor": price.amount_minor}
        for price in sorted(package.extra_prices, key=lambda price: price.currency)
    ]
    return fields


def _not_found() -> NotFound:
    return NotFound(lazy("This points package does not exist."), code="package_not_found")


async def list_packages_for_sale(
    deps: Deps, *, offset: int, limit: int
) -> tuple[int, list[PointsPackage]]:
    """The active packages, in the administrators' order."""
    return await _list(deps, active_only=True, offset=offset, limit=limit)


async def list_all_packages(
    deps: Deps, *, actor: User, offset: int, limit: int
) -> tuple[int, list[PointsPackage]]:
    """Every package, inactive ones too (administrators)."""
    _require_admin(actor)
    return await _list(deps, active_only=False, offset=offset, limit=limit)


async def _list(
    deps: Deps, *, active_only: bool, offset: int, limit: int
) -> tuple[int, list[PointsPackage]]:
    conditions = [PointsPackage.is_active.is_(True)] if active_only else []
    async with deps.db.read() as session:
        count = await session.scalar(
            select(func.count()).select_from(PointsPackage).where(*conditions)
        )
        rows = (
            await session.scalars(
                select(PointsPackage)
                .where(*conditions)
                .order_by(PointsPackage.sort_order, PointsPackage.id)
                .offset(offset)
                .limit(limit)
            )
        ).all()
    return int(count or 0), list(rows)


async def get_package(deps: Deps, *, actor: User, package_id: int) -> PointsPackage:
    """One package (administrators)."""
    _require_admin(actor)
    async with deps.db.read() as session:
        package = await session.get(PointsPackage, package_id)
    if package is None:
        raise _not_found()
    return package


async def create_package(deps: Deps, *, actor: User, fields: dict[str, Any]) -> PointsPackage:
    """Add a package for sale (administrators)."""
    _require_admin(actor)
    now = deps.clock()
    async with deps.db.uow() as uow:
        package = PointsPackage(
            **{name: fields[name] for name in EDITABLE_FIELDS if name in fields},
            extra_prices=[],
            created_at=now,
            updated_at=now,
        )
        _set_prices(package, fields.get("prices", []))
        uow.session.add(package)
        await uow.session.flush()
        await audit.record(
            uow.session,
            actor,
            "package.create",
            AuditTarget.PACKAGE,
            package.id,
            after=_audited(package),
            now=now,
        )
        await uow.commit()
    return package


async def update_package(
    deps: Deps, *, actor: User, package_id: int, changes: dict[str, Any]
) -> PointsPackage:
    """Change some fields of a package (administrators)."""
    _require_admin(actor)
    async with deps.db.uow() as uow:
        # Locked: a delete committed meanwhile makes this a 404, not an update of nothing.
        package = await uow.session.get(
            PointsPackage, package_id, with_for_update=not deps.db.is_sqlite
        )
        if package is None:
            raise _not_found()
        before = _audited(package)
        for name in EDITABLE_FIELDS:
            if name in changes:
                setattr(package, name, changes[name])
        if "prices" in changes:
            _set_prices(package, changes["prices"])
        else:
            _refuse_second_default(package)
        now = deps.clock()
        package.updated_at = now
        await uow.session.flush()
        was, now_is = audit.changed(before, _audited(package))
        await audit.record(
            uow.session,
            actor,
            "package.update",
            AuditTarget.PACKAGE,
            package.id,
            before=was,
            after=now_is,
            now=now,
        )
        await uow.commit()
    return package


def _set_prices(package: PointsPackage, prices: Sequence[dict[str, Any]]) -> None:
    """Make the package's other prices those given (`prices.N.` fields); an entry in the
    package's own currency must repeat its default price and adds nothing."""
    errors: FieldErrors = {}
    wanted: dict[str, int] = {}
    for index, price in enumerate(prices):
        currency, amount = price["currency"], price["amount_minor"]
        if currency in wanted:
            errors[f"prices.{index}.currency"] = [lazy("This currency is priced twice.")]
        elif currency == package.currency and amount != package.price_minor:
            errors[f"prices.{index}.amount_minor"] = [
                lazy(
                    "The price in the package's own currency is its price_minor ({price_minor}).",
                    price_minor=package.price_minor,
                )
            ]
        wanted.setdefault(currency, amount)
    if errors:
        raise ValidationFailed(errors=errors)
    wanted.pop(package.currency, None)
    # Changed in place, so that a currency kept is an UPDATE of its row, never a DELETE and an
    # INSERT that the UNIQUE (package, currency) could see in the wrong order.
    kept = []
    for existing in package.extra_prices:
        if existing.currency in wanted:
            existing.amount_minor = wanted.pop(existing.currency)
            kept.append(existing)
    kept += [PointsPackagePrice(currency=c, amount_minor=a) for c, a in sorted(wanted.items())]
    package.extra_prices = kept


def _refuse_second_default(package: PointsPackage) -> None:
    """A new default currency the package already has another price in is ambiguous."""
    if any(price.currency == package.currency for price in package.extra_prices):
        raise ValidationFailed(
            errors={
                "currency": [
                    lazy(
                        "This package has another price in {currency}; send prices too.",
                        currency=package.currency,
                    )
                ]
            }
        )


async def delete_package(deps: Deps, *, actor: User, package_id: int) -> None:
    """Remove a package from sale for good (administrators; set is_active false to hide one)."""
    _require_admin(actor)
    async with deps.db.uow() as uow:
        # Locked: of two deletes (or a delete and an update) at once, the second sees a 404.
        package = await uow.session.get(
            PointsPackage, package_id, with_for_update=not deps.db.is_sqlite
        )
        if package is None:
            raise _not_found()
        await audit.record(
            uow.session,
            actor,
            "package.delete",
            AuditTarget.PACKAGE,
            package.id,
            before=_audited(package),
            now=deps.clock(),
        )
        await uow.session.delete(package)
        await uow.commit()
