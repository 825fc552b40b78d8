"""All ORM models; importing this package registers every table on `Base.metadata`."""

from skillswap.models.admin import AuditEntry, Report
from skillswap.models.base import Base
from skillswap.models.chat import ChatMember, ChatMessage, ChatRoom
from skillswap.models.delivery import Device, NotificationPreference
from skillswap.models.idempotency import IdempotencyRecord
from skillswap.models.leaving import SkillPausedByDeletion
from skillswap.models.ledger import (
    LedgerAccount,
    LedgerEntry,
    LedgerHold,
    LedgerTransfer,
    PointsPackage,
)
from skillswap.models.lessons import (
    CalendarFeed,
    Lesson,
    LessonAvailability,
    LessonReminder,
    LessonSlotClaim,
)
from skillswap.models.notifications import Notification
from skillswap.models.oauth import OAuthState
from skillswap.models.orders import Order, OrderTransition
from skillswap.models.outbox import OutboxRow, OutboxStatus
from skillswap.models.payments import Payment, PaymentEvent, PaymentRefund, PaymentStatus
from skillswap.models.reviews import Review
from skillswap.models.skills import Category, Skill, SkillImage
from skillswap.models.stats import StatsDay, StatsDayCompletions
from skillswap.models.users import DataExport, OneTimeToken, RefreshToken, User

__all__ = [
    "AuditEntry",
    "Base",
    "CalendarFeed",
    "Category",
    "ChatMember",
    "ChatMessage",
    "ChatRoom",
    "DataExport",
    "Device",
    "IdempotencyRecord",
    "LedgerAccount",
    "LedgerEntry",
    "LedgerHold",
    "LedgerTransfer",
    "Lesson",
    "LessonAvailability",
    "LessonReminder",
    "LessonSlotClaim",
    "Notification",
    "NotificationPreference",
    "OAuthState",
    "OneTimeToken",
    "Order",
    "OrderTransition",
    "OutboxRow",
    "OutboxStatus",
    "Payment",
    "PaymentEvent",
    "PaymentRefund",
    "PaymentStatus",
    "PointsPackage",
    "RefreshToken",
    "Report",
    "Review",
    "Skill",
    "SkillImage",
    "SkillPausedByDeletion",
    "StatsDay",
    "StatsDayCompletions",
    "User",
]
