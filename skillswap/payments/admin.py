"""What administrators see of payments: every payment, filtered by status and gateway."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select

from skillswap.errors import PermissionDenied
from skillswap.i18n import lazy
from skillswap.models import Payment, User

if TYPE_CHECKING:
    from skillswap.deps import Deps


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
) -> tuple[int, list[Payment]]:
    """Every buyer's payments, newest first, with the total count (administrators)."""
    require_admin(actor)
    conditions = []
    if status is not None:
        conditions.append(Payment.status == status)
    if gateway is not None:
        conditions.append(Payment.gateway == gateway)
    async with deps.db.read() as session:
        count = await session.scalar(select(func.count()).select_from(Payment).where(*conditions))
        rows = await session.scalars(
            select(Payment)
            .where(*conditions)
            .order_by(Payment.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return int(count or 0), list(rows)
