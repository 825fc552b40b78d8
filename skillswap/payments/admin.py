"""What administrators see of payments: every payment, filtered by status and gateway."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from skillswap.errors import PermissionDenied, ValidationFailed
from skillswap.i18n import lazy, one_of
from skillswap.models import Payment, User

if TYPE_CHECKING:
    from skillswap.deps import Deps

# The columns a list may be sorted by: `column` ascending, `-column` descending; ties (and the
# default, newest first) by id.
PAYMENT_SORTS: dict[str, Any] = {
    "id": Payment.id,
    "created_at": Payment.created_at,
    "amount": Payment.amount_minor,
    "points": Payment.points,
    "status": Payment.status,
    "gateway": Payment.gateway,
}
DEFAULT_PAYMENT_SORT = "-id"
PAYMENT_SORT_KEYS = tuple(k for name in PAYMENT_SORTS for k in (name, "-" + name))


def require_admin(actor: User) -> None:
    """Refuse (403 `admin_only`) anyone but an administrator."""
    if not actor.is_admin:
        raise PermissionDenied(lazy("Only administrators can manage payments."), code="admin_only")


async def list_all_payments(
    deps: Deps,
    *,
    actor: User,
    status: str | None,
    gateway: str | None,
    offset: int,
    limit: int,
    sort: str | None = None,
) -> tuple[int, list[Payment]]:
    """Every buyer's payments, newest first unless `sort` (one of PAYMENT_SORT_KEYS) says, with
    the total count (administrators)."""
    require_admin(actor)
    order = _order_by(sort or DEFAULT_PAYMENT_SORT)
    conditions = []
    if status is not None:
        conditions.append(Payment.status == status)
    if gateway is not None:
        conditions.append(Payment.gateway == gateway)
    async with deps.db.read() as session:
        count = await session.scalar(select(func.count()).select_from(Payment).where(*conditions))
        rows = await session.scalars(
            select(Payment).where(*conditions).order_by(*order).offset(offset).limit(limit)
        )
        return int(count or 0), list(rows)


def _order_by(sort: str) -> list[Any]:
    """The ORDER BY of a sort key (400 naming `sort` for any other)."""
    if sort not in PAYMENT_SORT_KEYS:
        raise ValidationFailed(
            errors={"sort": [lazy("Must be one of: {choices}.", choices=one_of(PAYMENT_SORT_KEYS))]}
        )
    descending = sort.startswith("-")
    column = PAYMENT_SORTS[sort.removeprefix("-")]
    tie = Payment.id.desc() if descending else Payment.id.asc()
    return [column.desc() if descending else column.asc(), tie]
