"""Leaving: deleting one's account after a grace period, and cancelling that in time.

Asked for (with the password, or by a Google-only account within a few minutes of signing in),
a deletion is scheduled ACCOUNT_DELETION_GRACE_SECONDS ahead and mailed; signing in meanwhile
shows `deletion_scheduled_for`, and cancelling clears it. Open orders refuse the request: the
other side's points and work must be settled first. Meanwhile their active skills are paused,
so they take no new orders; which ones is remembered (`SkillPausedByDeletion`), so cancelling
lists exactly those again and leaves the ones the owner had paused, or that were hidden, as
they were. Both happen in the unit of work that schedules or cancels.

When it is due the scheduler erases the person and keeps the records (`erase_account`): the row
stays as a tombstone (`deleted-user-<id>`, an address that cannot receive mail, no password and
no Google link) so orders, reviews, chat messages and ledger entries keep their references, and
the other party sees "a deleted user". What is personal goes: names, bio, phone, avatar, the
uploaded images (from storage too), sessions, devices, notifications, preferences, stored
answers to their requests, their exports. The wallet's balance moves to the `forfeited` system
account by a ledger transfer. The signup-bonus claim of their address stays (it names no one),
so the address never earns a second bonus.

Erasing is resumable: files are deleted first (a missing file is no error), then every row
change commits in one transaction, so a run killed anywhere leaves the person due, and the
next run does it all again from the start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, or_, select, update

from skillswap import ledger
from skillswap.accounts.services import end_every_session
from skillswap.auth.tokens import AccessClaims
from skillswap.db import UnitOfWork
from skillswap.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from skillswap.i18n import N_, lazy
from skillswap.ledger import SystemAccount, TransferKind, TransferRequest
from skillswap.mail.render import MailKind, links_base, render_email
from skillswap.models import (
    ChatMember,
    DataExport,
    Device,
    IdempotencyRecord,
    Notification,
    NotificationPreference,
    OneTimeToken,
    Order,
    OutboxRow,
    RefreshToken,
    Review,
    Skill,
    SkillImage,
    SkillPausedByDeletion,
    User,
)
from skillswap.models.notifications import NotificationKind
from skillswap.models.outbox import OutboxStatus
from skillswap.models.skills import SkillStatus
from skillswap.notifications.mailing import deliver_mail, mail_id, translator_for
from skillswap.orders.rules import OPEN_STATUSES
from skillswap.skills import search
from skillswap.tasks import outbox
from skillswap.tasks.definitions import OutboxHandler

if TYPE_CHECKING:
    from skillswap.deps import Deps
    from skillswap.tasks.outbox import OutboxJob

log = logging.getLogger("skillswap.accounts.deletion")

MAIL_DELETION_SCHEDULED = "mail.deletion_scheduled"
# How the other party sees an erased person, in their language.
DELETED_USER = N_("a deleted user")


def tombstone_username(user_id: int) -> str:
    return f"deleted-user-{user_id}"


def tombstone_email(user_id: int) -> str:
    # `.invalid` is reserved (RFC 2606): nothing is ever delivered there, and no sign-up can
    # claim it, since the address of every erased account names its own id.
    return f"deleted-{user_id}@invalid"


@dataclass(frozen=True)
class OpenOrder:
    """An order that stops a deletion, and what the leaving user may do about it now."""

    id: int
    status: str
    role: str  # "buyer" or "seller"
    action: str | None  # "cancel" (a pending order bought), "reject" (a pending one sold)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "role": self.role, "action": self.action}


def open_orders_refusal(orders: list[OpenOrder]) -> Conflict:
    """409 `open_orders`, listing them (pending ones can be cancelled or rejected at once; the
    others must finish or be disputed first)."""
    return Conflict(
        lazy(
            "You have open orders. Cancel or reject the pending ones; the others must be"
            " completed or disputed first."
        ),
        code="open_orders",
        extra={"open_orders": [order.as_json() for order in orders]},
    )


async def open_orders_of(uow: UnitOfWork, user_id: int) -> list[OpenOrder]:
    """The user's orders, on either side, that still hold points or wait for work."""
    rows = await uow.session.execute(
        select(Order.id, Order.status, Order.buyer_id)
        .where(
            or_(Order.buyer_id == user_id, Order.seller_id == user_id),
            Order.status.in_(OPEN_STATUSES),
        )
        .order_by(Order.id)
    )
    found = []
    for order_id, status, buyer_id in rows:
        role = "buyer" if buyer_id == user_id else "seller"
        action = None
        if status == "pending":
            action = "cancel" if role == "buyer" else "reject"
        found.append(OpenOrder(order_id, status, role, action))
    return found


def deletion_already_done() -> Conflict:
    return Conflict(lazy("This account was already deleted."), code="account_deleted")


