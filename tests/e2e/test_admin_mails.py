"""Mails for administrators' actions, over real HTTP and the real outbox: a skill's owner is
mailed when an administrator hides it (with the note) or lists it again, a wallet's owner when an
administrator adjusts it; in the reader's language, as they chose, each once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from skillswap.bootstrap import OUTBOX_HANDLERS
from skillswap.deps import Deps
from skillswap.mail import OutgoingEmail
from skillswap.models import OutboxRow, OutboxStatus
from skillswap.notifications.delivery import deliver_notification
from skillswap.tasks.definitions import run_outbox_row
from skillswap.tasks.outbox import OutboxJob
from tests.conftest import Api
from tests.factories import TestUser
from tests.mailer import RecordingMailer
from tests.outbox_support import outbox_settled

MODERATED = "skill_moderated"
ADJUSTED = "points_adjusted"


def mails_to(mailer: RecordingMailer, user: TestUser, kind: str) -> list[OutgoingEmail]:
    return [m for m in mailer.outbox if m.to == user.email and m.kind == kind]


async def moderate(api: Api, admin: TestUser, skill_id: int, **body: Any) -> None:
    response = await api.patch(f"/api/admin/skills/{skill_id}/", token=admin.access, json=body)
    assert response.status_code == 200, response.text


async def adjust(api: Api, admin: TestUser, user: TestUser, amount: int, reason: str) -> int:
    response = await api.post(
        "/api/admin/ledger/adjustments/",
        token=admin.access,
        json={"user_id": user.id, "amount": amount, "reason": reason},
    )
    assert response.status_code == 201, response.text
    return int(response.json()["balance_after"])


async def turn_email_off(api: Api, user: TestUser, kind: str) -> None:
    response = await api.patch(
        "/api/notifications/preferences/",
        token=user.access,
        json={"preferences": {kind: {"email": False}}},
    )
    assert response.status_code == 200, response.text
    assert response.json()["preferences"][kind] == {"email": False, "push": True}


async def delivery_row(api: Api, deps: Deps, user: TestUser, kind: str) -> OutboxRow:
    """The outbox row that delivered the user's one notification of `kind`."""
    listed = await api.get("/api/notifications/?page_size=100", token=user.access)
    [note] = [n for n in listed.json()["results"] if n["kind"] == kind]
    async with deps.db.read() as session:
        row = await session.scalar(
            select(OutboxRow).where(OutboxRow.key == f"notification:{note['id']}")
        )
    assert row is not None
    return row


# -- a hidden or restored skill ---------------------------------------------------------------


async def test_a_hidden_skill_s_owner_is_mailed_the_note_and_a_link_to_the_skill(
    api, deps, mailer, make_user, make_skill
):
    admin, owner = await make_user(admin=True), await make_user(display_name="Sam")
    skill = await make_skill(owner, title_en="Zither lessons")
    await moderate(api, admin, skill["id"], status="hidden", note="Copied from another site")
    mail = await mailer.wait_for(owner.email, MODERATED)
    assert mail.locale == "en"
    assert mail.subject == 'An administrator hid your skill "Zither lessons" from the marketplace'
    assert mail.body.startswith(
        'Hello Sam,\n\nAn administrator hid your skill "Zither lessons" from the marketplace.\n'
    )
    assert "Note: Copied from another site\n" in mail.body
    link = f"/skills/{skill['id']}"
    assert mail.context["link"].endswith(link) and link in mail.body
    assert "Note: Copied from another site" in mail.html and "Open the skill" in mail.html
    await outbox_settled(deps)
    assert mails_to(mailer, owner, MODERATED) == [mail]
    assert mails_to(mailer, admin, MODERATED) == []


