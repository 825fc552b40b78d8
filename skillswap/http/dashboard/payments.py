"""Payments and refunds (/admin/payments/): the admin API's list, and its refund, as forms."""

from __future__ import annotations

from typing import Any

from skillswap.http.admin_payments import RefundBody
from skillswap.http.base import route
from skillswap.http.dashboard.base import PAGE_SIZE, DashboardHandler
from skillswap.http.dashboard.export import stream_csv
from skillswap.http.dashboard.forms import as_body, checkbox
from skillswap.models.payments import PaymentStatus
from skillswap.payments import admin, refunds
from skillswap.payments.gateways import GATEWAYS

REFUNDABLE = (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED)


class PaymentsHandler(DashboardHandler):
    nav = "payments"

    def _filters(self) -> dict[str, str | None]:
        status = self.query_text("status")
        gateway = self.query_text("gateway")
        sort = self.query_text("sort")
        return {
            "status": status if status in set(PaymentStatus) else None,
            "gateway": gateway if gateway in GATEWAYS else None,
            "sort": sort if sort in admin.PAYMENT_SORT_KEYS else None,
        }

    async def _page(self, offset: int, limit: int) -> tuple[int, list[Any]]:
        return await admin.list_all_payments(
            self.deps, actor=self.actor, offset=offset, limit=limit, **self._filters()
        )

    async def show(self) -> None:
        """Every payment, newest first or as sorted, by gateway and status, with a refund form
        on paid ones."""
        if self.get_query_argument("format", None) == "csv":
            await stream_csv(
                self,
                filename="payments.csv",
                header=[
                    "id",
                    "user_id",
                    "gateway",
                    "status",
                    "points",
                    "amount_minor",
                    "currency",
                    "refunded_minor",
                    "reference",
                    "created_at",
                ],
                fetch=self._page,
                row=lambda p: [
                    p.id,
                    p.user_id,
                    p.gateway,
                    p.status,
                    p.points,
                    p.amount_minor,
                    p.currency,
                    p.refunded_minor,
                    p.reference,
                    p.created_at,
                ],
            )
            return
        count, rows = await self._page(self.offset(), PAGE_SIZE)
        self.render_page(
            "admin/payments.html",
            count=count,
            payments=rows,
            filters=self._filters(),
            statuses=list(PaymentStatus),
            gateways=list(GATEWAYS),
            refundable=REFUNDABLE,
            sort=self._filters()["sort"] or admin.DEFAULT_PAYMENT_SORT,
        )

    async def post(self) -> None:
        """Refund a payment (all that is left, or an amount) at its gateway."""
        await self.act(self._refund(), done="refunded")

    async def _refund(self) -> None:
        fields = self.form("amount_minor", "reason", "take_available")
        checkbox(fields, "take_available")
        body = as_body(RefundBody, fields, numbers=("amount_minor",))
        await refunds.refund_payment(
            self.deps,
            actor=self.actor,
            payment_id=self.form_id("payment_id"),
            amount_minor=body.amount_minor,
            reason=body.reason,
            take_available=body.take_available,
        )


routes = [route("/admin/payments/", PaymentsHandler)]
