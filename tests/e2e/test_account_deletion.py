"""People leave, over real HTTP: a deletion is asked for, mailed, shown at sign-in, cancelled or
carried out by the scheduler's job; what is personal goes (from every table and from storage),
the records others share stay whole and name "a deleted user"; administrators do the same,
audited, and reinstate within the grace period only."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

from PIL import Image
from sqlalchemy import String, Text, func, select, text

from skillswap.accounts.deletion import DELETED_USER, erase_account, erase_due_accounts
from skillswap.ledger import SystemAccount
from skillswap.models import AuditEntry, Base, LedgerTransfer, SkillPausedByDeletion, User
from skillswap.points.services import audit_ledger
from tests.factories import (
    balance,
    insert_skill,
    order_room,
    place_order,
    skill_row,
    verify_email,
)
from tests.outbox_support import outbox_settled

DELETE = "/api/auth/account/delete/"
CANCEL = "/api/auth/account/delete/cancel/"
GRACE = timedelta(days=14)


def png_bytes(size: tuple[int, int] = (4, 3)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def carry_out_due_deletions(deps, moved_by: timedelta = GRACE + timedelta(minutes=1)):  # type: ignore[no-untyped-def]
    """Run the scheduler's job as it would run once the grace period is over."""
    with deps.clock.moved(moved_by):
        return await erase_due_accounts(deps, now=deps.clock())


async def test_deletion_is_scheduled_mailed_shown_at_sign_in_and_cancelled(
    api, deps, mailer, make_user
):
    user = await make_user()
    wrong = await api.post(DELETE, token=user.access, json={"password": "not my password!"})
    assert wrong.status_code == 400
    assert "password" in wrong.json()["errors"]

    asked = await api.post(DELETE, token=user.access, json={"password": user.password})
    assert asked.status_code == 202, asked.text
    scheduled = when(asked.json()["deletion_scheduled_for"])
    requested = when(asked.json()["deletion_requested_at"])
    assert scheduled - requested == GRACE
    await outbox_settled(deps)
    mail = mailer.last_to(user.email, "deletion_scheduled")
    assert mail is not None
    assert mail.context["link"].endswith("/account/delete/cancel")
    assert scheduled.strftime("%Y-%m-%d") in mail.body

    # Asked again, the date stays as it was.
    again = await api.post(DELETE, token=user.access, json={"password": user.password})
    assert again.status_code == 202
    assert when(again.json()["deletion_scheduled_for"]) == scheduled

    # Signing in during the grace period says so, and the profile too: the app offers to cancel.
    signed_in = await api.post(
        "/api/auth/login/", json={"email": user.email, "password": user.password}
    )
    assert signed_in.status_code == 200
    assert when(signed_in.json()["user"]["deletion_scheduled_for"]) == scheduled
    profile = await api.get("/api/auth/profile/", token=user.access)
    assert when(profile.json()["deletion_scheduled_for"]) == scheduled

    cancelled = await api.post(CANCEL, token=user.access)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["deletion_scheduled_for"] is None
    report = await carry_out_due_deletions(deps)
    assert user.id not in report.erased
    async with deps.db.read() as session:
        row = await session.get(User, user.id)
    assert row is not None and row.deleted_at is None and row.email == user.email


async def test_open_orders_refuse_deletion_and_list_what_can_be_done(api, deps, make_user):
    buyer, seller = await make_user(), await make_user()
    order = await place_order(api, deps, buyer, seller)
    for who, role, action in ((buyer, "buyer", "cancel"), (seller, "seller", "reject")):
        refused = await api.post(DELETE, token=who.access, json={"password": who.password})
        assert refused.status_code == 409
        problem = refused.json()
        assert problem["code"] == "open_orders"
        assert problem["open_orders"] == [
            {"id": order["id"], "status": "pending", "role": role, "action": action}
        ]
    cancelled = await api.post(
        f"/api/points/orders/{order['id']}/cancel/", token=buyer.access, json={}
    )
    assert cancelled.status_code == 200, cancelled.text
    asked = await api.post(DELETE, token=buyer.access, json={"password": buyer.password})
    assert asked.status_code == 202


