"""Sending a mail as the work of an outbox row: one Message-ID per row, errors told apart.

Every mail handler ends here. The Message-ID is derived from the row's key, so a mail sent
again after its SMTP answer was lost is the same mail to the receiver (and to a test that
counts duplicates). A refused message dead-letters the row; any other failure is retried.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from skillswap.i18n import Translator, negotiate_locale
from skillswap.mail import OutgoingEmail, PermanentMailError
from skillswap.mail.smtp import message_id_for
from skillswap.tasks.definitions import PermanentTaskError

if TYPE_CHECKING:
    from skillswap.deps import Deps
    from skillswap.models import User
    from skillswap.tasks.outbox import OutboxJob


def translator_for(deps: Deps, user: User) -> Translator:
    """The user's language for what is sent to them (their saved locale, else the default)."""
    return deps.catalogs.get(
        negotiate_locale(
            user_locale=user.locale, accept_language=None, default=deps.settings.default_locale
        )
    )


def mail_id(deps: Deps, job: OutboxJob) -> str:
    """The Message-ID of the mail an outbox row sends, the same on every attempt."""
    return message_id_for(job.key, sender=deps.settings.email_from)


async def deliver_mail(deps: Deps, job: OutboxJob, message: OutgoingEmail) -> None:
    """Send `message` for outbox row `job`: a refusal is permanent, anything else retried."""
    try:
        await deps.mailer.send(message)
    except PermanentMailError as exc:
        raise PermanentTaskError(f"mail to {message.to} refused: {exc}") from exc