async def test_an_arabic_owner_reads_the_hide_in_arabic_with_the_skill_s_arabic_title(
    api, deps, mailer, make_user, make_skill
):
    admin, owner = await make_user(admin=True), await make_user(locale="ar", display_name="سارة")
    skill = await make_skill(
        owner,
        title_en="Oud lessons",
        title_ar="دروس العود",
        description_ar="مقامات وإيقاعات للمبتدئين.",
    )
    await moderate(api, admin, skill["id"], status="hidden", note="صور منسوخة")
    mail = await mailer.wait_for(owner.email, MODERATED)
    assert mail.locale == "ar"
    assert mail.subject == 'أخفى أحد المشرفين مهارتك "دروس العود" من السوق'
    assert mail.body.startswith("مرحبًا سارة،\n")
    assert "ملاحظة: صور منسوخة\n" in mail.body
    assert '<html lang="ar" dir="rtl">' in mail.html and "افتح المهارة" in mail.html
    assert "Oud lessons" not in mail.body


async def test_a_restored_skill_s_owner_is_mailed_once_that_it_is_listed_again(
    api, deps, mailer, make_user, make_skill
):
    admin, owner = await make_user(admin=True), await make_user()
    skill = await make_skill(owner, title_en="Banjo basics")
    await moderate(api, admin, skill["id"], status="hidden", note="Misleading photos")
    await mailer.wait_for(owner.email, MODERATED)
    await moderate(api, admin, skill["id"], status="active")
    restored = await mailer.wait_for(owner.email, MODERATED, count=2)
    assert restored.subject == 'Your skill "Banjo basics" is listed again'
    assert "Note:" not in restored.body and "no longer shows" not in restored.body
    assert restored.context["link"].endswith(f"/skills/{skill['id']}")
    # Setting the status it already has tells nobody anything.
    await moderate(api, admin, skill["id"], status="active")
    await outbox_settled(deps)
    subjects = [m.subject for m in mails_to(mailer, owner, MODERATED)]
    assert subjects == [
        'An administrator hid your skill "Banjo basics" from the marketplace',
        'Your skill "Banjo basics" is listed again',
    ]


async def test_an_owner_who_turned_email_off_for_hidden_skills_gets_no_mail_of_it(
    api, deps, mailer, make_user, make_skill
):
    admin, owner = await make_user(admin=True), await make_user()
    await turn_email_off(api, owner, "skill_hidden")
    skill = await make_skill(owner)
    await moderate(api, admin, skill["id"], status="hidden", note="Spam")
    await moderate(api, admin, skill["id"], status="active")
    # The restore keeps its default (mailed): once it is sent, the hide's row ran too.
    restored = await mailer.wait_for(owner.email, MODERATED)
    await outbox_settled(deps)
    assert mails_to(mailer, owner, MODERATED) == [restored]
    assert "listed again" in restored.subject
    row = await delivery_row(api, deps, owner, "skill_hidden")
    assert row.status == OutboxStatus.DONE
    # Still told in the app.
    listed = await api.get("/api/notifications/", token=owner.access)
    assert [n["kind"] for n in listed.json()["results"]].count("skill_hidden") == 1


async def test_a_hide_is_mailed_once_even_when_its_row_is_delivered_again(
    api, deps, mailer, make_user, make_skill
):
    admin, owner = await make_user(admin=True), await make_user()
    skill = await make_skill(owner)
    await moderate(api, admin, skill["id"], status="hidden", note="Duplicate listing")
    await mailer.wait_for(owner.email, MODERATED)
    await outbox_settled(deps)
    row = await delivery_row(api, deps, owner, "skill_hidden")
    assert (row.status, row.attempts) == (OutboxStatus.DONE, 1)
    # The broker delivers at least once: the same message again finds the row done.
    assert await run_outbox_row(deps, OUTBOX_HANDLERS, row.id, row.attempts) == "skipped"
    await outbox_settled(deps)
    assert len(mails_to(mailer, owner, MODERATED)) == 1


