"""The audit trail (/admin/audit/): who did what to which target, filtered as the API filters."""

from __future__ import annotations

import json
from typing import Any

from skillswap.admin import audit
from skillswap.http.base import route
from skillswap.http.dashboard.base import PAGE_SIZE, DashboardHandler
from skillswap.http.dashboard.export import stream_csv
from skillswap.models.admin import AuditTarget


class AuditHandler(DashboardHandler):
    nav = "audit"

    def _filter(self) -> audit.AuditFilter:
        target_type = self.query_text("target_type")
        action = self.query_text("action")
        return audit.AuditFilter(
            actor_id=self.query_id("actor"),
            target_type=target_type if target_type in set(AuditTarget) else None,
            target_id=self.query_id("target_id"),
            action=action[:40] if action else None,
        )

    def _sort(self) -> str | None:
        sort = self.query_text("sort")
        return sort if sort in audit.AUDIT_SORT_KEYS else None

    async def _page(self, offset: int, limit: int) -> tuple[int, list[Any]]:
        return await audit.list_entries(
            self.deps,
            actor=self.actor,
            where=self._filter(),
            offset=offset,
            limit=limit,
            sort=self._sort(),
        )

    async def show(self) -> None:
        """Every administrator action, newest first or as sorted, filtered."""
        if self.get_query_argument("format", None) == "csv":
            await stream_csv(
                self,
                filename="audit.csv",
                header=[
                    "id",
                    "created_at",
                    "actor_id",
                    "action",
                    "target_type",
                    "target_id",
                    "before",
                    "after",
                    "reason",
                    "request_id",
                ],
                fetch=self._page,
                row=lambda e: [
                    e.id,
                    e.created_at,
                    e.actor_id,
                    e.action,
                    e.target_type,
                    e.target_id,
                    _json(e.before),
                    _json(e.after),
                    e.reason,
                    e.request_id,
                ],
            )
            return
        count, rows = await self._page(self.offset(), PAGE_SIZE)
        self.render_page(
            "admin/audit.html",
            count=count,
            entries=rows,
            where=self._filter(),
            targets=list(AuditTarget),
            sort=self._sort() or audit.DEFAULT_AUDIT_SORT,
        )


def _json(values: dict[str, Any] | None) -> str:
    return "" if values is None else json.dumps(values, ensure_ascii=False, sort_keys=True)


routes = [route("/admin/audit/", AuditHandler)]
