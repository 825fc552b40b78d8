"""The seam every outgoing email passes through."""

from __future__ import annotations

import logging
from collections import deque
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


class RecordingMailer:
    """Keeps the latest messages in memory and logs them; the default until SMTP is configured."""

    def __init__(self, keep: int = 1000) -> None:
        self.outbox: deque[OutgoingEmail] = deque(maxlen=keep)

    async def send(self, message: OutgoingEmail) -> None:
        self.outbox.append(message)
        log.info("email %s to %s: %s", message.kind, message.to, message.subject)

    def last_to(self, address: str, kind: str | None = None) -> OutgoingEmail | None:
        for message in reversed(self.outbox):
            if message.to == address and (kind is None or message.kind == kind):
                return message
        return None