async def test_a_hide_whose_skill_was_deleted_before_the_worker_ran_is_not_mailed(
    api, deps, mailer, make_user, make_skill
):
    admin, owner = await make_user(admin=True), await make_user()
    skill = await make_skill(owner)
    await moderate(api, admin, skill["id"], status="hidden", note="Off-topic")
    await mailer.wait_for(owner.email, MODERATED)
    await outbox_settled(deps)
    row = await delivery_row(api, deps, owner, "skill_hidden")
    job = OutboxJob(row.id, row.kind, row.key, row.payload, row.attempts)
    deleted = await api.delete(f"/api/skills/{skill['id']}/", token=owner.access)
    assert deleted.status_code == 204, deleted.text
    # The row's work as a worker that got to it only now would run it: nothing to mail.
    await deliver_notification(deps, job)
    assert len(mails_to(mailer, owner, MODERATED)) == 1


# -- an adjusted wallet -----------------------------------------------------------------------


async def test_a_credit_and_a_debit_are_each_mailed_once_with_the_points_and_reason(
    api, deps, mailer, make_user
):
    admin, user = await make_user(admin=True), await make_user(display_name="Lina")
    credited = await adjust(api, admin, user, 25, "Goodwill credit")
    first = await mailer.wait_for(user.email, ADJUSTED)
    assert first.subject == "25 points were added to your wallet"
    assert first.body == (
        "Hello Lina,\n\n"
        "An administrator added 25 points to your wallet.\n"
        "Reason: Goodwill credit\n"
        f"Your balance is now {credited} points.\n\n"
        f"Or open this link: {first.context['link']}\n"
    )
    assert first.context["link"].endswith("/points/transactions")
    debited = await adjust(api, admin, user, -10, "Duplicate bonus")
    assert debited == credited - 10
    second = await mailer.wait_for(user.email, ADJUSTED, count=2)
    assert second.subject == "10 points were taken from your wallet"
    assert "An administrator took 10 points from your wallet.\n" in second.body
    assert "Reason: Duplicate bonus\n" in second.body
    assert f"Your balance is now {debited} points.\n" in second.body
    assert "Duplicate bonus" in second.html
    await outbox_settled(deps)
    assert mails_to(mailer, user, ADJUSTED) == [first, second]
    assert len({first.message_id, second.message_id}) == 2


async def test_an_arabic_wallet_owner_reads_the_adjustment_with_arabic_plurals(
    api, deps, mailer, make_user
):
    admin, user = await make_user(admin=True), await make_user(locale="ar")
    await adjust(api, admin, user, -2, "تصحيح")
    mail = await mailer.wait_for(user.email, ADJUSTED)
    assert mail.locale == "ar"
    assert mail.subject == "خُصمت نقطتان من محفظتك"
    assert "خصم مسؤول نقطتين من محفظتك.\n" in mail.body
    assert "السبب: تصحيح\n" in mail.body
    assert '<html lang="ar" dir="rtl">' in mail.html


async def test_a_user_who_turned_email_off_for_adjustments_gets_none(api, deps, mailer, make_user):
    admin, user = await make_user(admin=True), await make_user()
    await turn_email_off(api, user, "points_adjusted")
    await adjust(api, admin, user, 25, "Goodwill credit")
    await adjust(api, admin, user, -10, "Duplicate bonus")
    await outbox_settled(deps)
    assert mails_to(mailer, user, ADJUSTED) == []
    listed = await api.get("/api/notifications/", token=user.access)
    assert [n["kind"] for n in listed.json()["results"]].count("points_adjusted") == 2


async def test_an_adjustment_is_mailed_once_even_when_its_row_is_delivered_again(
    api, deps, mailer, make_user
):
    admin, user = await make_user(admin=True), await make_user()
    await adjust(api, admin, user, 7, "Event prize")
    await mailer.wait_for(user.email, ADJUSTED)
    await outbox_settled(deps)
    row = await delivery_row(api, deps, user, "points_adjusted")
    assert await run_outbox_row(deps, OUTBOX_HANDLERS, row.id, row.attempts) == "skipped"
    await outbox_settled(deps)
    [mail] = mails_to(mailer, user, ADJUSTED)
    assert mail.subject == "7 points were added to your wallet"