async def test_carried_out_deletion_leaves_nothing_personal_and_others_records_whole(
    api, deps, make_user, make_skill
):
    leaving = await make_user(display_name="Zainab Leaving", locale="en")
    other = await make_user(display_name="Omar Staying", locale="ar")
    changed = await api.patch(
        "/api/auth/profile/",
        token=leaving.access,
        json={"bio": "Teaches oud in Alexandria", "phone": "+20 100 555 0199"},
    )
    assert changed.status_code == 200
    skill = await make_skill(leaving)
    uploaded = await api.post(
        f"/api/skills/{skill['id']}/images/",
        token=leaving.access,
        files={"image": ("oud.png", png_bytes(), "image/png")},
    )
    assert uploaded.status_code == 201
    device = await api.post(
        "/api/notifications/devices/",
        token=leaving.access,
        json={"token": "device-token-of-zainab-0123456789", "platform": "android"},
    )
    assert device.status_code == 201
    # An order between them, with chat both ways, then cancelled (nothing is left open).
    room = await order_room(api, deps, other, leaving)
    for who, body in ((leaving, "Salam, see you Tuesday"), (other, "Thanks, see you!")):
        sent = await api.post(
            f"/api/chat/rooms/{room}/send/", token=who.access, json={"body": body}
        )
        assert sent.status_code == 201, sent.text
    order_id = (await api.get(f"/api/chat/rooms/{room}/", token=other.access)).json()["order_id"]
    cancel = await api.post(f"/api/points/orders/{order_id}/cancel/", token=other.access, json={})
    assert cancel.status_code == 200, cancel.text
    await outbox_settled(deps)
    async with deps.db.read() as session:
        image_key = (
            await session.execute(
                text("SELECT storage_key FROM skill_images WHERE skill_id = :id"),
                {"id": skill["id"]},
            )
        ).scalar_one()
    assert await deps.storage.exists(image_key)
    left, _ = await balance(deps, leaving.id)
    assert left > 0

    asked = await api.post(DELETE, token=leaving.access, json={"password": leaving.password})
    assert asked.status_code == 202
    # Not due yet: nothing happens.
    assert leaving.id not in (await erase_due_accounts(deps, now=deps.clock())).erased
    report = await carry_out_due_deletions(deps)
    assert leaving.id in report.erased

    # No personal field left in any table's text.
    personal = [leaving.email, leaving.username, "Zainab Leaving", "Teaches oud", "555 0199"]
    found = await text_columns_containing(deps, personal)
    assert found == [], found
    # The images are gone from storage; the skill from the marketplace.
    assert not await deps.storage.exists(image_key)
    assert (await api.get(f"/api/skills/{skill['id']}/")).status_code == 404
    # The tombstone: no sign-in, no public profile, its wallet emptied into `forfeited`.
    async with deps.db.read() as session:
        tomb = await session.get(User, leaving.id)
        forfeit = await session.scalar(
            select(LedgerTransfer).where(LedgerTransfer.idempotency_key == f"forfeit:{leaving.id}")
        )
    assert tomb is not None
    assert (tomb.username, tomb.email) == (f"deleted-user-{tomb.id}", f"deleted-{tomb.id}@invalid")
    assert tomb.password_hash is None and tomb.google_sub is None and not tomb.is_active
    assert forfeit is not None
    assert (forfeit.amount, forfeit.kind, forfeit.credit_account_id) == (
        left,
        "forfeit",
        SystemAccount.FORFEITED,
    )
    assert await balance(deps, leaving.id) == (0, 0)
    report_ledger = await audit_ledger(deps.db)
    assert report_ledger.ok, report_ledger.violations
    login = await api.post(
        "/api/auth/login/", json={"email": leaving.email, "password": leaving.password}
    )
    assert login.status_code == 401
    assert (await api.get("/api/auth/profile/", token=leaving.access)).status_code == 401
    assert (await api.get(f"/api/users/{leaving.id}/")).status_code == 404

    # The other party's order and chat are whole, and name "a deleted user" in their language.
    deleted_ar = deps.catalogs.get("ar").gettext(DELETED_USER)
    assert deleted_ar != DELETED_USER
    seen = (await api.get(f"/api/points/orders/{order_id}/", token=other.access)).json()
    assert seen["status"] == "cancelled"
    assert seen["seller"]["id"] == leaving.id
    assert (seen["seller"]["display_name"], seen["seller"]["deleted"]) == (deleted_ar, True)
    chat = (await api.get(f"/api/chat/rooms/{room}/", token=other.access)).json()
    assert [m["body"] for m in chat["messages"]] == [
        "Salam, see you Tuesday",
        "Thanks, see you!",
    ]
    gone = next(m for m in chat["members"] if m["id"] == leaving.id)
    assert gone["display_name"] == deleted_ar
    # A second run finds nothing to do and changes nothing.
    assert await erase_account(deps, leaving.id, now=deps.clock())
    assert (await audit_ledger(deps.db)).ok

    # The address is free again, but never earns a second signup bonus.
    response = await api.post(
        "/api/auth/register/",
        json={"email": leaving.email, "username": leaving.username, "password": leaving.password},
    )
    assert response.status_code == 201, response.text
    again = response.json()["user"]["id"]
    await verify_email(api, deps, again)
    assert await balance(deps, again) == (0, 0)


