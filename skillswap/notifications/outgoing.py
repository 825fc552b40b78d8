"""The outbox rows that carry what leaves the server for a user, written in the caller's
transaction: one `notification.deliver` per stored notification that can be mailed or pushed,
one `mail.code` per emailed code. `skillswap.notifications.delivery` runs them in a worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from skillswap.auth.sealing import Sealer
from skillswap.auth.tokens import hash_opaque_token
from skillswap.mail.render import MailKind
from skillswap.models.notifications import NotificationKind
from skillswap.models.users import TokenPurpose
from skillswap.tasks import outbox

if TYPE_CHECKING:
    from datetime import datetime

    from skillswap.db import UnitOfWork
    from skillswap.deps import Deps

DELIVER_NOTIFICATION = "notification.deliver"
# A notification's delivery row is keyed by its id after this prefix (once per notification).
DELIVERY_KEY_PREFIX = "notification:"
MAIL_CODE = "mail.code"
# Not a notification: a banned user's notifications are never delivered (they cannot sign in).
MAIL_ACCOUNT_SUSPENDED = "mail.account_suspended"

_TRANSITIONS = (
    NotificationKind.ORDER_ACCEPTED,
    NotificationKind.ORDER_REJECTED,
    NotificationKind.ORDER_DELIVERED,
    NotificationKind.ORDER_COMPLETED,
    NotificationKind.ORDER_CANCELLED,
    NotificationKind.ORDER_CHANGES_REQUESTED,
    NotificationKind.ORDER_DISPUTED,
    NotificationKind.ORDER_EXPIRED,
    NotificationKind.ORDER_UPDATED,
    NotificationKind.ORDER_PAUSED,
    NotificationKind.ORDER_RESUMED,
)
# The mail each kind of notification sends. Chat messages have none of their own: members who
# stay away get the hourly digest instead of a mail per message.
MAIL_OF_KIND: dict[str, MailKind] = {
    NotificationKind.ORDER_PLACED: MailKind.ORDER_PLACED,
    **{kind: MailKind.ORDER_TRANSITIONED for kind in _TRANSITIONS},
    NotificationKind.ORDER_RESOLVED: MailKind.DISPUTE_RESOLVED,
    NotificationKind.REVIEW_RECEIVED: MailKind.REVIEW_RECEIVED,
    NotificationKind.SKILL_HIDDEN: MailKind.SKILL_MODERATED,
    NotificationKind.SKILL_RESTORED: MailKind.SKILL_MODERATED,
    NotificationKind.POINTS_ADJUSTED: MailKind.POINTS_ADJUSTED,
    NotificationKind.LESSON_REMINDER: MailKind.LESSON_REMINDER,
}


# -- writing the rows (inside the caller's transaction) ---------------------------------------


def needs_delivery(kind: str, *, pushes: bool) -> bool:
    """Whether a notification of `kind` can leave the server at all (else no row is written)."""
    return pushes or kind in MAIL_OF_KIND


async def enqueue_notification(uow: UnitOfWork, notification_id: int, *, now: datetime) -> None:
    await outbox.enqueue(
        uow,
        DELIVER_NOTIFICATION,
        f"{DELIVERY_KEY_PREFIX}{notification_id}",
        {"notification_id": notification_id},
        now=now,
    )


async def enqueue_code_mail(
    deps: Deps, uow: UnitOfWork, *, user_id: int, purpose: TokenPurpose, token: str
) -> None:
    """Mail the emailed code `token` once the transaction commits (one row per code)."""
    key = f"mail:code:{hash_opaque_token(token)}"
    sealed = Sealer(deps.settings.secret_key).seal(token, bound_to=key)
    await outbox.enqueue(
        uow,
        MAIL_CODE,
        key,
        {"user_id": user_id, "purpose": purpose.value, "code": sealed},
        now=deps.clock(),
    )


async def enqueue_suspension_mail(
    uow: UnitOfWork, *, user_id: int, reason: str, banned_at: datetime, now: datetime
) -> None:
    """Tell a banned user, once the ban commits, that their account was suspended and why."""
    await outbox.enqueue(
        uow,
        MAIL_ACCOUNT_SUSPENDED,
        f"mail:suspended:{user_id}:{banned_at.isoformat()}",
        {"user_id": user_id, "reason": reason},
        now=now,
    )
