"""The seam every outgoing email passes through: the message, the mailer protocol, its errors.

A mailer either delivers a message or raises: `TransientMailError` when trying again later may
work (a 4xx answer, a connection that failed or dropped), `PermanentMailError` when it cannot
(a 5xx answer: the address or the message is refused). The caller that owns the retry (the
outbox's task) decides when to try again. `skillswap.mail.render` builds the messages from the
templates; `skillswap.mail.smtp` sends them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutgoingEmail:
    to: str
    subject: str
    body: str  # the text part
    kind: str  # "verify_email", "password_reset", ...
    context: dict[str, str] = field(default_factory=dict)
    html: str = ""  # the HTML part; empty: a text-only message
    locale: str = "en"
    # The Message-ID header without its angle brackets; empty: the mailer makes a fresh one.
    # One id per effect lets a receiver (and a test) see a redelivered mail as the same mail.
    message_id: str = ""


class Mailer(Protocol):
    async def send(self, message: OutgoingEmail) -> None: ...


class MailError(Exception):
    """A message was not delivered."""

    def __init__(self, reason: str, *, code: int | None = None) -> None:
        super().__init__(reason)
        self.code = code  # the SMTP reply code, when the server gave one


class TransientMailError(MailError):
    """Not delivered this time; sending the same message again later may succeed."""


class PermanentMailError(MailError):
    """Not deliverable as it is: sending it again would be refused again."""


class ConsoleMailer:
    """Writes every message, body included, to the log at INFO: the default until SMTP is
    configured, so that a developer can read the codes and links a flow sends and finish it."""

    async def send(self, message: OutgoingEmail) -> None:
        log.info(
            "email %s to %s: %s\n%s%s",
            message.kind,
            message.to,
            message.subject,
            message.body,
            "".join(f"\n  {name}: {value}" for name, value in message.context.items()),
        )


class MailOff:
    """Production without SMTP_HOST: nothing is sent, and nothing of a message is logged but
    its kind and recipient (`serve` says at start that mail is off)."""

    async def send(self, message: OutgoingEmail) -> None:
        log.warning("mail is off: %s to %s not sent", message.kind, message.to)
