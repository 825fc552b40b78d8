"""The reports queue (/admin/reports/): what users reported, open ones first, and the form that
closes each with an outcome (`close_report`: dismissing, a warning, hiding the skill or banning
the subject, in the report's own unit of work)."""

from __future__ import annotations

import json
from typing import Any

from skillswap.admin import reports
from skillswap.http.base import route
from skillswap.http.dashboard.base import PAGE_SIZE, DashboardHandler
from skillswap.http.dashboard.export import stream_csv
from skillswap.http.dashboard.forms import as_body
from skillswap.http.reports import CloseReportBody
from skillswap.models.admin import ReportOutcome, ReportStatus, ReportTarget

# `?status=` absent is the open queue; `all` shows closed ones too.
EVERY_STATUS = "all"
CSV_HEADER = [
    "id",
    "created_at",
    "status",
    "target_type",
    "target_id",
    "target",
    "subject_user_id",
    "reporter_id",
    "reason",
    "detail",
    "outcome",
    "note",
    "closed_by",
    "closed_at",
]


def outcomes_for(target_type: str) -> list[str]:
    """The outcomes a report of this kind may close with (only a skill's report hides one)."""
    return [o for o in ReportOutcome if o != ReportOutcome.SKILL_HIDDEN or target_type == "skill"]


def _csv_row(queued: reports.QueuedReport) -> list[Any]:
    r = queued.report
    return [
        r.id,
        r.created_at,
        r.status,
        r.target_type,
        r.target_id,
        json.dumps(queued.target, ensure_ascii=False, sort_keys=True),
        r.subject_user_id,
        r.reporter_id,
        r.reason,
        r.detail,
        r.outcome,
        r.note,
        r.closed_by,
        r.closed_at,
    ]


class ReportsHandler(DashboardHandler):
    nav = "reports"

    def _filters(self) -> dict[str, str | None]:
        status = self.query_text("status")
        target_type = self.query_text("target_type")
        return {
            "status": None
            if status == EVERY_STATUS
            else status
            if status in set(ReportStatus)
            else ReportStatus.OPEN,
            "target_type": target_type if target_type in set(ReportTarget) else None,
        }

    async def _page(self, offset: int, limit: int) -> tuple[int, list[reports.QueuedReport]]:
        return await reports.list_reports(
            self.deps, actor=self.actor, offset=offset, limit=limit, **self._filters()
        )

    async def show(self) -> None:
        """The queue, open reports first and oldest first, each target in a few words."""
        if self.get_query_argument("format", None) == "csv":
            await stream_csv(
                self, filename="reports.csv", header=CSV_HEADER, fetch=self._page, row=_csv_row
            )
            return
        count, rows = await self._page(self.offset(), PAGE_SIZE)
        filters = self._filters()
        self.render_page(
            "admin/reports.html",
            count=count,
            queue=rows,
            filters=filters,
            status_choice=filters["status"] or EVERY_STATUS,
            targets=list(ReportTarget),
            outcomes_for=outcomes_for,
        )

    async def post(self) -> None:
        """Close a report with an outcome and a note (which the person concerned reads when
        the outcome hides their skill or bans them)."""
        await self.act(self._close(), done="closed")

    async def _close(self) -> None:
        body = as_body(CloseReportBody, self.form("outcome", "note"))
        await reports.close_report(
            self.deps,
            actor=self.actor,
            report_id=self.form_id("report_id"),
            outcome=body.outcome,
            note=body.note,
        )


routes = [route("/admin/reports/", ReportsHandler)]
