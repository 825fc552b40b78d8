"""The audit trail: one append-only row per administrator action, in the action's transaction.

`record` is the only way a row is written; nothing updates or deletes one (a database trigger
refuses both). The request id comes from the request that asked for the action: the HTTP layer
sets `REQUEST_ID` for the duration of each request, so services need not pass it along.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from skillswap.errors import PermissionDenied, ValidationFailed
from skillswap.i18n import Message, lazy, one_of
from skillswap.models import AuditEntry, User
from skillswap.models.admin import AuditTarget

if TYPE_CHECKING:
    from skillswap.deps import Deps

# The id of the request being served (set by the HTTP layer; None in the CLI and in tasks).
REQUEST_ID: ContextVar[str | None] = ContextVar("skillswap_request_id", default=None)

ADMINS_ONLY = lazy("Only administrators can do this.")


def require_admin(actor: User, message: Message = ADMINS_ONLY) -> None:
    """Refuse (403 `admin_only`) anyone but an active administrator."""
    if not (actor.is_admin and actor.is_active):
        raise PermissionDenied(message, code="admin_only")


async def record(
    session: AsyncSession,
    actor: User,
    action: str,
    target_type: AuditTarget,
    target_id: int,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str = "",
    now: datetime,
) -> AuditEntry:
    """Write one audit row in the caller's unit of work (committed, or not, with the action)."""
    entry = AuditEntry(
        actor_id=actor.id,
        action=action,
        target_type=str(target_type),
        target_id=target_id,
        before=_plain(before),
        after=_plain(after),
        reason=reason,
        request_id=REQUEST_ID.get(),
        created_at=now,
    )
    session.add(entry)
    await session.flush()
    return entry


def changed(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only the fields that changed, on both sides (what an update's audit row keeps)."""
    keys = [k for k in after if before.get(k) != after[k]]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}


def _plain(values: dict[str, Any] | None) -> dict[str, Any] | None:
    """JSON-safe: datetimes as ISO 8601, everything else as is (ints, strings, bools, None)."""
    if values is None:
        return None
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}


# The columns the trail may be sorted by: `column` ascending, `-column` descending; ties (and
# the default, newest first) by id.
AUDIT_SORTS: dict[str, Any] = {
    "id": AuditEntry.id,
    "created_at": AuditEntry.created_at,
    "actor": AuditEntry.actor_id,
    "action": AuditEntry.action,
    "target_type": AuditEntry.target_type,
}
DEFAULT_AUDIT_SORT = "-id"
AUDIT_SORT_KEYS = tuple(k for name in AUDIT_SORTS for k in (name, "-" + name))


@dataclass(frozen=True)
class AuditFilter:
    actor_id: int | None = None
    target_type: str | None = None
    target_id: int | None = None
    action: str | None = None


async def list_entries(
    deps: Deps,
    *,
    actor: User,
    where: AuditFilter,
    offset: int,
    limit: int,
    sort: str | None = None,
) -> tuple[int, list[AuditEntry]]:
    """The audit trail, newest first unless `sort` (one of AUDIT_SORT_KEYS) says, filtered by
    actor, target and action (administrators)."""
    require_admin(actor)
    order = _order_by(sort or DEFAULT_AUDIT_SORT)
    conditions = []
    if where.actor_id is not None:
        conditions.append(AuditEntry.actor_id == where.actor_id)
    if where.target_type is not None:
        conditions.append(AuditEntry.target_type == where.target_type)
    if where.target_id is not None:
        conditions.append(AuditEntry.target_id == where.target_id)
    if where.action is not None:
        conditions.append(AuditEntry.action == where.action)
    async with deps.db.read() as session:
        count = await session.scalar(
            select(func.count()).select_from(AuditEntry).where(*conditions)
        )
        rows = await session.scalars(
            select(AuditEntry).where(*conditions).order_by(*order).offset(offset).limit(limit)
        )
        return int(count or 0), list(rows)


def _order_by(sort: str) -> list[Any]:
    """The ORDER BY of a sort key (400 naming `sort` for any other)."""
    if sort not in AUDIT_SORT_KEYS:
        raise ValidationFailed(
            errors={"sort": [lazy("Must be one of: {choices}.", choices=one_of(AUDIT_SORT_KEYS))]}
        )
    descending = sort.startswith("-")
    column = AUDIT_SORTS[sort.removeprefix("-")]
    tie = AuditEntry.id.desc() if descending else AuditEntry.id.asc()
    return [column.desc() if descending else column.asc(), tie]
