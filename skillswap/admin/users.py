"""Administrators and users: find them, see one whole, ban and unban, verify, grant admin rights.

A ban (`is_active` false) ends every session at once (refresh tokens revoked, access tokens
denied on every node, open sockets closed), takes the user's skills off the marketplace (browse
and search show only skills of active owners) and pauses their running orders for an
administrator to settle; the user is mailed why. Lifting it resumes what it paused.

Each changed field is one audit row (`user.ban`/`user.unban`, `user.verify`/`user.unverify`,
`user.grant_admin`/`user.revoke_admin`) with that field before and after and the reason, in the
unit of work of the change: a PATCH that bans and unverifies writes two.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, func, or_, select

from skillswap import ledger
from skillswap.accounts.deletion import deletion_already_done
from skillswap.accounts.services import end_every_session
from skillswap.admin import audit
from skillswap.db import UnitOfWork
from skillswap.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from skillswap.i18n import lazy
from skillswap.ledger.wallets import WalletBalance
from skillswap.models import Order, Payment, Report, User
from skillswap.models.admin import AuditTarget
from skillswap.notifications.outgoing import enqueue_suspension_mail
from skillswap.orders.services import pause_orders_of, resume_orders_of

if TYPE_CHECKING:
    from skillswap.deps import Deps

# `deleting`: a deletion is scheduled (in its grace period, or held back by an open order);
# `deleted`: the tombstone an erasure left (neither active nor banned).
USER_STATUSES = ("active", "banned", "deleting", "deleted")
# How a list may be ordered (the first is the default).
USER_SORTS: dict[str, Any] = {
    "newest": User.id.desc(),
    "oldest": User.id.asc(),
    "email": User.email.asc(),
    "username": User.username_key.asc(),
}
RECENT = 20  # orders (per side), payments and reports a user's page shows


@dataclass(frozen=True)
class UserDetail:
    """One user as an administrator sees them: the account, the wallet, and what involves them."""

    user: User
    wallet: WalletBalance
    orders_as_buyer: list[Order]
    orders_as_seller: list[Order]
    payments: list[Payment]
    reports: list[Report]  # reports about them (subject_user_id), newest first


def user_not_found() -> NotFound:
    return NotFound(lazy("This user does not exist."), code="user_not_found")


def like_pattern(text: str) -> str:
    """`text` as a LIKE pattern matching it anywhere, its own wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def list_users(
    deps: Deps,
    *,
    actor: User,
    search: str | None,
    status: str | None,
    is_verified: bool | None,
    sort: str | None,
    offset: int,
    limit: int,
) -> tuple[int, list[User]]:
    """Users matching `search` (in email, username or display name, any case), filtered by
    status (one of USER_STATUSES) and the trust badge, newest first unless `sort` says."""
    audit.require_admin(actor)
    conditions: list[ColumnElement[bool]] = []
    if search:
        pattern = like_pattern(search)
        conditions.append(
            or_(
                User.email.ilike(pattern, escape="\\"),
                User.username.ilike(pattern, escape="\\"),
                User.display_name.ilike(pattern, escape="\\"),
            )
        )
    if status is not None:
        conditions.append(_has_status(status))
    if is_verified is not None:
        conditions.append(User.is_verified.is_(is_verified))
    order = USER_SORTS[sort or "newest"]
    async with deps.db.read() as session:
        count = await session.scalar(select(func.count()).select_from(User).where(*conditions))
        rows = await session.scalars(
            select(User).where(*conditions).order_by(order, User.id).offset(offset).limit(limit)
        )
        return int(count or 0), list(rows)


def _has_status(status: str) -> ColumnElement[bool]:
    if status == "deleted":
        return User.deleted_at.is_not(None)
    if status == "deleting":
        return and_(User.deletion_scheduled_for.is_not(None), User.deleted_at.is_(None))
    return and_(User.is_active.is_(status == "active"), User.deleted_at.is_(None))


async def user_detail(deps: Deps, *, actor: User, user_id: int) -> UserDetail:
    """One user whole: profile, wallet, recent orders on both sides, payments, reports about them."""
    audit.require_admin(actor)
    async with deps.db.read() as session:
        user = await session.get(User, user_id)
        if user is None:
            raise user_not_found()
        wallet = await ledger.wallet_balance(session, user_id)
        as_buyer = await session.scalars(
            select(Order).where(Order.buyer_id == user_id).order_by(Order.id.desc()).limit(RECENT)
        )
        as_seller = await session.scalars(
            select(Order).where(Order.seller_id == user_id).order_by(Order.id.desc()).limit(RECENT)
        )
        payments = await session.scalars(
            select(Payment)
            .where(Payment.user_id == user_id)
            .order_by(Payment.id.desc())
            .limit(RECENT)
        )
        reports = await session.scalars(
            select(Report)
            .where(Report.subject_user_id == user_id)
            .order_by(Report.id.desc())
            .limit(RECENT)
        )
        return UserDetail(
            user=user,
            wallet=wallet,
            orders_as_buyer=list(as_buyer),
            orders_as_seller=list(as_seller),
            payments=list(payments),
            reports=list(reports),
        )


