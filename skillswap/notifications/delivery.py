"""What leaves the server for a user: mails and pushes, as outbox rows run by a worker.

Two kinds of rows, each written in the transaction of the change that causes it:

- `notification.deliver`, one per stored notification (`notify` writes it): mailed when the
  kind has a mail and the user wants email for it, pushed when push is configured and wanted.
  The preferences are asked when the row runs, so a choice made meanwhile is honoured.
- `mail.code`, one per emailed code (verification, password reset): always mailed. The code is
  sealed in the row (`skillswap.auth.sealing`); a code spent or expired by then is not sent.

Each row does its work at most once, as far as the outside world allows: a mail is sent once
unless the SMTP server's answer was lost (then again, with the same Message-ID), the devices a
push reached are kept in the row (`outbox.record_progress`) so a retry skips them, and a mail
that went out before a push failed is not sent again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from skillswap.auth.sealing import SealBroken, Sealer
from skillswap.auth.tokens import hash_opaque_token
from skillswap.mail.render import MailKind, links_base, render_email
from skillswap.models import Notification, OneTimeToken, Order, Review, Skill, User
from skillswap.models.notifications import NotificationKind
from skillswap.models.skills import SkillStatus
from skillswap.models.users import TokenPurpose
from skillswap.notifications.mailing import deliver_mail, mail_id, translator_for
from skillswap.notifications.outgoing import (
    DELIVER_NOTIFICATION,
    MAIL_ACCOUNT_SUSPENDED,
    MAIL_CODE,
    MAIL_OF_KIND,
)
from skillswap.notifications.preferences import channels_for
from skillswap.notifications.push import PushRetryable, push_notification
from skillswap.tasks import outbox
from skillswap.tasks.definitions import OutboxHandler, PermanentTaskError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from skillswap.deps import Deps
    from skillswap.i18n import Translator
    from skillswap.tasks.outbox import OutboxJob

# -- running them (in a worker) ---------------------------------------------------------------


async def deliver_notification(deps: Deps, job: OutboxJob) -> None:
    """Mail and push one stored notification, as its user wants; each at most once."""
    progress: dict[str, Any] = {}
    async with deps.db.read() as session:
        notification = await session.get(Notification, job.payload["notification_id"])
        user = None if notification is None else await session.get(User, notification.user_id)
        if notification is None or user is None or not user.is_active:
            return  # deleted meanwhile (read and cleared, or the account closed): nothing to say
        wanted = await channels_for(session, user.id, NotificationKind(notification.kind))
        mail_kind = MAIL_OF_KIND.get(notification.kind)
        message = None
        if mail_kind is not None and "email" in wanted and not job.payload.get("mailed"):
            translator = translator_for(deps, user)
            context = await _mail_context(session, mail_kind, notification, user, translator)
            if context is not None:
                message = render_email(
                    mail_kind,
                    to=user.email,
                    translator=translator,
                    base_url=links_base(deps.settings),
                    context=context,
                    message_id=mail_id(deps, job),
                )
    pushing = deps.push is not None and "push" in wanted
    if message is not None:
        await deliver_mail(deps, job, message)
        progress["mailed"] = True
        if pushing:  # a worker killed during the push must not mail again
            await outbox.record_progress(deps.db, job, progress)
    if not pushing:
        return
    try:
        await push_notification(
            deps, notification.id, skip_device_ids=job.payload.get("pushed_to", ())
        )
    except PushRetryable as exc:
        await outbox.record_progress(deps.db, job, {**progress, "pushed_to": list(exc.delivered)})
        raise


async def mail_code(deps: Deps, job: OutboxJob) -> None:
    """Mail an emailed code, unless it was spent or expired before the worker got to it."""
    purpose = TokenPurpose(job.payload["purpose"])
    try:
        token = Sealer(deps.settings.secret_key).unseal(job.payload["code"], bound_to=job.key)
    except SealBroken as exc:
        raise PermanentTaskError(f"{exc} (was SECRET_KEY changed?)") from exc
    async with deps.db.read() as session:
        # The code and its user in one read (a worker does this per mail).
        found = (
            await session.execute(
                select(User, OneTimeToken.expires_at)
                .join(OneTimeToken, OneTimeToken.user_id == User.id)
                .where(
                    OneTimeToken.token_hash == hash_opaque_token(token),
                    OneTimeToken.used_at.is_(None),
                    User.id == job.payload["user_id"],
                )
            )
        ).first()
    if found is None or found.expires_at <= deps.clock():
        return  # spent (or the account is gone) before the worker got to it, or expired
    user = found.User
    settings = deps.settings
    ttl = (
        settings.email_token_ttl_seconds
        if purpose == TokenPurpose.VERIFY_EMAIL
        else settings.password_reset_ttl_seconds
    )
    message = render_email(
        MailKind(purpose),
        to=user.email,
        translator=translator_for(deps, user),
        base_url=links_base(settings),
        context={"name": _name(user), "token": token, "ttl_seconds": ttl},
        message_id=mail_id(deps, job),
    )
    await deliver_mail(deps, job, message)


async def mail_suspension(deps: Deps, job: OutboxJob) -> None:
    """Mail a banned user that their account is suspended, with the administrator's reason.

    Not sent if the ban was lifted before the worker got to it.
    """
    async with deps.db.read() as session:
        user = await session.get(User, job.payload["user_id"])
    if user is None or user.is_active:
        return
    message = render_email(
        MailKind.ACCOUNT_SUSPENDED,
        to=user.email,
        translator=translator_for(deps, user),
        base_url=links_base(deps.settings),
        context={"name": _name(user), "reason": str(job.payload.get("reason") or "")},
        message_id=mail_id(deps, job),
    )
    await deliver_mail(deps, job, message)


def _name(user: User) -> str:
    return user.display_name or user.username


async def _mail_context(
    session: AsyncSession,
    kind: MailKind,
    notification: Notification,
    user: User,
    translator: Translator,
) -> dict[str, Any] | None:
    """What the kind's templates show, read now from what the notification names; None when
    there is nothing left to tell (the moderated skill was deleted meanwhile)."""
    payload = notification.payload or {}
    context: dict[str, Any] = {"name": _name(user)}
    if kind == MailKind.SKILL_MODERATED:
        moderated = await _moderation_context(session, notification, translator)
        return None if moderated is None else context | moderated
    if kind == MailKind.LESSON_REMINDER:
        # The reminder's words were chosen when it was due, in the reader's language and zone.
        params = notification.params or {}
        return context | {
            "order": int(payload["order_id"]),
            "skill": str(params.get("skill") or ""),
            "other": str(params.get("other") or ""),
            "starts": str(params.get("starts") or ""),
        }
    if kind == MailKind.POINTS_ADJUSTED:
        # The payload is the adjustment as it was made: nothing to read again.
        return context | {
            "amount": int(payload["amount"]),
            "reason": payload.get("reason") or "",
            "balance": payload.get("balance"),
        }
    return context | await _order_context(session, kind, payload, translator)


async def _moderation_context(
    session: AsyncSession, notification: Notification, translator: Translator
) -> dict[str, Any] | None:
    """The hidden or restored skill's title in the reader's language, and the note written
    then (a skill restored since still gets the mail of its hiding: it says what happened)."""
    payload = notification.payload or {}
    skill = await session.get(Skill, payload["skill_id"])
    if skill is None or skill.status == SkillStatus.DELETED:
        return None  # its owner deleted it: telling them it was hidden or listed is noise
    return {
        "skill": skill.id,
        "title": _skill_title(skill, translator.locale),
        "change": notification.kind,
        "note": payload.get("note") or "",
    }


async def _order_context(
    session: AsyncSession, kind: MailKind, payload: dict[str, Any], translator: Translator
) -> dict[str, Any]:
    """The order mails' values: the order, its skill, the other side, the review."""
    order = await session.get(Order, payload["order_id"])
    if order is None:
        raise PermanentTaskError(f"order {payload['order_id']} of the notification is gone")
    context: dict[str, Any] = {"order": order.id}
    if kind == MailKind.ORDER_PLACED:
        skill = await session.get(Skill, order.skill_id)
        buyer = await session.get(User, order.buyer_id)
        context |= {
            "skill": _skill_title(skill, translator.locale),
            "buyer": _name(buyer) if buyer is not None else "",
            "points": order.price_points,
        }
    elif kind == MailKind.ORDER_TRANSITIONED:
        context |= {"action": payload.get("action", ""), "note": payload.get("note") or ""}
    elif kind == MailKind.DISPUTE_RESOLVED:
        context |= {"resolution": order.resolution, "note": payload.get("note") or ""}
    elif kind == MailKind.REVIEW_RECEIVED:
        review = await session.scalar(
            select(Review).where(Review.id == payload["review_id"], Review.order_id == order.id)
        )
        if review is None:
            raise PermanentTaskError(f"review {payload['review_id']} of the notification is gone")
        reviewer = await session.get(User, review.reviewer_id)
        context |= {
            "reviewer": _name(reviewer) if reviewer is not None else "",
            # Hidden until the reader has reviewed too (or the window closed): no stars yet.
            "rating": review.rating if review.counted_at is not None else None,
        }
    return context


def _skill_title(skill: Skill | None, locale: str) -> str:
    if skill is None:
        return ""
    if locale == "ar" and skill.title_ar:
        return skill.title_ar
    return skill.title_en or skill.title_ar


HANDLERS: dict[str, OutboxHandler] = {
    DELIVER_NOTIFICATION: deliver_notification,
    MAIL_CODE: mail_code,
    MAIL_ACCOUNT_SUSPENDED: mail_suspension,
}
