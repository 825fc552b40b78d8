"""Sending mail over SMTP with aiosmtplib: on the loop, never blocking it.

Each message opens its own connection (TLS from the start, STARTTLS, or plain, as SMTP_TLS
says), authenticates when SMTP_USERNAME is set, and closes it. Failures are sorted for the
caller's retry: a 4xx reply, a refused or dropped connection and a timeout are transient; a 5xx
reply (an address refused, a failed login) and a server without a required extension are not.
A connection that drops after the message was sent but before the server's answer arrived is
transient too, so such a mail may arrive twice: its Message-ID stays the same.
"""

from __future__ import annotations

import socket
import ssl
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid

import aiosmtplib

from skillswap.mail import OutgoingEmail, PermanentMailError, TransientMailError
from skillswap.settings import SMTP_TLS_MODES, ConfigError, Settings


def mime_message(message: OutgoingEmail, *, sender: str, reply_to: str = "") -> EmailMessage:
    """The message as MIME: a text part, and the HTML part as its alternative when there is one."""
    mime = EmailMessage()
    mime["From"] = sender
    mime["To"] = message.to
    if reply_to:
        mime["Reply-To"] = reply_to
    mime["Subject"] = message.subject
    mime["Date"] = format_datetime(datetime.now(UTC))
    mime["Message-ID"] = (
        f"<{message.message_id}>" if message.message_id else make_msgid(domain=_domain(sender))
    )
    mime.set_content(message.body)
    if message.html:
        mime.add_alternative(message.html, subtype="html")
    mime["Content-Language"] = message.locale  # after the parts: set_content drops Content-*
    return mime


def _domain(sender: str) -> str:
    """The domain of the From address (for Message-IDs)."""
    addresses = getaddresses([sender])
    address = addresses[0][1] if addresses else ""
    return address.rpartition("@")[2] or "skillswap.invalid"


def message_id_for(key: str, *, sender: str) -> str:
    """A stable Message-ID (without brackets) for one effect, e.g. an outbox row's key."""
    local = "".join(c if c.isalnum() or c in "._-" else "-" for c in key)
    return f"{local}@{_domain(sender)}"


class SmtpMailer:
    """Delivers each message to the SMTP server of the settings."""

    def __init__(self, settings: Settings, *, tls_context: ssl.SSLContext | None = None) -> None:
        if settings.smtp_tls not in SMTP_TLS_MODES:
            raise ConfigError(f"SMTP_TLS must be one of: {', '.join(SMTP_TLS_MODES)}")
        if not settings.smtp_host:
            raise ConfigError("SMTP_HOST is not set")
        # The From address must parse: a typo here would refuse every mail, quietly.
        Address(addr_spec=getaddresses([settings.email_from])[0][1])
        self.settings = settings
        # None: the system's trusted certificates (a test passes one that trusts its server).
        self._tls_context = tls_context
        # The name this host gives in EHLO, looked up once: left to aiosmtplib, every message
        # would resolve it again in a thread (measured: 6% of a worker's time per mail).
        self._local_hostname = socket.getfqdn()

    async def send(self, message: OutgoingEmail) -> None:
        settings = self.settings
        mime = mime_message(message, sender=settings.email_from, reply_to=settings.email_reply_to)
        try:
            await aiosmtplib.send(
                mime,
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username or None,
                password=settings.smtp_password or None,
                use_tls=settings.smtp_tls == "tls",
                # False, not None: "none" must never upgrade, "starttls" must never fall back.
                start_tls=settings.smtp_tls == "starttls",
                timeout=settings.smtp_timeout_seconds,
                tls_context=self._tls_context,
                local_hostname=self._local_hostname,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            # One recipient per message: its refusal is the answer.
            refused = exc.recipients[0]
            raise _by_code(refused.code, f"recipient refused: {refused.message}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise _by_code(exc.code, exc.message) from exc
        except OSError as exc:
            untrusted = _certificate_refusal(exc)
            if untrusted is not None:
                raise PermanentMailError(f"SMTP server certificate: {untrusted}") from exc
            # Refused or dropped connections and timeouts (aiosmtplib's are OSErrors too).
            raise TransientMailError(f"SMTP server unreachable: {exc}") from exc
        except aiosmtplib.SMTPException as exc:
            # What is left is the server lacking what the settings need (AUTH, STARTTLS).
            raise PermanentMailError(f"SMTP server: {exc}") from exc


def _certificate_refusal(exc: BaseException) -> str | None:
    """Why the server's certificate was not trusted, if that is what failed (aiosmtplib wraps
    the TLS error in its own connection error)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return str(cause.verify_message)
        cause = cause.__cause__
    return None


def _by_code(code: int, reason: str) -> TransientMailError | PermanentMailError:
    """RFC 5321: 4yz is a transient negative reply, 5yz a permanent one."""
    text = f"{code} {reason}".strip()
    if 400 <= code < 500:
        return TransientMailError(text, code=code)
    return PermanentMailError(text, code=code)
