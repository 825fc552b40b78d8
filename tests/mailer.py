"""The test mailer: keeps what the service sent, so a test can read the code or link in it."""

from __future__ import annotations

from collections import deque

from skillswap.mail import OutgoingEmail


class RecordingMailer:
    """Keeps the latest messages in memory (the service's default writes them to the log)."""

    def __init__(self, keep: int = 1000) -> None:
        self.outbox: deque[OutgoingEmail] = deque(maxlen=keep)

    async def send(self, message: OutgoingEmail) -> None:
        self.outbox.append(message)

    def last_to(self, address: str, kind: str | None = None) -> OutgoingEmail | None:
        for message in reversed(self.outbox):
            if message.to == address and (kind is None or message.kind == kind):
                return message
        return None
