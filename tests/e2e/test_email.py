"""Email over real SMTP: what reaches an inbox, in the reader's language, and how sending fails.

A real SMTP server (aiosmtpd, tests/smtp_server.py) runs in this process on an unused port;
the app under test is bootstrapped with SMTP_HOST pointing at it, so the mailer is the one
production uses. Codes are read out of the delivered mails, as a person would copy them.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from skillswap.i18n import Catalogs
from skillswap.mail import OutgoingEmail, PermanentMailError, TransientMailError
from skillswap.mail.render import MailKind, render_email
from skillswap.mail.smtp import SmtpMailer, message_id_for
from skillswap.settings import Settings
from tests.conftest import Api, api_client, extra_server, free_port, node_env, own_database
from tests.factories import unique_name
from tests.smtp_server import SmtpServer, TestCertificate

PUBLIC_URL = "https://skillswap.test"
SENDER = "SkillSwap <no-reply@skillswap.test>"
CATALOGS = Catalogs()
# The plaintext test server takes logins, which aiosmtpd rightly warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
# token_urlsafe: letters, digits, "-" and "_"
VERIFY_CODE = re.compile(r"confirm your email address: ([\w-]+)$", re.MULTILINE)
RESET_CODE = re.compile(r"choose a new password: ([\w-]+)\. ")


def smtp_settings(settings: Settings, smtp: SmtpServer, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port,
        "smtp_tls": "none",
        "smtp_timeout_seconds": 5,
        "email_from": SENDER,
        "email_reply_to": "help@skillswap.test",
        "public_url": PUBLIC_URL,
        **overrides,
    }
    return settings.with_overrides(**values)


@pytest.fixture(scope="module")
def smtp() -> AsyncIterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture(scope="module")
async def mail_api(settings: Settings, smtp: SmtpServer) -> AsyncIterator[Api]:
    """The app with SMTP_HOST set: bootstrap's own choice of mailer, no test double. On a
    database of its own, with its own worker: its mails go out through its SMTP mailer."""
    async with (
        own_database() as own,
        extra_server(smtp_settings(own, smtp), mailer=None, background=True) as (url, deps),
        api_client(url) as api,
    ):
        assert isinstance(deps.mailer, SmtpMailer)
        yield api


async def register(api: Api, *, locale: str | None = None) -> dict[str, str]:
    username = unique_name()
    body = {
        "email": f"{username}@example.com",
        "username": username,
        "password": "correct horse battery",
        "display_name": f"Sam {username[-4:]}",
    }
    if locale:
        body["locale"] = locale
    response = await api.post("/api/auth/register/", json=body)
    assert response.status_code == 201, response.text
    return {**body, "id": response.json()["user"]["id"]}


def a_message(to: str, **fields: object) -> OutgoingEmail:
    values: dict[str, object] = {
        "to": to,
        "subject": "Hello",
        "body": "A test message.\n",
        "kind": "test",
        **fields,
    }
    return OutgoingEmail(**values)  # type: ignore[arg-type]


# -- the security mails, end to end -------------------------------------------------------------


async def test_sign_up_mails_a_code_that_confirms_the_address(mail_api, smtp):
    user = await register(mail_api)
    mail = await smtp.wait_for(user["email"])
    assert mail.rcpt_tos == (user["email"],)
    assert mail.subject == "Confirm your SkillSwap email address"
    assert mail.message["From"] == SENDER
    assert mail.message["Reply-To"] == "help@skillswap.test"
    assert mail.message["Content-Language"] == "en"
    code = VERIFY_CODE.search(mail.text).group(1)  # type: ignore[union-attr]
    assert mail.text == (
        f"Hello {user['display_name']},\n\n"
        f"Use this code to confirm your email address: {code}\n\n"
        f"Or open this link: {PUBLIC_URL}/verify-email?token={code}\n\n"
        "The code works for 48 hours.\n"
        "If you did not create a SkillSwap account, ignore this email.\n"
    )
    assert '<html lang="en" dir="ltr">' in mail.html
    assert f'<a href="{PUBLIC_URL}/verify-email?token={code}"' in mail.html
    assert f">{code}</p>" in mail.html

    response = await mail_api.post("/api/auth/verify-email/", json={"token": code})
    assert response.status_code == 200, response.text
    assert response.json() == {"verified": True, "user_id": user["id"]}


async def test_password_reset_by_mail_then_sign_in_with_the_new_password(mail_api, smtp):
    user = await register(mail_api)
    await smtp.wait_for(user["email"])  # the verification mail
    response = await mail_api.post("/api/auth/password/reset/", json={"email": user["email"]})
    assert response.status_code == 202

    mail = await smtp.wait_for(user["email"], count=2)
    assert mail.subject == "Reset your SkillSwap password"
    code = RESET_CODE.search(mail.text).group(1)  # type: ignore[union-attr]
    assert f"Or open this link: {PUBLIC_URL}/reset-password?token={code}\n" in mail.text
    assert "The code works for 1 hour.\n" in mail.text
    new_password = "a brand new passphrase"
    response = await mail_api.post(
        "/api/auth/password/reset/confirm/", json={"token": code, "new_password": new_password}
    )
    assert response.status_code == 200, response.text

    old = await mail_api.post(
        "/api/auth/login/", json={"email": user["email"], "password": user["password"]}
    )
    assert old.status_code == 401
    new = await mail_api.post(
        "/api/auth/login/", json={"email": user["email"], "password": new_password}
    )
    assert new.status_code == 200, new.text
    assert new.json()["user"]["id"] == user["id"]


async def test_an_arabic_user_gets_an_arabic_subject_and_body_and_rtl_html(mail_api, smtp):
    user = await register(mail_api, locale="ar")
    mail = await smtp.wait_for(user["email"])
    assert mail.subject == "أكّد عنوان بريدك الإلكتروني في SkillSwap"
    assert mail.message["Content-Language"] == "ar"
    sentence = re.search(r"استخدم هذا الرمز لتأكيد عنوان بريدك الإلكتروني: ([\w-]+)\n", mail.text)
    assert sentence is not None
    code = sentence.group(1)
    assert mail.text == (
        f"مرحبًا {user['display_name']}،\n\n"
        f"استخدم هذا الرمز لتأكيد عنوان بريدك الإلكتروني: {code}\n\n"
        f"أو افتح هذا الرابط: {PUBLIC_URL}/verify-email?token={code}\n\n"
        "الرمز صالح لمدة 48 ساعة.\n"
        "إذا لم تنشئ حسابًا في SkillSwap فتجاهل هذه الرسالة.\n"
    )
    assert '<html lang="ar" dir="rtl">' in mail.html
    assert "<title>أكّد عنوان بريدك الإلكتروني في SkillSwap</title>" in mail.html
    assert ">أكّد عنوان بريدي الإلكتروني</a>" in mail.html

    response = await mail_api.post("/api/auth/verify-email/", json={"token": code})
    assert response.status_code == 200, response.text


# -- the SMTP mailer: logins, TLS modes, failures -------------------------------------------


async def test_the_mailer_signs_in_when_a_username_is_set(settings):
    with SmtpServer(users={"mailer": "s3cret pass"}) as server:
        mailer = SmtpMailer(
            smtp_settings(settings, server, smtp_username="mailer", smtp_password="s3cret pass")
        )
        await mailer.send(a_message("someone@example.com"))
        mail = await server.wait_for("someone@example.com")
        assert mail.login == "mailer"
        assert mail.tls is False

        wrong = SmtpMailer(
            smtp_settings(settings, server, smtp_username="mailer", smtp_password="guess")
        )
        with pytest.raises(PermanentMailError) as refused:
            await wrong.send(a_message("other@example.com"))
        assert refused.value.code == 535
        # The client tried each mechanism the server offers (PLAIN, LOGIN) before giving up.
        assert server.failed_logins == ["mailer", "mailer"]
        assert server.to("other@example.com") == []


async def test_starttls_encrypts_before_signing_in(settings):
    certificate = TestCertificate()
    with SmtpServer(users={"mailer": "pw"}, tls="starttls", certificate=certificate) as server:
        mailer = SmtpMailer(
            smtp_settings(
                settings, server, smtp_tls="starttls", smtp_username="mailer", smtp_password="pw"
            ),
            tls_context=certificate.client_context(),
        )
        await mailer.send(a_message("tls@example.com"))
        mail = await server.wait_for("tls@example.com")
        assert (mail.tls, mail.login) == (True, "mailer")

        # SMTP_TLS=none never upgrades: a server that insists refuses the plaintext session
        # (with a login, the client sees no AUTH offered before TLS and does not try).
        plain = SmtpMailer(smtp_settings(settings, server))
        with pytest.raises(PermanentMailError) as refused:
            await plain.send(a_message("plain@example.com"))
        assert refused.value.code == 530
        plain_login = SmtpMailer(
            smtp_settings(settings, server, smtp_username="mailer", smtp_password="pw")
        )
        with pytest.raises(PermanentMailError, match="AUTH extension is not supported"):
            await plain_login.send(a_message("plain@example.com"))
        assert server.to("plain@example.com") == []


async def test_implicit_tls_and_an_untrusted_certificate(settings):
    certificate = TestCertificate()
    with SmtpServer(tls="tls", certificate=certificate) as server:
        trusted = SmtpMailer(
            smtp_settings(settings, server, smtp_tls="tls"),
            tls_context=certificate.client_context(),
        )
        await trusted.send(a_message("implicit@example.com"))
        assert (await server.wait_for("implicit@example.com")).tls is True

        # The system's trust store does not know the test's certificate.
        untrusted = SmtpMailer(smtp_settings(settings, server, smtp_tls="tls"))
        with pytest.raises(PermanentMailError, match="certificate: self-signed certificate"):
            await untrusted.send(a_message("untrusted@example.com"))
        assert server.to("untrusted@example.com") == []


async def test_a_4xx_answer_is_transient_and_sending_again_delivers_once(settings):
    with SmtpServer() as server:
        mailer = SmtpMailer(smtp_settings(settings, server))
        message = a_message("later@example.com")
        server.refuse_data = "451 4.3.0 Try again later"
        with pytest.raises(TransientMailError) as first:
            await mailer.send(message)
        assert first.value.code == 451
        server.refuse_data = None
        server.refuse_rcpt = "450 4.2.1 Mailbox busy"
        with pytest.raises(TransientMailError) as second:
            await mailer.send(message)
        assert second.value.code == 450
        server.refuse_rcpt = None

        await mailer.send(message)
        await server.wait_for("later@example.com")
        assert len(server.to("later@example.com")) == 1


async def test_a_5xx_answer_is_permanent(settings):
    with SmtpServer() as server:
        mailer = SmtpMailer(smtp_settings(settings, server))
        server.refuse_rcpt = "550 5.1.1 No such user here"
        with pytest.raises(PermanentMailError) as refused:
            await mailer.send(a_message("nobody@example.com"))
        assert refused.value.code == 550
        assert "No such user here" in str(refused.value)
        server.refuse_rcpt = None
        server.refuse_data = "554 5.6.0 Message rejected"
        with pytest.raises(PermanentMailError) as rejected:
            await mailer.send(a_message("nobody@example.com"))
        assert rejected.value.code == 554
        assert server.received == []


async def test_a_server_that_is_not_there_is_a_transient_failure(settings):
    port = free_port()
    mailer = SmtpMailer(
        settings.with_overrides(smtp_host="127.0.0.1", smtp_port=port, smtp_tls="none")
    )
    with pytest.raises(TransientMailError) as failed:
        await mailer.send(a_message("nowhere@example.com"))
    assert failed.value.code is None


async def test_sending_does_not_block_the_loop(settings):
    with SmtpServer() as server:
        server.data_delay = 0.5  # the server takes half a second to accept each message
        mailer = SmtpMailer(smtp_settings(settings, server))
        gaps: list[float] = []
        sending = asyncio.ensure_future(mailer.send(a_message("slow@example.com")))
        last = time.monotonic()
        while not sending.done():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now
        await sending
        assert len(server.to("slow@example.com")) == 1
        assert len(gaps) >= 40  # the loop kept turning through the whole half second
        assert max(gaps) < 0.1


async def test_a_message_id_given_by_the_caller_is_the_header_sent(settings):
    with SmtpServer() as server:
        mailer = SmtpMailer(smtp_settings(settings, server))
        message_id = message_id_for("outbox:42:verify_email", sender=SENDER)
        assert message_id == "outbox-42-verify_email@skillswap.test"
        await mailer.send(a_message("ids@example.com", message_id=message_id))
        await mailer.send(a_message("ids@example.com"))
        first, second = server.to("ids@example.com")
        assert first.message["Message-ID"] == "<outbox-42-verify_email@skillswap.test>"
        assert second.message["Message-ID"].endswith("@skillswap.test>")
        assert second.message["Message-ID"] != first.message["Message-ID"]


def test_an_unknown_tls_mode_is_a_configuration_error(settings):
    from skillswap.settings import ConfigError

    with pytest.raises(ConfigError, match="SMTP_TLS must be one of: starttls, tls, none"):
        SmtpMailer(settings.with_overrides(smtp_host="mail.example.com", smtp_tls="ssl"))
    with pytest.raises(ConfigError, match="SMTP_TLS"):
        settings.with_overrides(smtp_tls="ssl").validate_for_serving()


# -- the other mails: rendered in both languages (sent by the outbox's tasks) ----------------


def render(kind: MailKind, locale: str, **context: object) -> OutgoingEmail:
    return render_email(
        kind,
        to="reader@example.com",
        translator=CATALOGS.get(locale),
        base_url=PUBLIC_URL + "/",
        context={"name": "Sam", **context},
    )


def test_a_new_order_mail_tells_the_seller_what_is_held():
    mail = render(MailKind.ORDER_PLACED, "en", order=17, skill="Guitar", buyer="Lina", points=1)
    assert mail.subject == "New order #17 for Guitar"
    assert mail.body == (
        "Hello Sam,\n\n"
        "Lina ordered Guitar.\n"
        "1 point is held in escrow until the order is completed.\n"
        "Accept or reject it before it expires.\n\n"
        f"Or open this link: {PUBLIC_URL}/orders/17\n"
    )
    assert mail.context == {"order": "17", "link": f"{PUBLIC_URL}/orders/17"}
    many = render(MailKind.ORDER_PLACED, "en", order=17, skill="Guitar", buyer="Lina", points=30)
    assert "30 points are held in escrow until the order is completed.\n" in many.body


@pytest.mark.parametrize(
    ("points", "sentence"),
    [
        (1, "نقطة واحدة محجوزة في الضمان حتى اكتمال الطلب."),
        (2, "نقطتان محجوزتان في الضمان حتى اكتمال الطلب."),
        (3, "3 نقاط محجوزة في الضمان حتى اكتمال الطلب."),
        (11, "11 نقطة محجوزة في الضمان حتى اكتمال الطلب."),
        (100, "100 نقطة محجوزة في الضمان حتى اكتمال الطلب."),
    ],
)
def test_arabic_order_mails_use_the_arabic_plural_forms(points, sentence):
    mail = render(MailKind.ORDER_PLACED, "ar", order=5, skill="العود", buyer="لينا", points=points)
    assert mail.subject == "طلب جديد #5 على العود"
    assert f"\n{sentence}\n" in mail.body
    assert f"<p>{sentence}</p>" in mail.html
    assert '<html lang="ar" dir="rtl">' in mail.html


def test_an_order_transition_mail_says_what_the_other_side_did():
    mail = render(
        MailKind.ORDER_TRANSITIONED, "en", order=9, action="deliver", note="<b>see the file</b>"
    )
    assert mail.subject == "Order #9 was delivered. Review the work"
    assert mail.body == (
        "Hello Sam,\n\n"
        "Order #9 was delivered. Review the work.\n"
        "Note: <b>see the file</b>\n\n"
        f"Or open this link: {PUBLIC_URL}/orders/9\n"
    )
    # The HTML part escapes what users wrote.
    assert "<p>Note: &lt;b&gt;see the file&lt;/b&gt;</p>" in mail.html
    arabic = render(MailKind.ORDER_TRANSITIONED, "ar", order=9, action="accept", note="")
    assert arabic.subject == "تم قبول الطلب #9"
    assert "ملاحظة" not in arabic.body


def test_a_dispute_resolution_mail_names_the_outcome():
    mail = render(MailKind.DISPUTE_RESOLVED, "en", order=3, resolution="split", note="")
    assert mail.subject == "The dispute on order #3 was resolved"
    assert "The points were split between the buyer and the seller.\n" in mail.body
    arabic = render(MailKind.DISPUTE_RESOLVED, "ar", order=3, resolution="refund", note="")
    assert "أُعيدت النقاط إلى المشتري.\n" in arabic.body


def test_a_review_mail_shows_the_rating_only_once_the_review_is_public():
    public = render(MailKind.REVIEW_RECEIVED, "en", order=4, reviewer="Lina", rating=5)
    assert public.subject == "Lina reviewed order #4"
    assert "They rated you 5 stars out of 5.\n" in public.body
    one = render(MailKind.REVIEW_RECEIVED, "ar", order=4, reviewer="لينا", rating=1)
    assert "قيّمك بنجمة واحدة من 5.\n" in one.body
    hidden = render(MailKind.REVIEW_RECEIVED, "en", order=4, reviewer="Lina", rating=None)
    assert "Their review is shown once you review them too" in hidden.body
    assert "star" not in hidden.body


def test_a_mail_missing_a_value_is_an_error_not_a_blank():
    with pytest.raises(Exception, match="'buyer' is undefined"):
        render(MailKind.ORDER_PLACED, "en", order=1, skill="Guitar", points=3)


# -- start-up -------------------------------------------------------------------------------


@pytest.mark.parametrize("smtp_host", ["", "127.0.0.1"], ids=["without SMTP", "with SMTP"])
def test_production_without_smtp_says_at_start_that_mail_is_off(settings, smtp_host):
    port = free_port()
    env = {**node_env(settings), "SMTP_HOST": smtp_host, "LOG_LEVEL": "INFO"}
    process = subprocess.Popen(
        [sys.executable, "-m", "skillswap", "serve", "--port", str(port), "--no-migrate"],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The port is bound before start-up; the first answer comes after the warning.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("the server did not start")
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    warned = "WARNING skillswap: mail is off: SMTP_HOST is not set" in stderr
    assert warned is (smtp_host == ""), stderr