async def schedule_deletion(deps: Deps, uow: UnitOfWork, user: User, *, now: datetime) -> bool:
    """Schedule `user`'s deletion (locked by the caller) in the caller's unit of work and mail
    them; False when it was scheduled already (the date stays as it was)."""
    if user.deleted_at is not None:
        raise deletion_already_done()
    if user.deletion_scheduled_for is not None:
        return False
    # Pausing first locks their active skills' rows, so an order being placed on one either
    # committed before (and is seen below) or finds the skill paused.
    await _pause_skills(uow, user.id, now=now)
    blocking = await open_orders_of(uow, user.id)
    if blocking:
        raise open_orders_refusal(blocking)
    user.deletion_requested_at = now
    user.deletion_scheduled_for = now + timedelta(
        seconds=deps.settings.account_deletion_grace_seconds
    )
    user.updated_at = now
    await outbox.enqueue(
        uow,
        MAIL_DELETION_SCHEDULED,
        f"mail:deletion:{user.id}:{now.isoformat()}",
        {"user_id": user.id},
        now=now,
    )
    return True


async def _pause_skills(uow: UnitOfWork, user_id: int, *, now: datetime) -> None:
    """Pause the user's active skills (and only those), remembering which."""
    session = uow.session
    active = list(
        await session.scalars(
            select(Skill.id)
            .where(Skill.owner_id == user_id, Skill.status == SkillStatus.ACTIVE)
            .order_by(Skill.id)
        )
    )
    if not active:
        return
    await session.execute(
        update(Skill)
        .where(Skill.id.in_(active), Skill.status == SkillStatus.ACTIVE)
        .values(status=SkillStatus.PAUSED, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.add_all(SkillPausedByDeletion(skill_id=skill_id, paused_at=now) for skill_id in active)
    await session.flush()


async def _resume_skills(uow: UnitOfWork, user_id: int, *, now: datetime) -> None:
    """List again the skills the deletion paused that are still paused (one the owner deleted
    or an administrator hid since stays so); forget the rest of the marks."""
    session = uow.session
    theirs = select(Skill.id).where(Skill.owner_id == user_id)
    marked = select(SkillPausedByDeletion.skill_id).where(
        SkillPausedByDeletion.skill_id.in_(theirs)
    )
    await session.execute(
        update(Skill)
        .where(Skill.id.in_(marked), Skill.status == SkillStatus.PAUSED)
        .values(status=SkillStatus.ACTIVE, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        delete(SkillPausedByDeletion)
        .where(SkillPausedByDeletion.skill_id.in_(theirs))
        .execution_options(synchronize_session=False)
    )


async def _lock_user(deps: Deps, uow: UnitOfWork, user_id: int) -> User:
    user = await uow.session.get(User, user_id, with_for_update=not deps.db.is_sqlite)
    if user is None:
        raise NotFound()
    return user


async def request_deletion(
    deps: Deps, *, actor: User, access: AccessClaims | None, password: str | None
) -> User:
    """Schedule the actor's own deletion; proven by the password, or for a Google-only
    account by a sign-in at most ACCOUNT_DELETION_REAUTH_SECONDS old."""
    if actor.password_hash is not None:
        if not password or not await deps.hasher.verify(actor.password_hash, password):
            raise ValidationFailed(errors={"password": [lazy("The password is not correct.")]})
    elif not await _signed_in_lately(deps, access):
        raise PermissionDenied(
            lazy("Sign in again with Google, then delete the account within a few minutes."),
            code="reauthentication_required",
        )
    now = deps.clock()
    async with deps.db.uow() as uow:
        user = await _lock_user(deps, uow, actor.id)
        await schedule_deletion(deps, uow, user, now=now)
        await uow.commit()
    deps.signed_in.forget(user.id)
    return user


async def _signed_in_lately(deps: Deps, access: AccessClaims | None) -> bool:
    """Whether the session of `access` began (its first refresh token) within the window."""
    if access is None or not access.session_id:
        return False
    async with deps.db.read() as session:
        began = await session.scalar(
            select(RefreshToken.created_at)
            .where(RefreshToken.family_id == access.session_id)
            .order_by(RefreshToken.created_at)
            .limit(1)
        )
    window = timedelta(seconds=deps.settings.account_deletion_reauth_seconds)
    return began is not None and deps.clock() - began <= window


async def cancel_deletion(deps: Deps, *, actor: User) -> User:
    """Keep the account: the scheduled deletion is called off (nothing to do if none)."""
    async with deps.db.uow() as uow:
        user = await _lock_user(deps, uow, actor.id)
        await unschedule(uow, user, now=deps.clock())
        await uow.commit()
    deps.signed_in.forget(user.id)
    return user


async def unschedule(uow: UnitOfWork, user: User, *, now: datetime) -> bool:
    """Clear a scheduled deletion (locked by the caller) in the caller's unit of work, listing
    again the skills it paused; False when none was scheduled."""
    if user.deleted_at is not None:
        raise deletion_already_done()
    if user.deletion_scheduled_for is None:
        return False
    await _resume_skills(uow, user.id, now=now)
    user.deletion_requested_at = None
    user.deletion_scheduled_for = None
    user.updated_at = now
    return True


# -- carrying it out (the scheduler) ----------------------------------------------------------


@dataclass(frozen=True)
class ErasureReport:
    erased: list[int]
    waiting: list[int]  # due, but an order placed during the grace period is still open


async def erase_due_accounts(deps: Deps, *, now: datetime, limit: int = 100) -> ErasureReport:
    """Erase every account whose deletion is due (at most `limit` a run); those held back by
    an open order are tried again on every run until it finishes."""
    is_due = (User.deletion_scheduled_for <= now, User.deleted_at.is_(None))
    held_back = (
        select(Order.id)
        .where(
            or_(Order.buyer_id == User.id, Order.seller_id == User.id),
            Order.status.in_(OPEN_STATUSES),
        )
        .exists()
    )
    oldest_first = (User.deletion_scheduled_for, User.id)
    async with deps.db.read() as session:
        # The held back are left out of the batch, or a run's `limit` of them would starve
        # every later deletion for as long as their orders stay open.
        due = list(
            await session.scalars(
                select(User.id).where(*is_due, ~held_back).order_by(*oldest_first).limit(limit)
            )
        )
        held = list(
            await session.scalars(
                select(User.id).where(*is_due, held_back).order_by(*oldest_first).limit(limit)
            )
        )
    erased: list[int] = []
    waiting = held
    for user_id in due:
        if await erase_account(deps, user_id, now=now):
            erased.append(user_id)
        else:
            waiting.append(user_id)
    return ErasureReport(erased, waiting)


async def erase_account(deps: Deps, user_id: int, *, now: datetime) -> bool:
    """Erase one person whose deletion is due; False while an order of theirs is open (it is
    tried again on the next run, once the order has finished)."""
    async with deps.db.read() as session:
        files = await _their_files(session, user_id)
    # Files first: a run killed after this still finds the rows, and deletes the files again.
    for key in files:
        await deps.storage.delete(key)
    async with deps.db.uow() as uow:
        user = await _lock_user(deps, uow, user_id)
        if user.deleted_at is not None or user.deletion_scheduled_for is None:
            return user.deleted_at is not None  # done by an earlier run, or cancelled since
        if await open_orders_of(uow, user_id):
            return False
        await _forfeit_wallet(uow, user_id, now=now)
        await _scrub_their_name_for_others(deps, uow, user)
        await end_every_session(deps, uow, user_id)
        await _delete_their_rows(deps, uow, user_id)
        await _take_skills_down(deps, uow, user_id, now=now)
        await _scrub_failed_mail(uow, user.email)
        _tombstone(user, now=now)
        await uow.session.flush()

        async def close_sockets() -> None:
            deps.publisher.end_user_connections(user_id)

        uow.after_commit(close_sockets)
        await uow.commit()
    log.info("account %d erased", user_id)
    return True


async def _their_files(session: Any, user_id: int) -> list[str]:
    """Every stored file of the user: their skills' images and their data exports."""
    images = await session.scalars(
        select(SkillImage.storage_key)
        .join(Skill, Skill.id == SkillImage.skill_id)
        .where(Skill.owner_id == user_id)
    )
    exports = await session.scalars(
        select(DataExport.file_key).where(
            DataExport.user_id == user_id, DataExport.file_key.is_not(None)
        )
    )
    return [*images, *(key for key in exports if key)]


async def _forfeit_wallet(uow: UnitOfWork, user_id: int, *, now: datetime) -> None:
    """What is left in the wallet leaves circulation through the forfeited account."""
    wallet_id = await ledger.find_wallet(uow.session, user_id)
    if wallet_id is None:
        return
    balance = await ledger.wallet_balance(uow.session, user_id)
    if balance.balance <= 0:
        return
    await ledger.transfer(
        uow.session,
        TransferRequest(
            key=f"forfeit:{user_id}",
            kind=TransferKind.FORFEIT,
            debit_account_id=wallet_id,
            credit_account_id=SystemAccount.FORFEITED,
            amount=balance.balance,
        ),
        now=now,
    )


async def _scrub_their_name_for_others(deps: Deps, uow: UnitOfWork, user: User) -> None:
    """Others' notifications that name the person (a chat message of theirs, a review they
    wrote) name "a deleted user" instead, in each reader's language."""
    session = uow.session
    names = {name for name in (user.display_name, user.username) if name}
    reviews = set(await session.scalars(select(Review.id).where(Review.reviewer_id == user.id)))
    their_rooms = select(ChatMember.room_id).where(ChatMember.user_id == user.id)
    # Only the people who could have been told about them: their rooms' members, the reviewed.
    readers = (
        select(ChatMember.user_id)
        .where(ChatMember.room_id.in_(their_rooms))
        .union(select(Review.reviewee_id).where(Review.reviewer_id == user.id))
    )
    rows = await session.execute(
        select(Notification, User)
        .join(User, User.id == Notification.user_id)
        .where(
            Notification.user_id != user.id,
            Notification.user_id.in_(readers),
            Notification.kind.in_(
                (NotificationKind.CHAT_MESSAGE, NotificationKind.REVIEW_RECEIVED)
            ),
        )
    )
    for notification, reader in rows:
        payload = notification.payload or {}
        about_them = payload.get("sender") == user.id or payload.get("review_id") in reviews
        if not about_them:
            continue
        deleted = translator_for(deps, reader).gettext(DELETED_USER)
        notification.params = {
            name: deleted if isinstance(value, str) and value in names else value
            for name, value in (notification.params or {}).items()
        }


async def _delete_their_rows(deps: Deps, uow: UnitOfWork, user_id: int) -> None:
    session = uow.session
    for model in (RefreshToken, OneTimeToken, Device, Notification, NotificationPreference):
        await session.execute(delete(model).where(model.user_id == user_id))
    await session.execute(delete(DataExport).where(DataExport.user_id == user_id))
    # Replays of their requests hold their answers (their profile among them).
    await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.owner == f"user:{user_id}")
    )


async def _take_skills_down(deps: Deps, uow: UnitOfWork, user_id: int, *, now: datetime) -> None:
    """Their skills leave the marketplace and search (the rows stay: orders refer to them)."""
    session = uow.session
    skill_ids = list(await session.scalars(select(Skill.id).where(Skill.owner_id == user_id)))
    if not skill_ids:
        return
    await session.execute(delete(SkillImage).where(SkillImage.skill_id.in_(skill_ids)))
    await session.execute(
        delete(SkillPausedByDeletion).where(SkillPausedByDeletion.skill_id.in_(skill_ids))
    )
    await session.execute(
        update(Skill)
        .where(Skill.id.in_(skill_ids), Skill.status != SkillStatus.DELETED)
        .values(status=SkillStatus.DELETED, deleted_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    dialect = "sqlite" if deps.db.is_sqlite else "postgresql"
    for skill_id in skill_ids:
        await search.drop_document(session, dialect, skill_id)


async def _scrub_failed_mail(uow: UnitOfWork, email: str) -> None:
    """A dead-lettered mail's error names its recipient: not any more."""
    await uow.session.execute(
        update(OutboxRow)
        .where(OutboxRow.status == OutboxStatus.FAILED, OutboxRow.last_error.contains(email))
        .values(last_error="(the recipient's account was deleted)")
        .execution_options(synchronize_session=False)
    )


def _tombstone(user: User, *, now: datetime) -> None:
    user.email = tombstone_email(user.id)
    user.email_verified = False
    user.username = tombstone_username(user.id)
    user.username_key = tombstone_username(user.id)
    user.display_name = ""
    user.bio = ""
    user.avatar_url = ""
    user.phone = ""
    user.password_hash = None
    user.google_sub = None
    user.is_active = False
    user.is_admin = False
    user.is_verified = False
    user.deletion_scheduled_for = None
    user.deleted_at = now
    user.updated_at = now


# -- the mail ----------------------------------------------------------------------------------


async def mail_deletion_scheduled(deps: Deps, job: OutboxJob) -> None:
    """Tell the user when their account will be deleted, with the way to keep it; not sent
    when the deletion was cancelled (or carried out) before the worker got to it."""
    async with deps.db.read() as session:
        user = await session.get(User, job.payload["user_id"])
    if user is None or user.deletion_scheduled_for is None or user.deleted_at is not None:
        return
    message = render_email(
        MailKind.DELETION_SCHEDULED,
        to=user.email,
        translator=translator_for(deps, user),
        base_url=links_base(deps.settings),
        context={
            "name": user.display_name or user.username,
            "scheduled_for": user.deletion_scheduled_for.strftime("%Y-%m-%d %H:%M UTC"),
        },
        message_id=mail_id(deps, job),
    )
    await deliver_mail(deps, job, message)


HANDLERS: dict[str, OutboxHandler] = {MAIL_DELETION_SCHEDULED: mail_deletion_scheduled}