async def text_columns_containing(deps, needles: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
    """`table.column` for every text column of every table holding one of `needles` (the
    tables the search index keeps for itself aside)."""
    hits = []
    async with deps.db.read() as session:
        for table in Base.metadata.sorted_tables:
            for column in table.columns:
                if not isinstance(column.type, (String, Text)) and "JSON" not in repr(column.type):
                    continue
                as_text = func.cast(column, Text) if "JSON" in repr(column.type) else column
                for needle in needles:
                    count = await session.scalar(
                        select(func.count())
                        .select_from(table)
                        .where(func.lower(as_text).contains(needle.lower()))
                    )
                    if count:
                        hits.append(f"{table.name}.{column.name} has {needle!r}")
    return hits


async def test_a_google_only_account_deletes_within_minutes_of_signing_in(api, deps, make_user):
    user = await make_user()
    async with deps.db.uow() as uow:
        row = await uow.session.get(User, user.id)
        assert row is not None
        row.password_hash = None  # as an account made through Google sign-in
        await uow.commit()
    deps.signed_in.forget(user.id)
    with deps.clock.moved(timedelta(minutes=10)):
        stale = await api.post(DELETE, token=user.access, json={})
    assert stale.status_code in (401, 403)
    if stale.status_code == 403:
        assert stale.json()["code"] == "reauthentication_required"
    fresh = await api.post(DELETE, token=user.access, json={})
    assert fresh.status_code == 202, fresh.text


async def test_administrators_delete_with_a_reason_and_reinstate_in_the_grace_period(
    api, deps, make_user
):
    admin, user, nobody = await make_user(admin=True), await make_user(), await make_user()
    path = f"/api/admin/users/{user.id}/delete/"
    # Refused before the body is looked at.
    refused = await api.post(path, token=nobody.access, json={"nonsense": True})
    assert (refused.status_code, refused.json()["code"]) == (403, "admin_only")
    no_reason = await api.post(path, token=admin.access, json={"reason": ""})
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["errors"]
    unknown = await api.post(
        "/api/admin/users/999999999/delete/", token=admin.access, json={"reason": "x"}
    )
    assert unknown.status_code == 404

    deleted = await api.post(path, token=admin.access, json={"reason": "Asked by phone"})
    assert deleted.status_code == 202, deleted.text
    scheduled = deleted.json()["deletion_scheduled_for"]
    assert scheduled is not None
    twice = await api.post(path, token=admin.access, json={"reason": "Again"})
    assert (twice.status_code, twice.json()["code"]) == (409, "deletion_scheduled")

    reinstate = f"/api/admin/users/{user.id}/reinstate/"
    back = await api.post(reinstate, token=admin.access, json={"reason": "Changed their mind"})
    assert back.status_code == 200, back.text
    assert back.json()["deletion_scheduled_for"] is None
    again = await api.post(reinstate, token=admin.access, json={"reason": "Again"})
    assert (again.status_code, again.json()["code"]) == (409, "no_deletion_scheduled")
    async with deps.db.read() as session:
        rows = list(
            await session.scalars(
                select(AuditEntry)
                .where(AuditEntry.target_type == "user", AuditEntry.target_id == user.id)
                .order_by(AuditEntry.id)
            )
        )
    assert [(r.action, r.reason, r.actor_id) for r in rows] == [
        ("user.delete", "Asked by phone", admin.id),
        ("user.reinstate", "Changed their mind", admin.id),
    ]
    assert rows[0].before == {"deletion_scheduled_for": None}
    assert rows[0].after is not None and rows[0].after["deletion_scheduled_for"]

    # Once carried out, there is nothing to reinstate.
    assert (
        await api.post(path, token=admin.access, json={"reason": "For good"})
    ).status_code == 202
    assert user.id in (await carry_out_due_deletions(deps)).erased
    late = await api.post(reinstate, token=admin.access, json={"reason": "Too late"})
    assert (late.status_code, late.json()["code"]) == (409, "account_deleted")
    detail = await api.get(f"/api/admin/users/{user.id}/", token=admin.access)
    assert detail.json()["user"]["deleted_at"] is not None


async def _statuses(deps, skill_ids: list[int]) -> list[str]:  # type: ignore[no-untyped-def]
    return [(await skill_row(deps, skill_id)).status for skill_id in skill_ids]


async def _marks(deps) -> set[int]:  # type: ignore[no-untyped-def]
    async with deps.db.read() as session:
        return set(await session.scalars(select(SkillPausedByDeletion.skill_id)))


async def test_a_scheduled_deletion_pauses_the_active_skills_and_calling_it_off_lists_those_again(
    api, deps, make_user
):
    admin, leaving, buyer = await make_user(admin=True), await make_user(), await make_user()
    listed = [await insert_skill(deps, owner_id=leaving.id) for _ in range(2)]
    own_pause = await insert_skill(deps, owner_id=leaving.id, status="paused")
    hidden = await insert_skill(deps, owner_id=leaving.id, status="hidden")
    skills = [*listed, own_pause, hidden]

    asked = await api.post(DELETE, token=leaving.access, json={"password": leaving.password})
    assert asked.status_code == 202, asked.text
    assert await _statuses(deps, skills) == ["paused", "paused", "paused", "hidden"]
    assert await _marks(deps) >= set(listed) and not await _marks(deps) & {own_pause, hidden}
    # The grace period takes no new orders of theirs.
    ordered = await api.post(
        "/api/points/orders/", token=buyer.access, json={"skill_id": listed[0]}
    )
    assert (ordered.status_code, ordered.json()["code"]) == (409, "skill_paused")

    cancelled = await api.post(CANCEL, token=leaving.access)
    assert cancelled.status_code == 200, cancelled.text
    assert await _statuses(deps, skills) == ["active", "active", "paused", "hidden"]
    assert not await _marks(deps) & set(skills)

    # An administrator's deletion pauses the same way, and reinstating lists them again.
    deleted = await api.post(
        f"/api/admin/users/{leaving.id}/delete/", token=admin.access, json={"reason": "By mail"}
    )
    assert deleted.status_code == 202, deleted.text
    assert await _statuses(deps, skills) == ["paused", "paused", "paused", "hidden"]
    back = await api.post(
        f"/api/admin/users/{leaving.id}/reinstate/", token=admin.access, json={"reason": "Kept"}
    )
    assert back.status_code == 200, back.text
    assert await _statuses(deps, skills) == ["active", "active", "paused", "hidden"]
    ordered = await api.post(
        "/api/points/orders/", token=buyer.access, json={"skill_id": listed[0]}
    )
    assert ordered.status_code == 201, ordered.text

    # Refused for that open order, the request pauses nothing (the transaction rolled back).
    refused = await api.post(DELETE, token=leaving.access, json={"password": leaving.password})
    assert (refused.status_code, refused.json()["code"]) == (409, "open_orders")
    assert await _statuses(deps, skills) == ["active", "active", "paused", "hidden"]
    assert not await _marks(deps) & set(skills)


async def test_erasing_takes_the_paused_skills_down_and_leaves_no_mark(api, deps, make_user):
    leaving = await make_user()
    skill_id = await insert_skill(deps, owner_id=leaving.id)
    asked = await api.post(DELETE, token=leaving.access, json={"password": leaving.password})
    assert asked.status_code == 202
    assert skill_id in await _marks(deps)
    assert leaving.id in (await carry_out_due_deletions(deps)).erased
    assert await _statuses(deps, [skill_id]) == ["deleted"]
    assert skill_id not in await _marks(deps)


async def test_an_order_bought_in_the_grace_period_holds_the_deletion_back_until_it_finishes(
    api, deps, make_user
):
    leaving, seller, later = await make_user(), await make_user(), await make_user()
    asked = await api.post(DELETE, token=leaving.access, json={"password": leaving.password})
    assert asked.status_code == 202
    order = await place_order(api, deps, leaving, seller)  # as a buyer, nothing refuses it
    with deps.clock.moved(timedelta(hours=1)):
        later_asked = await api.post(DELETE, token=later.access, json={"password": later.password})
    assert later_asked.status_code == 202

    # Held back, the first is tried on every run, and never takes a later one's place.
    reports = []
    for _ in range(2):
        with deps.clock.moved(GRACE + timedelta(hours=2)):
            reports.append(await erase_due_accounts(deps, now=deps.clock(), limit=1))
    assert [(leaving.id in r.waiting, leaving.id in r.erased) for r in reports] == [
        (True, False)
    ] * 2
    assert later.id in reports[0].erased
    async with deps.db.read() as session:
        row = await session.get(User, leaving.id)
    assert row is not None and row.deleted_at is None and row.email == leaving.email

    cancelled = await api.post(
        f"/api/points/orders/{order['id']}/cancel/", token=leaving.access, json={}
    )
    assert cancelled.status_code == 200, cancelled.text
    report = await carry_out_due_deletions(deps, GRACE + timedelta(hours=2))
    assert leaving.id in report.erased and leaving.id not in report.waiting
    assert (await audit_ledger(deps.db)).ok


async def test_delete_on_the_profile_is_the_same_request_as_account_delete(api, deps, make_user):
    user, seller = await make_user(), await make_user()
    wrong = await api.delete(
        "/api/auth/profile/", token=user.access, json={"password": "not my password!"}
    )
    assert wrong.status_code == 400 and set(wrong.json()["errors"]) == {"password"}
    unknown = await api.delete("/api/auth/profile/", token=user.access, json={"pasword": "x"})
    assert unknown.status_code == 400 and "pasword" in unknown.json()["errors"]
    order = await place_order(api, deps, user, seller)
    refused = await api.delete(
        "/api/auth/profile/", token=user.access, json={"password": user.password}
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "open_orders")
    assert refused.json()["open_orders"] == [
        {"id": order["id"], "status": "pending", "role": "buyer", "action": "cancel"}
    ]
    await api.post(f"/api/points/orders/{order['id']}/cancel/", token=user.access, json={})
    asked = await api.delete(
        "/api/auth/profile/", token=user.access, json={"password": user.password}
    )
    assert asked.status_code == 202, asked.text
    assert set(asked.json()) == {"deletion_requested_at", "deletion_scheduled_for"}
    scheduled = when(asked.json()["deletion_scheduled_for"])
    assert scheduled - when(asked.json()["deletion_requested_at"]) == GRACE
    # Asked again either way, the date stays.
    again = await api.post(DELETE, token=user.access, json={"password": user.password})
    assert when(again.json()["deletion_scheduled_for"]) == scheduled
    signed_out = await api.delete("/api/auth/profile/", json={"password": user.password})
    assert signed_out.status_code == 401

    schema = (await api.get("/api/schema/")).json()
    declared = schema["paths"]["/api/auth/profile/"]["delete"]
    same = schema["paths"]["/api/auth/account/delete/"]["post"]
    assert declared["operationId"] == "deleteProfile"
    assert declared["requestBody"] == same["requestBody"]
    assert set(declared["responses"]) == set(same["responses"])
    assert "202" in declared["responses"]
