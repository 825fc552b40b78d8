"""The stored and sent values of the enums, the timestamp format and page offsets, written out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import CheckConstraint, Table

from skillswap.api.encoding import dumps, iso
from skillswap.api.paging import PageParams, page_offset
from skillswap.models import (
    ChatRoom,
    LedgerAccount,
    LedgerHold,
    LedgerTransfer,
    Order,
    Review,
    Skill,
)
from skillswap.models.admin import (
    AuditEntry,
    AuditTarget,
    Report,
    ReportOutcome,
    ReportReason,
    ReportStatus,
    ReportTarget,
)
from skillswap.models.chat import RoomKind
from skillswap.models.ledger import AccountKind, HoldStatus, TransferStatus
from skillswap.models.notifications import NotificationKind
from skillswap.models.orders import OrderAction, OrderStatus, Resolution
from skillswap.models.reviews import ReviewerRole
from skillswap.models.skills import SkillLevel, SkillStatus
from skillswap.orders.rules import ACTIONS, OPEN_STATUSES, TERMINAL_STATUSES


def _check(model: type, name: str) -> str:
    table: Table = model.__table__  # type: ignore[attr-defined]
    (constraint,) = [
        c
        for c in table.constraints
        if isinstance(c, CheckConstraint) and str(c.name).endswith(f"_{name}")
    ]
    return str(constraint.sqltext)


def test_every_enum_keeps_the_values_the_database_and_the_api_hold() -> None:
    assert [s.value for s in OrderStatus] == [
        "pending",
        "accepted",
        "delivered",
        "completed",
        "rejected",
        "cancelled",
        "expired",
        "disputed",
        "resolved",
        "paused",
    ]
    assert [a.value for a in OrderAction] == [
        "place",
        "accept",
        "reject",
        "deliver",
        "cancel",
        "complete",
        "request_changes",
        "dispute",
        "resolve",
        "expire",
        "pause",
        "resume",
        "propose_time",
        "accept_time",
        "no_show",
    ]
    assert [r.value for r in Resolution] == ["refund", "release", "split"]
    assert [k.value for k in AccountKind] == ["user", "system"]
    assert [s.value for s in TransferStatus] == ["posted", "rejected"]
    assert [s.value for s in HoldStatus] == ["pending", "posted", "voided", "rejected"]
    assert [k.value for k in RoomKind] == ["order", "direct"]
    assert [s.value for s in SkillStatus] == ["active", "paused", "deleted", "hidden"]
    assert [lv.value for lv in SkillLevel] == ["beginner", "intermediate", "advanced", "expert"]
    assert [r.value for r in ReviewerRole] == ["buyer", "seller"]
    assert [k.value for k in NotificationKind] == [
        "order_placed",
        "order_accepted",
        "order_rejected",
        "order_delivered",
        "order_completed",
        "order_cancelled",
        "order_changes_requested",
        "order_disputed",
        "order_resolved",
        "order_expired",
        "order_updated",
        "chat_message",
        "review_received",
        "skill_hidden",
        "skill_restored",
        "order_paused",
        "order_resumed",
        "points_adjusted",
        "lesson_reminder",
        "email_verification",
        "password_reset",
    ]


def test_a_person_takes_eleven_actions_and_open_and_terminal_statuses_split_the_rest() -> None:
    assert list(ACTIONS) == [
        "accept",
        "reject",
        "deliver",
        "cancel",
        "complete",
        "request_changes",
        "dispute",
        "resolve",
        "no_show",  # the three of lessons
        "propose_time",
        "accept_time",
    ]
    assert list(OPEN_STATUSES) == ["pending", "accepted", "delivered", "disputed", "paused"]
    assert list(TERMINAL_STATUSES) == ["completed", "rejected", "cancelled", "expired", "resolved"]


def test_check_constraints_list_the_enum_values_as_the_migrations_wrote_them() -> None:
    assert _check(Order, "status_known") == (
        "status IN ('pending', 'accepted', 'delivered', 'completed', 'rejected',"
        " 'cancelled', 'expired', 'disputed', 'resolved', 'paused')"
    )
    assert _check(Order, "resolution_known") == (
        "resolution IS NULL OR resolution IN ('refund', 'release', 'split')"
    )
    assert _check(LedgerAccount, "kind_known") == "kind IN ('user', 'system')"
    assert _check(LedgerHold, "status_known") == (
        "status IN ('pending', 'posted', 'voided', 'rejected')"
    )
    assert _check(LedgerTransfer, "status_known") == "status IN ('posted', 'rejected')"
    assert _check(ChatRoom, "kind") == "kind IN ('order', 'direct')"
    assert _check(Skill, "status_known") == "status IN ('active', 'paused', 'deleted', 'hidden')"
    assert _check(Review, "reviewer_role_known") == "reviewer_role IN ('buyer', 'seller')"
    assert _check(AuditEntry, "target_known") == (
        "target_type IN ('user', 'skill', 'order', 'payment', 'report', 'category', 'package',"
        " 'wallet')"
    )
    assert _check(Report, "target_known") == (
        "target_type IN ('skill', 'user', 'review', 'message')"
    )
    assert _check(Report, "reason_known") == (
        "reason IN ('spam', 'fraud', 'abuse', 'inappropriate', 'copyright', 'other')"
    )
    assert _check(Report, "status_known") == "status IN ('open', 'closed')"
    assert _check(Report, "outcome_known") == (
        "outcome IS NULL OR outcome IN ('dismissed', 'skill_hidden', 'user_banned', 'warned')"
    )


def test_the_admin_enums_keep_the_values_the_database_holds() -> None:
    assert [t.value for t in AuditTarget] == [
        "user",
        "skill",
        "order",
        "payment",
        "report",
        "category",
        "package",
        "wallet",
    ]
    assert [t.value for t in ReportTarget] == ["skill", "user", "review", "message"]
    assert [r.value for r in ReportReason] == [
        "spam",
        "fraud",
        "abuse",
        "inappropriate",
        "copyright",
        "other",
    ]
    assert [s.value for s in ReportStatus] == ["open", "closed"]
    assert [o.value for o in ReportOutcome] == [
        "dismissed",
        "skill_hidden",
        "user_banned",
        "warned",
    ]


def test_an_enum_is_sent_as_its_value() -> None:
    document = {OrderStatus.PENDING: [OrderAction.ACCEPT, HoldStatus.VOIDED]}
    assert dumps(document) == '{"pending":["accept","voided"]}'
    assert f"{OrderAction.REQUEST_CHANGES}" == str(OrderAction.REQUEST_CHANGES) == "request_changes"
    assert OrderStatus.PENDING == "pending"


def test_timestamps_are_iso_8601_in_utc_with_z() -> None:
    moment = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)
    assert iso(moment) == "2026-03-04T05:06:07.890000Z"
    assert iso(datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)) == "2026-03-04T05:06:07Z"
    assert iso(None) is None
    # Another offset is kept as it is (every stored timestamp is read back in UTC).
    cairo = timezone(timedelta(hours=2))
    assert iso(datetime(2026, 3, 4, 7, 6, 7, tzinfo=cairo)) == "2026-03-04T07:06:07+02:00"
    assert dumps({"at": moment}) == '{"at":"2026-03-04T05:06:07.890000Z"}'


def test_a_page_starts_after_the_pages_before_it() -> None:
    assert page_offset(1, 20) == 0
    assert page_offset(2, 20) == 20
    assert page_offset(5, 7) == 28
    assert PageParams(page=3, page_size=10).offset == 20
