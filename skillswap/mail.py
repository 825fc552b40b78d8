"""The seam every outgoing email passes through."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutgoingEmail:
    to: str
    subject: str
    body: str
    kind: str  # "verify_email", "password_reset", ...
    context: dict[str, str] = field(default_factory=dict)


class Mailer(Protocol):
    async def send(self, message: OutgoingEmail) -> None: ...


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