async def update_user(
    deps: Deps,
    *,
    actor: User,
    user_id: int,
    is_active: bool | None = None,
    is_verified: bool | None = None,
    is_admin: bool | None = None,
    reason: str = "",
) -> User:
    """Ban or unban (`is_active`), verify (`is_verified`), grant or revoke admin rights.

    At least one field; a ban needs a reason. Nobody bans themselves or takes their own admin
    rights, and the last active administrator keeps theirs (409).
    """
    audit.require_admin(actor)
    if is_active is None and is_verified is None and is_admin is None:
        message = lazy("Give at least one of is_active, is_verified and is_admin.")
        raise ValidationFailed(
            errors={"is_active": [message], "is_verified": [message], "is_admin": [message]}
        )
    if is_active is False and not reason.strip():
        raise ValidationFailed(errors={"reason": [lazy("Say why the user is banned.")]})
    now = deps.clock()
    async with deps.db.uow() as uow:
        user = await uow.session.get(User, user_id, with_for_update=not deps.db.is_sqlite)
        if user is None:
            raise user_not_found()
        if user.deleted_at is not None:
            raise deletion_already_done()  # a tombstone is never banned, unbanned or promoted
        await change_user(
            deps,
            uow,
            actor=actor,
            user=user,
            is_active=is_active,
            is_verified=is_verified,
            is_admin=is_admin,
            reason=reason,
            now=now,
        )
        await uow.commit()
    deps.signed_in.forget(user.id)
    return user


async def change_user(
    deps: Deps,
    uow: UnitOfWork,
    *,
    actor: User,
    user: User,
    is_active: bool | None = None,
    is_verified: bool | None = None,
    is_admin: bool | None = None,
    reason: str,
    now: datetime,
) -> None:
    """Apply the changes to `user` in the caller's unit of work, with their effects and audit
    rows (what `update_user` and closing a report with a ban share)."""
    if is_admin is False and user.is_admin:
        await _keep_an_administrator(deps, uow, actor=actor, user=user)
    if user.id == actor.id and (is_active is False or is_admin is False):
        raise Conflict(
            lazy("You cannot ban yourself or take your own administrator rights."),
            code="own_account",
        )
    if is_active is not None and is_active != user.is_active:
        if is_active:
            await _unban(deps, uow, actor=actor, user=user, reason=reason, now=now)
        else:
            await _ban(deps, uow, actor=actor, user=user, reason=reason, now=now)
    if is_verified is not None and is_verified != user.is_verified:
        user.is_verified = is_verified
        verb = "verify" if is_verified else "unverify"
        await _audit(uow, actor, user, verb, "is_verified", is_verified, reason=reason, now=now)
    if is_admin is not None and is_admin != user.is_admin:
        user.is_admin = is_admin
        if not is_admin:
            # Other nodes keep a copy of the signed-in user for AUTH_USER_CACHE_SECONDS: ending
            # the sessions (denied on every node at once) makes the next request sign in anew.
            await end_every_session(deps, uow, user.id)
        verb = "grant_admin" if is_admin else "revoke_admin"
        await _audit(uow, actor, user, verb, "is_admin", is_admin, reason=reason, now=now)
    user.updated_at = now
    await uow.session.flush()


async def _keep_an_administrator(deps: Deps, uow: UnitOfWork, *, actor: User, user: User) -> None:
    """Refuse to take the rights of the last active administrator (409 `last_admin`).

    The active administrators' rows are locked (in id order) before they are counted, so two
    administrators taking each other's rights at once cannot both succeed; and the actor must
    still be one of them once the lock is held.
    """
    statement = (
        select(User.id).where(User.is_admin.is_(True), User.is_active.is_(True)).order_by(User.id)
    )
    if not deps.db.is_sqlite:
        statement = statement.with_for_update()
    admins = set(await uow.session.scalars(statement))
    if actor.id not in admins:
        raise PermissionDenied(audit.ADMINS_ONLY, code="admin_only")
    if not admins - {user.id}:
        raise Conflict(
            lazy("This is the last active administrator: they keep their rights."),
            code="last_admin",
        )


async def _ban(
    deps: Deps, uow: UnitOfWork, *, actor: User, user: User, reason: str, now: datetime
) -> None:
    """Suspend the account: sessions and sockets end, running orders pause, the user is mailed."""
    before = {"is_active": True, "banned_at": user.banned_at}
    user.is_active = False
    user.banned_at = now
    await uow.session.flush()
    await end_every_session(deps, uow, user.id)
    paused = await pause_orders_of(deps, uow, actor=actor, user_id=user.id, now=now)
    await enqueue_suspension_mail(uow, user_id=user.id, reason=reason, banned_at=now, now=now)

    async def close_sockets() -> None:
        deps.publisher.end_user_connections(user.id)

    uow.after_commit(close_sockets)
    await audit.record(
        uow.session,
        actor,
        "user.ban",
        AuditTarget.USER,
        user.id,
        before=before,
        after={"is_active": False, "banned_at": now, "paused_orders": paused},
        reason=reason,
        now=now,
    )


async def _unban(
    deps: Deps, uow: UnitOfWork, *, actor: User, user: User, reason: str, now: datetime
) -> None:
    """Lift the suspension: the orders the ban paused resume (where the other side is active)."""
    before = {"is_active": False, "banned_at": user.banned_at}
    user.is_active = True
    user.banned_at = None
    await uow.session.flush()
    resumed = await resume_orders_of(deps, uow, actor=actor, user_id=user.id, now=now)
    await audit.record(
        uow.session,
        actor,
        "user.unban",
        AuditTarget.USER,
        user.id,
        before=before,
        after={"is_active": True, "banned_at": None, "resumed_orders": resumed},
        reason=reason,
        now=now,
    )


async def _audit(
    uow: UnitOfWork,
    actor: User,
    user: User,
    verb: str,
    field: str,
    after: bool,
    *,
    reason: str,
    now: datetime,
) -> None:
    """The audit row of one flag changed (it was the opposite before)."""
    await audit.record(
        uow.session,
        actor,
        f"user.{verb}",
        AuditTarget.USER,
        user.id,
        before={field: not after},
        after={field: after},
        reason=reason,
        now=now,
    )
