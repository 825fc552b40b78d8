"""What leaves the server, through the outbox: a worker mails and pushes what the other side of
an order did, as each user wants it, once; emailed codes are sealed in their rows.

Each app here has a database of its own and its own relay and worker (the production
`InProcess`), so the mails and pushes counted are exactly those its requests caused.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from skillswap.accounts.services import _new_one_time_token, _queue_email
from skillswap.auth.tokens import hash_opaque_token
from skillswap.bootstrap import _mailer
from skillswap.deps import Deps
from skillswap.mail import ConsoleMailer, MailOff, OutgoingEmail
from skillswap.models import OneTimeToken, OutboxRow, OutboxStatus, User
from skillswap.models.users import TokenPurpose
from skillswap.notifications.delivery import mail_code
from skillswap.tasks.definitions import PermanentTaskError
from skillswap.tasks.outbox import OutboxJob
from tests.chat_support import wait_for
from tests.clock import MovableClock
from tests.conftest import Api, api_client, extra_server, own_database
from tests.factories import TestUser, insert_skill, make_user, verify_email
from tests.fakes.fcm_server import FakeFcm, running_fcm
from tests.mailer import RecordingMailer
from tests.outbox_support import outbox_settled

ORDERS = "/api/points/orders/"
PREFS = "/api/notifications/preferences/"
DEVICES = "/api/notifications/devices/"


@dataclass
class App:
    api: Api
    deps: Deps
    mailer: RecordingMailer
    clock: MovableClock
    fcm: FakeFcm | None

    async def user(self, **options: Any) -> TestUser:
        return await make_user(self.api, self.deps, **options)

    async def order(self, buyer: TestUser, seller: TestUser, price: int = 3) -> int:
        skill_id = await insert_skill(self.deps, owner_id=seller.id, price=price)
        response = await self.api.post(ORDERS, token=buyer.access, json={"skill_id": skill_id})
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    async def act(self, user: TestUser, order_id: int, action: str, **body: Any) -> None:
        response = await self.api.post(
            f"{ORDERS}{order_id}/{action}/", token=user.access, json=body
        )
        assert response.status_code == 200, response.text

    def mails(self, user: TestUser, kind: str | None = None) -> list[OutgoingEmail]:
        return [
            m for m in self.mailer.outbox if m.to == user.email and (kind is None or m.kind == kind)
        ]

    async def rows(self, kind: str) -> list[OutboxRow]:
        async with self.deps.db.read() as session:
            return list(
                await session.scalars(
                    select(OutboxRow).where(OutboxRow.kind == kind).order_by(OutboxRow.id)
                )
            )


@contextlib.asynccontextmanager
async def outgoing_app(*, push: bool = False, **overrides: Any) -> AsyncIterator[App]:
    async with contextlib.AsyncExitStack() as stack:
        own = await stack.enter_async_context(own_database())
        fcm = await stack.enter_async_context(running_fcm()) if push else None
        if fcm is not None:
            overrides |= {"fcm_credentials_file": fcm.account_file(), "fcm_api_base": fcm.base_url}
        settings = own.with_overrides(**{"outbox_poll_seconds": 1, **overrides})
        mailer, clock = RecordingMailer(), MovableClock()
        url, deps = await stack.enter_async_context(
            extra_server(settings, mailer=mailer, clock=clock, background=True)
        )
        api = await stack.enter_async_context(api_client(url))
        yield App(api, deps, mailer, clock, fcm)


@pytest.fixture
async def app() -> AsyncIterator[App]:
    async with outgoing_app() as built:
        yield built


async def test_the_seller_is_mailed_a_new_order_in_their_language(app: App):
    seller = await app.user(locale="ar", display_name="سارة")
    buyer = await app.user(display_name="Lina", verified=False)
    await app.mailer.wait_for(buyer.email, "verify_email")
    await verify_email(app.api, app.deps, buyer.id)  # with the code mailed, to order
    order_id = await app.order(buyer, seller, price=3)
    mail = await app.mailer.wait_for(seller.email, "order_placed")
    assert mail.locale == "ar"
    assert mail.subject.startswith(f"طلب جديد #{order_id} على ")
    assert "Lina" in mail.body
    assert "3 نقاط محجوزة في الضمان حتى اكتمال الطلب." in mail.body
    assert '<html lang="ar" dir="rtl">' in mail.html
    await outbox_settled(app.deps)
    assert app.mails(buyer) == [await app.mailer.wait_for(buyer.email, "verify_email")]
    (row,) = await app.rows("notification.deliver")
    assert (row.status, row.attempts, row.last_error) == (OutboxStatus.DONE, 1, None)


async def test_each_side_is_mailed_what_the_other_did_and_not_what_it_did_itself(app: App):
    seller, buyer = await app.user(), await app.user()
    order_id = await app.order(buyer, seller)
    await app.act(seller, order_id, "accept")
    await app.act(seller, order_id, "deliver", note="the recording is attached")
    await app.act(buyer, order_id, "complete")
    await outbox_settled(app.deps)
    # Workers run rows side by side: mails leave in any order.
    to_buyer = {m.subject: m for m in app.mails(buyer, "order_transitioned")}
    assert sorted(to_buyer) == [
        f"Order #{order_id} was accepted",
        f"Order #{order_id} was delivered. Review the work",
    ]
    delivered = to_buyer[f"Order #{order_id} was delivered. Review the work"]
    assert "Note: the recording is attached\n" in delivered.body
    assert [m.subject for m in app.mails(seller, "order_transitioned")] == [
        f"Order #{order_id} was completed"
    ]
    # One Message-ID per outbox row: a mail sent again would be recognised as the same.
    ids = [m.message_id for m in app.mailer.outbox]
    assert all(ids) and len(set(ids)) == len(ids)


async def test_a_user_who_turned_email_off_for_a_kind_gets_no_mail_of_it(app: App):
    seller, buyer = await app.user(), await app.user()
    response = await app.api.patch(
        PREFS, token=seller.access, json={"preferences": {"order_placed": {"email": False}}}
    )
    assert response.status_code == 200, response.text
    order_id = await app.order(buyer, seller)
    await app.act(buyer, order_id, "cancel")
    await outbox_settled(app.deps)
    assert app.mails(seller, "order_placed") == []
    # The other kinds keep their default: the cancellation is mailed.
    assert [m.subject for m in app.mails(seller, "order_transitioned")] == [
        f"Order #{order_id} was cancelled"
    ]
    assert {r.status for r in await app.rows("notification.deliver")} == {OutboxStatus.DONE}


async def test_a_review_mail_hides_the_stars_until_the_reader_has_reviewed_too(app: App):
    seller, buyer = await app.user(), await app.user(display_name="Lina")
    order_id = await app.order(buyer, seller)
    for user, action in ((seller, "accept"), (seller, "deliver"), (buyer, "complete")):
        await app.act(user, order_id, action)
    response = await app.api.post(
        f"{ORDERS}{order_id}/review/", token=buyer.access, json={"rating": 4, "comment": "good"}
    )
    assert response.status_code == 201, response.text
    hidden = await app.mailer.wait_for(seller.email, "review_received")
    assert hidden.subject == f"Lina reviewed order #{order_id}"
    assert "Their review is shown once you review them too" in hidden.body
    assert "star" not in hidden.body
    response = await app.api.post(
        f"{ORDERS}{order_id}/review/", token=seller.access, json={"rating": 5, "comment": ""}
    )
    assert response.status_code == 201, response.text
    public = await app.mailer.wait_for(buyer.email, "review_received")
    assert "They rated you 5 stars out of 5.\n" in public.body
    notes = (await app.api.get("/api/notifications/", token=seller.access)).json()["results"]
    assert [n["text"] for n in notes if n["kind"] == "review_received"] == [
        f"Lina reviewed you on order #{order_id}."
    ]


async def test_work_enqueued_here_starts_at_the_commit_not_at_the_next_poll():
    # On SQLite there is no NOTIFY: the relay of this process is woken by the commit itself.
    async with outgoing_app(outbox_poll_seconds=60) as app:
        user = await app.user(verified=False)
        await app.mailer.wait_for(user.email, "verify_email", within=3)


# -- emailed codes ----------------------------------------------------------------------------


async def test_an_emailed_code_waits_sealed_and_a_spent_code_is_not_mailed(app: App):
    user = await app.user(verified=False)
    mail = await app.mailer.wait_for(user.email, "verify_email")
    code = mail.context["token"]
    await outbox_settled(app.deps)  # sent, then marked done a moment later
    (row,) = await app.rows("mail.code")
    assert row.status == OutboxStatus.DONE
    assert code not in str(row.payload)
    assert set(row.payload) == {"user_id", "purpose", "code"}

    # A reset asked for, and its code spent before a worker got to the mail (here in the same
    # transaction, so no worker can be quicker): nothing is sent, and the row is done.
    async with app.deps.db.uow() as uow:
        account = await uow.session.get(User, user.id)
        assert account is not None
        purpose = TokenPurpose.PASSWORD_RESET
        token = await _new_one_time_token(app.deps, uow.session, account, purpose)
        await _queue_email(app.deps, uow, account, purpose, token)
        await uow.session.flush()
        await uow.session.execute(
            update(OneTimeToken)
            .where(OneTimeToken.token_hash == hash_opaque_token(token))
            .values(used_at=app.clock())
        )
        await uow.commit()
    await outbox_settled(app.deps)
    assert app.mails(user, "password_reset") == []
    assert [r.status for r in await app.rows("mail.code")] == [OutboxStatus.DONE] * 2


async def test_a_code_sealed_under_another_secret_key_fails_for_good():
    async with outgoing_app() as app:
        user = await app.user(verified=False)
        await app.mailer.wait_for(user.email, "verify_email")
        (row,) = await app.rows("mail.code")
        job = OutboxJob(row.id, row.kind, row.key, row.payload, row.attempts)
        rotated = app.deps.settings.with_overrides(secret_key="another-secret-key-" + "x" * 40)
        other = Deps(**{**app.deps.__dict__, "settings": rotated})
        with pytest.raises(PermanentTaskError, match="does not open with this key"):
            await mail_code(other, job)


# -- push, and a retry that neither mails nor pushes twice -------------------------------------


async def test_a_push_that_fails_for_a_while_is_retried_without_mailing_or_pushing_twice():
    async with outgoing_app(push=True) as app:
        assert app.fcm is not None
        seller, buyer = await app.user(), await app.user()
        for token in ("phone-ok", "tablet-flaky"):
            response = await app.api.post(
                DEVICES, token=seller.access, json={"token": token, "platform": "android"}
            )
            assert response.status_code == 201, response.text
        app.fcm.errors["tablet-flaky"] = "UNAVAILABLE"
        order_id = await app.order(buyer, seller)

        async def retried() -> bool:
            rows = await app.rows("notification.deliver")
            return bool(rows) and rows[0].status == OutboxStatus.PENDING and rows[0].attempts == 1

        await wait_for(retried, within=10)
        (row,) = await app.rows("notification.deliver")
        assert row.payload["mailed"] is True
        assert len(row.payload["pushed_to"]) == 1
        assert "UNAVAILABLE" in (row.last_error or "")
        # FCM's Retry-After (30 s) is longer than the first backoff (10 s): it is what counts.
        assert row.available_at - app.clock() > timedelta(seconds=25)

        app.fcm.errors.clear()
        app.clock.offset = timedelta(seconds=40)

        async def done() -> bool:
            (row,) = await app.rows("notification.deliver")
            return row.status == OutboxStatus.DONE

        await wait_for(done, within=10)
        assert len(app.fcm.received("phone-ok")) == 1
        (tablet,) = app.fcm.received("tablet-flaky")
        assert tablet["notification"]["body"] == f"You have a new order #{order_id}."
        assert len(app.mails(seller, "order_placed")) == 1


# -- without SMTP -----------------------------------------------------------------------------


async def test_without_smtp_development_logs_the_whole_mail_and_production_sends_nothing(
    settings, caplog
):
    message = OutgoingEmail(
        to="sam@example.com", subject="Code", body="code: 123456\n", kind="verify_email"
    )
    # The embedded default (no DATABASE_URL) is development; a database of its own, production.
    assert isinstance(
        _mailer(settings.with_overrides(smtp_host="", database_url="")), ConsoleMailer
    )
    production = settings.with_overrides(smtp_host="", database_url="postgresql://db/skillswap")
    mailer = _mailer(production)
    assert isinstance(mailer, MailOff)
    with caplog.at_level(logging.INFO, logger="skillswap.mail"):
        await ConsoleMailer().send(message)
        await mailer.send(message)
    console, off = caplog.records[-2:]
    assert "123456" in console.getMessage()
    assert off.getMessage() == "mail is off: verify_email to sam@example.com not sent"
