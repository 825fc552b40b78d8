"""Administrators delete accounts too: the same grace period and erasure as a user's own
request (skillswap.accounts.deletion), with a reason and an audit row; and only within that
grace period can they reinstate the account (`user.delete`, `user.reinstate`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from skillswap.accounts import deletion
from skillswap.admin import audit
from skillswap.admin.users import user_not_found
from skillswap.errors import Conflict, ValidationFailed
from skillswap.i18n import Message, lazy
from skillswap.models import User
from skillswap.models.admin import AuditTarget

if TYPE_CHECKING:
    from skillswap.deps import Deps


def _need_reason(reason: str, message: Message) -> None:
    if not reason.strip():
        raise ValidationFailed(errors={"reason": [message]})


async def delete_user(deps: Deps, *, actor: User, user_id: int, reason: str) -> User:
    """Schedule a user's deletion (409 `open_orders` as for their own request; 409
    `deletion_scheduled` when it already is), audited with the reason."""
    audit.require_admin(actor)
    _need_reason(reason, lazy("Say why the account is deleted."))
    now = deps.clock()
    async with deps.db.uow() as uow:
        user = await uow.session.get(User, user_id, with_for_update=not deps.db.is_sqlite)
        if user is None:
            raise user_not_found()
        if user.id == actor.id:
            raise Conflict(
                lazy("You cannot delete your own account from here."), code="own_account"
            )
        if not await deletion.schedule_deletion(deps, uow, user, now=now):
            raise Conflict(
                lazy("This account's deletion is already scheduled."), code="deletion_scheduled"
            )
        await audit.record(
            uow.session,
            actor,
            "user.delete",
            AuditTarget.USER,
            user.id,
            before={"deletion_scheduled_for": None},
            after={"deletion_scheduled_for": user.deletion_scheduled_for},
            reason=reason,
            now=now,
        )
        await uow.commit()
    deps.signed_in.forget(user.id)
    return user


async def reinstate_user(deps: Deps, *, actor: User, user_id: int, reason: str) -> User:
    """Call off a scheduled deletion, in its grace period only (409 `account_deleted` after
    it, 409 `no_deletion_scheduled` when none is), audited with the reason."""
    audit.require_admin(actor)
    _need_reason(reason, lazy("Say why the account is reinstated."))
    now = deps.clock()
    async with deps.db.uow() as uow:
        user = await uow.session.get(User, user_id, with_for_update=not deps.db.is_sqlite)
        if user is None:
            raise user_not_found()
        scheduled_for = user.deletion_scheduled_for
        if not await deletion.unschedule(uow, user, now=now):
            raise Conflict(
                lazy("This account has no deletion scheduled."), code="no_deletion_scheduled"
            )
        await audit.record(
            uow.session,
            actor,
            "user.reinstate",
            AuditTarget.USER,
            user.id,
            before={"deletion_scheduled_for": scheduled_for},
            after={"deletion_scheduled_for": None},
            reason=reason,
            now=now,
        )
        await uow.commit()
    deps.signed_in.forget(user.id)
    return user
