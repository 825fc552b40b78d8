"""Administrators and payments: every payment (`GET /api/admin/payments/?status=&gateway=&sort=`)
and refunds (`POST /api/admin/payments/{id}/refund/`). The services check who is asking."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from skillswap.http.admin_audit import AdminHandler
from skillswap.http.base import idempotent, path_id, route, takes_query
from skillswap.http.operations import operation
from skillswap.http.payments import PaymentOut, payment_json
from skillswap.http.query import PageQuery
from skillswap.http.schemas import Out, Page
from skillswap.http.skills import PlainText
from skillswap.http.validation import Body
from skillswap.models import Payment, PaymentRefund
from skillswap.models.payments import PaymentStatus
from skillswap.payments import admin, refunds
from skillswap.payments.packages import price_text

STATUS_PATTERN = "^(" + "|".join(PaymentStatus) + ")$"


class AdminPaymentOut(PaymentOut):
    """A payment as administrators see it: whose it is, and the gateway's references."""

    user_id: int
    reference: str | None = Field(description="The gateway's checkout (Stripe's session)")
    gateway_payment_ref: str | None = Field(description="The gateway's payment, once paid")
    failure_reason: str | None


class RefundOut(Out):
    id: int
    gateway_refund_id: str
    amount: str = Field(description="Exact decimal, e.g. `4.99`")
    amount_minor: int
    points_reversed: int = Field(description="Points taken back from the buyer's wallet")
    points_unrecovered: int = Field(
        description="Points the buyer had spent: recorded as a loss (payment_losses)"
    )
    reason: str
    created_at: datetime


class RefundDoneOut(Out):
    payment: AdminPaymentOut
    refund: RefundOut


class AdminPaymentsQuery(PageQuery):
    status: str | None = Field(
        default=None,
        pattern=STATUS_PATTERN,
        json_schema_extra={"enum": [s.value for s in PaymentStatus]},
        description="Only payments in this status",
    )
    gateway: str | None = Field(
        default=None, min_length=1, max_length=16, description="Only payments through it"
    )
    sort: str | None = Field(
        default=None,
        pattern="^(" + "|".join(admin.PAYMENT_SORT_KEYS) + ")$",
        json_schema_extra={"enum": list(admin.PAYMENT_SORT_KEYS)},
        description="A column, `-column` for descending (default: `-id`, newest first)",
    )


class RefundBody(Body):
    amount_minor: int | None = Field(
        default=None, ge=1, le=10**12, description="Default: all that is left to refund"
    )
    reason: PlainText = Field(min_length=1, max_length=500)
    take_available: bool = Field(
        default=False,
        description="When the buyer spent some of the points: take what is left, record the "
        "rest as a loss (otherwise 409 `refund_points_spent`)",
    )


def admin_payment_json(payment: Payment) -> dict[str, Any]:
    return {
        **payment_json(payment),
        "user_id": payment.user_id,
        "reference": payment.reference,
        "gateway_payment_ref": payment.gateway_payment_ref,
        "failure_reason": payment.failure_reason,
    }


def refund_json(refund: PaymentRefund, currency: str) -> dict[str, Any]:
    return {
        "id": refund.id,
        "gateway_refund_id": refund.gateway_refund_id,
        "amount": price_text(refund.amount_minor, currency),
        "amount_minor": refund.amount_minor,
        "points_reversed": refund.points_reversed,
        "points_unrecovered": refund.points_unrecovered,
        "reason": refund.reason,
        "created_at": refund.created_at,
    }


class AdminPaymentsHandler(AdminHandler):
    @operation(
        "adminListPayments",
        tag="Admin",
        response=Page[AdminPaymentOut],
        paged=True,
        problems=(403,),
    )
    @takes_query(AdminPaymentsQuery)
    async def get(self) -> None:
        """Every payment, newest first (`?status=`, `?gateway=` to filter, `?sort=` to order)."""
        query = self.query(AdminPaymentsQuery)
        page = self.page_params()
        count, rows = await admin.list_all_payments(
            self.deps,
            actor=self.user,
            status=query.status,
            gateway=query.gateway,
            offset=page.offset,
            limit=page.page_size,
            sort=query.sort,
        )
        self.send_page(page, count=count, results=[admin_payment_json(p) for p in rows])


class AdminRefundHandler(AdminHandler):
    @operation(
        "refundPayment",
        tag="Admin",
        body=RefundBody,
        response=RefundDoneOut,
        problems=(403, 404, 409, 503),
    )
    @idempotent
    async def post(self, payment_id: str) -> None:
        """Refund a payment at its gateway and take back its share of the points."""
        body = self.parse_body(RefundBody)
        done = await refunds.refund_payment(
            self.deps,
            actor=self.user,
            payment_id=path_id(payment_id),
            amount_minor=body.amount_minor,
            reason=body.reason,
            take_available=body.take_available,
        )
        self.send(
            {
                "payment": admin_payment_json(done.payment),
                "refund": refund_json(done.refund, done.payment.currency),
            }
        )


routes = [
    route("/api/admin/payments/", AdminPaymentsHandler),
    route(r"/api/admin/payments/(\d+)/refund/", AdminRefundHandler),
]
