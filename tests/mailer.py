"""The test mailer: keeps what the service sent, so a test can read the code or link in it."""

from __future__ import annotations

import asyncio
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

    async def wait_for(
        self, address: str, kind: str | None = None, *, count: int = 1, within: float = 10
    ) -> OutgoingEmail:
        """The newest message to `address` (of `kind`) once `count` of them were sent: mail
        goes out from the outbox after the commit, a moment after the request answered."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            sent = [m for m in self.outbox if m.to == address and (kind is None or m.kind == kind)]
            if len(sent) >= count:
                return sent[-1]
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"{count} {kind or 'mail'} to {address} not sent in {within} s"
                )
            await asyncio.sleep(0.02)
