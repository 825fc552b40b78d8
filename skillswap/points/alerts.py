"""Ledger check alerts: a failed check is mailed to every active administrator.

The scheduler's `ledger_check` job logs each violation and, when there is any, calls
`alert_administrators`: one "mail.ledger_alert" outbox row per administrator, keyed on the check
and the administrator, so a check run twice alerts once. The payload carries the violations
(the first `MAX_REPORTED`, each detail cut to `MAX_DETAIL_CHARS`) and their total; the mail
points to `skillswap ledger check` for the whole report. A clean check mails no one.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from skillswap.ledger import Violation
from skillswap.mail.render import MailKind, links_base, render_email
from skillswap.models import User
from skillswap.notifications.mailing import deliver_mail, mail_id, translator_for
from skillswap.tasks import outbox
from skillswap.tasks.definitions import OutboxHandler, PermanentTaskError

if TYPE_CHECKING:
    from skillswap.deps import Deps
    from skillswap.tasks.outbox import OutboxJob

ALERT_KIND = "mail.ledger_alert"
MAX_REPORTED = 20  # violations a mail lists; the total is always given
MAX_DETAIL_CHARS = 300


def alert_key(check: datetime, admin_id: int) -> str:
    """The outbox key of one administrator's alert about the check that ran at `check`."""
    return f"ledger-check:{check:%Y-%m-%dT%H:%M:%SZ}:{admin_id}"


async def alert_administrators(
    deps: Deps, violations: list[Violation], *, check: datetime, now: datetime
) -> int:
    """Enqueue an alert about `violations` for each active administrator; how many there are.

    `check` names the check (the start of its scheduled tick): the same check enqueued again
    adds nothing.
    """
    if not violations:
        return 0
    payload = {
        "checked_at": f"{check:%Y-%m-%d %H:%M} UTC",
        "total": len(violations),
        "violations": [
            {"invariant": v.invariant, "detail": v.detail[:MAX_DETAIL_CHARS]}
            for v in violations[:MAX_REPORTED]
        ],
    }
    async with deps.db.uow() as uow:
        admins = list(
            await uow.session.scalars(
                select(User.id)
                .where(User.is_admin.is_(True), User.is_active.is_(True))
                .order_by(User.id)
            )
        )
        await outbox.enqueue_many(
            uow,
            ALERT_KIND,
            [(alert_key(check, admin), {**payload, "admin": admin}) for admin in admins],
            now=now,
        )
        await uow.commit()
    return len(admins)


async def send_ledger_alert(deps: Deps, job: OutboxJob) -> None:
    """The "mail.ledger_alert" handler: the violations, in the administrator's language.

    Nothing is sent to an account that is no longer an active administrator.
    """
    try:
        admin_id = int(job.payload["admin"])
        context = {
            "checked_at": str(job.payload["checked_at"]),
            "total": int(job.payload["total"]),
            "violations": [
                {"invariant": str(v["invariant"]), "detail": str(v["detail"])}
                for v in job.payload["violations"]
            ],
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentTaskError(f"malformed ledger alert payload: {job.payload!r}") from exc
    async with deps.db.read() as session:
        admin = await session.get(User, admin_id)
    if admin is None or not admin.is_admin or not admin.is_active:
        return
    message = render_email(
        MailKind.LEDGER_ALERT,
        to=admin.email,
        translator=translator_for(deps, admin),
        base_url=links_base(deps.settings),
        context={"name": admin.display_name or admin.username, **context},
        message_id=mail_id(deps, job),
    )
    await deliver_mail(deps, job, message)


HANDLERS: dict[str, OutboxHandler] = {ALERT_KIND: send_ledger_alert}
