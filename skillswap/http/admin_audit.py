"""The audit trail, read by administrators: `GET /api/admin/audit/?actor=&target_type=&target_id=&action=&sort=`.

Also `AdminHandler`, the base of the admin API's handlers that refuses anyone but an
administrator (403 `admin_only`) before their query string or body is read, so that a
non-administrator learns nothing from the validation of what they sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, Field

from skillswap.admin import audit
from skillswap.http.base import BaseHandler, route, takes_query
from skillswap.http.operations import operation
from skillswap.http.query import PageQuery
from skillswap.http.schemas import Out, Page
from skillswap.http.validation import Id
from skillswap.models import AuditEntry
from skillswap.models.admin import AuditTarget

M = TypeVar("M", bound=BaseModel)


class AdminHandler(BaseHandler):
    """A handler of the admin API: non-administrators are refused before any validation."""

    def parse_query(self, model: type[M]) -> M:
        # `prepare` reads the query after resolving the user: refuse first, then validate.
        if self.current_user is not None:
            audit.require_admin(self.current_user)
        return super().parse_query(model)

    def parse_body(self, model: type[M]) -> M:
        audit.require_admin(self.user)
        return super().parse_body(model)


class AuditEntryOut(Out):
    id: int
    actor_id: int = Field(description="The administrator who acted")
    action: str = Field(description="What was done, e.g. `wallet.adjust`, `category.update`")
    target_type: str = Field(json_schema_extra={"enum": [t.value for t in AuditTarget]})
    target_id: int
    before: dict[str, Any] | None = Field(description="The changed fields before the action")
    after: dict[str, Any] | None = Field(description="... and after it")
    reason: str
    request_id: str | None = Field(description="The X-Request-ID of the request that acted")
    created_at: datetime


class AuditQuery(PageQuery):
    actor: Id | None = Field(default=None, description="Only actions of this administrator")
    target_type: str | None = Field(
        default=None,
        pattern="^(" + "|".join(AuditTarget) + ")$",
        json_schema_extra={"enum": [t.value for t in AuditTarget]},
        description="Only actions on this kind of target",
    )
    target_id: Id | None = Field(default=None, description="Only actions on this target")
    action: str | None = Field(
        default=None, min_length=1, max_length=40, description="Only this action"
    )
    sort: str | None = Field(
        default=None,
        pattern="^(" + "|".join(audit.AUDIT_SORT_KEYS) + ")$",
        json_schema_extra={"enum": list(audit.AUDIT_SORT_KEYS)},
        description="A column, `-column` for descending (default: `-id`, newest first)",
    )


def audit_entry_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "actor_id": entry.actor_id,
        "action": entry.action,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "before": entry.before,
        "after": entry.after,
        "reason": entry.reason,
        "request_id": entry.request_id,
        "created_at": entry.created_at,
    }


class AdminAuditHandler(AdminHandler):
    @operation(
        "adminListAudit", tag="Admin", response=Page[AuditEntryOut], paged=True, problems=(403,)
    )
    @takes_query(AuditQuery)
    async def get(self) -> None:
        """Every administrator action, newest first, filtered by actor, target and action."""
        query = self.query(AuditQuery)
        page = self.page_params()
        count, rows = await audit.list_entries(
            self.deps,
            actor=self.user,
            where=audit.AuditFilter(
                actor_id=query.actor,
                target_type=query.target_type,
                target_id=query.target_id,
                action=query.action,
            ),
            offset=page.offset,
            limit=page.page_size,
            sort=query.sort,
        )
        self.send_page(page, count=count, results=[audit_entry_json(e) for e in rows])


routes = [route("/api/admin/audit/", AdminAuditHandler)]
