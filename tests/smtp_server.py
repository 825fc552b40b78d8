"""A real SMTP server for tests (aiosmtpd), in this process on an unused port, in its own thread.

It keeps every message it accepted, parsed, so a test reads what a user would receive. It can
ask for a login (checked against its own users), speak TLS from the start or after STARTTLS,
answer a failure to RCPT or DATA (`refuse_rcpt`, `refuse_data`), hold each DATA a while before
taking the message (`data_delay`: a client cut off meanwhile sent nothing), or take the message
and hold its answer (`answer_delay`: a client cut off meanwhile has delivered a mail it never
heard was taken, the lost answer after which a sender rightly sends it again). Its loop runs on
another thread: a client that blocked the test's loop would still be answered, late, so a test
can tell.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPProtocol
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from tests.tls import client_ssl_context, server_ssl_context


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ReceivedMail:
    """One message as the server accepted it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    login: str | None  # the user the client signed in as, if it did
    tls: bool  # whether the session was encrypted when the message came
    message: EmailMessage

    @property
    def to(self) -> str:
        return str(self.message["To"])

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def message_id(self) -> str:
        """The Message-ID header: the same on a mail sent again, so duplicates show."""
        return str(self.message["Message-ID"])

    def part(self, subtype: str) -> str:
        """The decoded text of the `text/{subtype}` part."""
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None and body.get_content_subtype() == subtype, subtype
        return str(body.get_content()).replace("\r\n", "\n")

    @property
    def text(self) -> str:
        return self.part("plain")

    @property
    def html(self) -> str:
        return self.part("html")


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(
        self,
        _server: SMTPProtocol,
        _session: Session,
        envelope: Envelope,
        address: str,
        _options: list[str],
    ) -> str:
        if self.server.refuse_rcpt:
            return self.server.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPProtocol, session: Session, envelope: Envelope) -> str:
        if self.server.data_delay:
            await asyncio.sleep(self.server.data_delay)
        if self.server.refuse_data:
            return self.server.refuse_data
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = str(session.auth_data) if session.authenticated else None
        self.server.received.append(
            ReceivedMail(
                mail_from=str(envelope.mail_from),
                rcpt_tos=tuple(envelope.rcpt_tos),
                login=login,
                tls=server.transport.get_extra_info("ssl_object") is not None,
                message=message,
            )
        )
        if self.server.answer_delay:
            self.server.answering += 1
            try:
                await asyncio.sleep(self.server.answer_delay)
            finally:
                self.server.answering -= 1
        return "250 Message accepted"


class SmtpServer:
    """Start with `with SmtpServer(...) as smtp:`; `smtp.port`, `smtp.received`."""

    def __init__(
        self,
        *,
        users: dict[str, str] | None = None,
        tls: str = "none",  # "none", "starttls" (required), "tls" (from the start)
        certificate: TestCertificate | None = None,
    ) -> None:
        self.port = _unused_port()
        self.users = users
        self.received: list[ReceivedMail] = []
        self.failed_logins: list[str] = []
        self.refuse_rcpt: str | None = None  # e.g. "550 5.1.1 No such user"
        self.refuse_data: str | None = None  # e.g. "451 4.3.0 Try again later"
        self.data_delay = 0.0
        self.answer_delay = 0.0
        self.answering = 0  # messages taken whose answer is being held (answer_delay)
        kwargs: dict[str, Any] = {}
        if users is not None:
            kwargs.update(
                authenticator=self._authenticate,
                auth_required=True,
                # A plaintext test server may take logins; TLS modes keep aiosmtpd's rule.
                auth_require_tls=tls != "none",
            )
        if tls != "none":
            assert certificate is not None, "a TLS server needs a certificate"
            context = certificate.server_context()
            if tls == "starttls":
                kwargs.update(tls_context=context, require_starttls=True)
            else:
                kwargs.update(ssl_context=context)
        self._controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=self.port, **kwargs
        )

    def _authenticate(
        self,
        _server: SMTPProtocol,
        _session: Session,
        _envelope: Envelope,
        _mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        ok = self.users is not None and self.users.get(login) == password
        if not ok:
            self.failed_logins.append(login)
        # handled=False: aiosmtpd itself answers (235, or 535 on a failure).
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._controller.stop()

    def to(self, address: str) -> list[ReceivedMail]:
        return [mail for mail in list(self.received) if address in mail.rcpt_tos]

    async def wait_for(self, address: str, *, count: int = 1, within: float = 10) -> ReceivedMail:
        """The `count`-th message to `address`, once it has arrived (the newest of them)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            mails = self.to(address)
            if len(mails) >= count:
                return mails[count - 1]
            await asyncio.sleep(0.02)
        raise AssertionError(f"{count} mail(s) to {address} did not arrive in {within} s")


class TestCertificate:
    """The tests' self-signed certificate (tests/tls.py), served by the SMTP server and trusted
    by the client context alone."""

    __test__ = False  # not a test class, despite the name

    def server_context(self) -> ssl.SSLContext:
        return server_ssl_context()

    def client_context(self) -> ssl.SSLContext:
        return client_ssl_context()
