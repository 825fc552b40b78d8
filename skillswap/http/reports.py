"""Reports: `POST /api/reports/` (any signed-in user), and the administrators' queue
(`GET /api/admin/reports/`) and `POST /api/admin/reports/{id}/close/`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from skillswap.admin import reports
from skillswap.http.admin_audit import AdminHandler
from skillswap.http.admin_users import AdminReportOut, admin_report_json
from skillswap.http.base import BaseHandler, idempotent, limited, path_id, route, takes_query
from skillswap.http.operations import operation
from skillswap.http.query import PageQuery
from skillswap.http.schemas import Out, Page
from skillswap.http.skills import PlainText
from skillswap.http.validation import Body, Id
from skillswap.models import Report

TargetType = Literal["skill", "user", "review", "message"]
ReasonName = Literal["spam", "fraud", "abuse", "inappropriate", "copyright", "other"]
OutcomeName = Literal["dismissed", "warned", "skill_hidden", "user_banned"]


class ReportOut(Out):
    """A report as its reporter sees it (never who handled it, nor their note)."""

    id: int
    target_type: TargetType
    target_id: int
    reason: ReasonName
    detail: str
    status: Literal["open", "closed"]
    created_at: datetime


class QueuedReportOut(AdminReportOut):
    target: dict[str, Any] = Field(
        description="The target summarised: a skill's `title` and `status`, a user's `username` "
        "and `is_active`, a review's `text` and `rating`, a message's `text` and `room` "
        "(empty once it is gone)"
    )


def report_json(report: Report) -> dict[str, Any]:
    return {
        "id": report.id,
        "target_type": report.target_type,
        "target_id": report.target_id,
        "reason": report.reason,
        "detail": report.detail,
        "status": report.status,
        "created_at": report.created_at,
    }


class ReportBody(Body):
    target_type: TargetType
    target_id: Id
    reason: ReasonName
    detail: PlainText = Field(default="", max_length=2000)


class ReportsQuery(PageQuery):
    status: Literal["open", "closed"] | None = None
    target_type: TargetType | None = None


class CloseReportBody(Body):
    outcome: OutcomeName
    note: PlainText = Field(
        default="",
        max_length=1000,
        description="Required to hide or ban: the skill's owner or the banned user reads it",
    )


class ReportsHandler(BaseHandler):
    @operation(
        "fileReport",
        tag="Accounts",
        body=ReportBody,
        response=ReportOut,
        status=201,
        also={200: ReportOut},
        problems=(404, 409, 429),
    )
    @limited("report")
    @idempotent
    async def post(self) -> None:
        """Report a skill, a user, a review or a chat message (200: your open report of it)."""
        body = self.parse_body(ReportBody)
        filed = await reports.file_report(
            self.deps,
            actor=self.user,
            target_type=body.target_type,
            target_id=body.target_id,
            reason=body.reason,
            detail=body.detail,
        )
        self.send(report_json(filed.report), status=201 if filed.created else 200)

    def location_of(self, created: Any) -> str:
        return f"/api/reports/{created['id']}/"

    @operation("listOwnReports", tag="Accounts", response=Page[ReportOut], paged=True)
    @takes_query(PageQuery)
    async def get(self) -> None:
        """The reports you filed, newest first, with whether they are still open."""
        page = self.page_params()
        count, rows = await reports.own_reports(
            self.deps, actor=self.user, offset=page.offset, limit=page.page_size
        )
        self.send_page(page, count=count, results=[report_json(r) for r in rows])


class ReportHandler(BaseHandler):
    @operation("getOwnReport", tag="Accounts", response=ReportOut, problems=(404,))
    async def get(self, report_id: str) -> None:
        """One report you filed (anyone else's is 404)."""
        found = await reports.own_report(self.deps, actor=self.user, report_id=path_id(report_id))
        self.send(report_json(found))


class AdminReportsHandler(AdminHandler):
    @operation(
        "adminListReports",
        tag="Admin",
        response=Page[QueuedReportOut],
        paged=True,
        problems=(403,),
    )
    @takes_query(ReportsQuery)
    async def get(self) -> None:
        """The reports queue: open ones first, oldest first, each target summarised."""
        query = self.query(ReportsQuery)
        page = self.page_params()
        count, rows = await reports.list_reports(
            self.deps,
            actor=self.user,
            status=query.status,
            target_type=query.target_type,
            offset=page.offset,
            limit=page.page_size,
        )
        results = [{**admin_report_json(q.report), "target": q.target} for q in rows]
        self.send_page(page, count=count, results=results)


class AdminCloseReportHandler(AdminHandler):
    @operation(
        "adminCloseReport",
        tag="Admin",
        body=CloseReportBody,
        response=AdminReportOut,
        problems=(403, 404, 409),
    )
    async def post(self, report_id: str) -> None:
        """Close a report with what was done (hiding the skill or banning its subject here)."""
        body = self.parse_body(CloseReportBody)
        closed = await reports.close_report(
            self.deps,
            actor=self.user,
            report_id=path_id(report_id),
            outcome=body.outcome,
            note=body.note,
        )
        self.send(admin_report_json(closed))


routes = [
    route("/api/reports/", ReportsHandler),
    route(r"/api/reports/(?P<report_id>\d+)/", ReportHandler),
    route("/api/admin/reports/", AdminReportsHandler),
    route(r"/api/admin/reports/(?P<report_id>\d+)/close/", AdminCloseReportHandler),
]
