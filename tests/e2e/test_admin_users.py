"""Administrators and users over real HTTP: find, see, ban and unban, verify, admin rights."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from skillswap.models import AuditEntry, Notification, Order, OrderTransition
from skillswap.points.services import audit_ledger
from tests.chat_support import ws_connect
from tests.factories import balance, insert_skill, unique_name

ORDERS = "/api/points/orders/"


def users_path(user_id: int | None = None) -> str:
    return "/api/admin/users/" if user_id is None else f"/api/admin/users/{user_id}/"


async def audit_rows(deps, target_type: str, target_id: int) -> list[AuditEntry]:
    async with deps.db.read() as session:
        rows = await session.scalars(
            select(AuditEntry)
            .where(AuditEntry.target_type == target_type, AuditEntry.target_id == target_id)
            .order_by(AuditEntry.id)
        )
        return list(rows)


async def order_row(deps, order_id: int) -> Order:
    async with deps.db.read() as session:
        order = await session.get(Order, order_id)
    assert order is not None
    return order


async def steps(deps, order_id: int) -> list[tuple[str, str | None, str, int | None]]:
    async with deps.db.read() as session:
        rows = await session.scalars(
            select(OrderTransition)
            .where(OrderTransition.order_id == order_id)
            .order_by(OrderTransition.id)
        )
        return [(s.action, s.from_status, s.to_status, s.actor_id) for s in rows]


async def kinds_of_notifications(deps, user_id: int) -> list[tuple[str, int | None]]:
    async with deps.db.read() as session:
        rows = await session.scalars(
            select(Notification).where(Notification.user_id == user_id).order_by(Notification.id)
        )
        return [(n.kind, (n.payload or {}).get("order_id")) for n in rows]


async def order_of(api, deps, buyer, seller, *, accept: bool = False) -> dict:
    skill_id = await insert_skill(deps, owner_id=seller.id, price=5)
    placed = await api.post(ORDERS, token=buyer.access, json={"skill_id": skill_id})
    assert placed.status_code == 201, placed.text
    order = placed.json()
    if accept:
        accepted = await api.post(f"{ORDERS}{order['id']}/accept/", token=seller.access)
        assert accepted.status_code == 200, accepted.text
        order = accepted.json()
    return order


async def ban(api, admin, user, reason="Selling stolen accounts"):
    response = await api.patch(
        users_path(user.id), token=admin.access, json={"is_active": False, "reason": reason}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def unban(api, admin, user):
    response = await api.patch(
        users_path(user.id), token=admin.access, json={"is_active": True, "reason": "appeal"}
    )
    assert response.status_code == 200, response.text
    return response.json()


# -- who may ---------------------------------------------------------------------------------------


async def test_only_administrators_reach_the_users_api_and_before_any_validation(api, make_user):
    member, other = await make_user(), await make_user()
    for method, path, kwargs in (
        ("GET", users_path() + "?status=lost&sort=nowhere", {}),
        ("GET", users_path(other.id), {}),
        ("GET", users_path(987_654_321), {}),
        ("PATCH", users_path(other.id), {"json": {"is_active": "no", "unknown": 1}}),
        ("PATCH", users_path(other.id), {"content": b"{not json"}),
    ):
        refused = await api.request(method, path, token=member.access, **kwargs)
        assert (refused.status_code, refused.json()["code"]) == (403, "admin_only"), (method, path)
        anonymous = await api.request(method, path, **kwargs)
        assert anonymous.status_code == 401


# -- finding and seeing ----------------------------------------------------------------------------


async def test_administrators_search_users_in_any_case_and_filter_them(api, make_user):
    admin = await make_user(admin=True)
    tag = unique_name("find")
    by_name = await make_user(display_name=f"Mona {tag.upper()}")
    by_email = await make_user(email=f"{tag}.mail@example.com")
    by_username = await make_user(username=f"{tag}u")
    await make_user()  # not found by the tag
    found = await api.get(users_path() + f"?search={tag.upper()}&sort=oldest", token=admin.access)
    assert found.status_code == 200, found.text
    page = found.json()
    assert [u["id"] for u in page["results"]] == [by_name.id, by_email.id, by_username.id]
    assert page["count"] == 3 and page["next"] is None and page["previous"] is None
    first = page["results"][0]
    assert first["display_name"] == f"Mona {tag.upper()}" and first["email"] == by_name.email
    assert first["is_active"] is True and first["is_verified"] is False
    assert first["banned_at"] is None and first["is_admin"] is False

    newest = (await api.get(users_path() + f"?search={tag}", token=admin.access)).json()
    assert [u["id"] for u in newest["results"]] == [by_username.id, by_email.id, by_name.id]
    wildcard = (await api.get(users_path() + "?search=%25_%25", token=admin.access)).json()
    assert all(
        "%_%" in (u["email"] + u["username"] + u["display_name"]) for u in wildcard["results"]
    )

    await ban(api, admin, by_email)
    await api.patch(users_path(by_username.id), token=admin.access, json={"is_verified": True})
    banned = (
        await api.get(users_path() + f"?search={tag}&status=banned", token=admin.access)
    ).json()
    assert [u["id"] for u in banned["results"]] == [by_email.id]
    assert banned["results"][0]["is_active"] is False and banned["results"][0]["banned_at"]
    active = (
        await api.get(users_path() + f"?search={tag}&status=active", token=admin.access)
    ).json()
    assert {u["id"] for u in active["results"]} == {by_name.id, by_username.id}
    verified = (
        await api.get(users_path() + f"?search={tag}&is_verified=true", token=admin.access)
    ).json()
    assert [u["id"] for u in verified["results"]] == [by_username.id]
    unverified = (
        await api.get(users_path() + f"?search={tag}&is_verified=false", token=admin.access)
    ).json()
    assert {u["id"] for u in unverified["results"]} == {by_name.id, by_email.id}
    by_address = (
        await api.get(users_path() + f"?search={tag}&sort=email&page_size=1", token=admin.access)
    ).json()
    assert by_address["count"] == 3 and len(by_address["results"]) == 1
    assert by_address["next"] is not None

    for bad in ("status=lost", "is_verified=perhaps", "sort=random", "search=", "colour=red"):
        refused = await api.get(users_path() + f"?{bad}", token=admin.access)
        assert refused.status_code == 400, bad
        assert bad.split("=")[0] in refused.json()["errors"], bad


async def test_a_users_page_shows_profile_wallet_orders_payments_and_reports(api, deps, make_user):
    admin, buyer, seller = await make_user(admin=True), await make_user(), await make_user()
    bought = await order_of(api, deps, buyer, seller)
    sold = await order_of(api, deps, seller, buyer)
    response = await api.get(users_path(buyer.id), token=admin.access)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["user"]["id"] == buyer.id and page["user"]["email"] == buyer.email
    assert page["user"]["email_verified"] is True and page["user"]["is_admin"] is False
    held_balance, held = await balance(deps, buyer.id)
    assert page["wallet"] == {
        "balance": held_balance,
        "held": held,
        "available": held_balance - held,
    }
    assert held == 5
    assert [o["id"] for o in page["orders_as_buyer"]] == [bought["id"]]
    assert [o["id"] for o in page["orders_as_seller"]] == [sold["id"]]
    assert page["orders_as_buyer"][0]["status"] == "pending"
    assert page["orders_as_buyer"][0]["price_points"] == 5
    assert page["payments"] == [] and page["reports"] == []

    missing = await api.get(users_path(987_654_321), token=admin.access)
    assert (missing.status_code, missing.json()["code"]) == (404, "user_not_found")
    beyond = await api.get(users_path(10**30), token=admin.access)
    assert beyond.status_code == 404


# -- banning ---------------------------------------------------------------------------------------


async def test_a_ban_ends_sessions_closes_sockets_hides_skills_pauses_orders_and_mails(
    api, deps, server, mailer, make_user, make_skill
):
    admin, seller, buyer = await make_user(admin=True), await make_user(), await make_user()
    listed = await make_skill(seller, title_en=f"Banjo {unique_name('b')}")
    pending = await order_of(api, deps, buyer, seller)
    accepted = await order_of(api, deps, buyer, seller, accept=True)
    bought = await order_of(api, deps, seller, buyer)  # the banned user as the buyer
    socket = await ws_connect(server, seller.access)
    other_socket = await ws_connect(server, buyer.access)
    assert (await api.get(f"/api/skills/{listed['id']}/")).status_code == 200  # cached now
    search = f"/api/skills/?search={listed['title_en'].split()[1]}"
    assert [s["id"] for s in (await api.get(search)).json()["results"]] == [listed["id"]]

    banned = await ban(api, admin, seller, reason="Selling stolen accounts")
    assert banned["is_active"] is False and banned["banned_at"] is not None

    # Every session ends at once: the access token, the refresh token, the open socket.
    assert (await api.get("/api/auth/profile/", token=seller.access)).status_code == 401
    refreshed = await api.post("/api/auth/refresh/", json={"refresh": seller.refresh})
    assert refreshed.status_code == 401
    assert await socket.closed() == 4003
    login = await api.post(
        "/api/auth/login/", json={"email": seller.email, "password": seller.password}
    )
    assert login.status_code == 401
    assert (await api.get("/api/auth/profile/", token=buyer.access)).status_code == 200
    other_socket.close()

    # The skills leave the marketplace (the cached detail too).
    assert (await api.get(f"/api/skills/{listed['id']}/")).status_code == 404
    assert (await api.get(search)).json()["results"] == []
    assert (await api.get(f"/api/skills/?owner={seller.id}")).json()["results"] == []

    # The running orders, on both sides, wait for an administrator.
    for order in (pending, accepted, bought):
        row = await order_row(deps, order["id"])
        assert (row.status, row.deadline_at) == ("paused", None)
    assert (await steps(deps, pending["id"]))[-1] == ("pause", "pending", "paused", admin.id)
    assert (await steps(deps, accepted["id"]))[-1] == ("pause", "accepted", "paused", admin.id)
    assert (await steps(deps, bought["id"]))[-1] == ("pause", "pending", "paused", admin.id)
    told = await kinds_of_notifications(deps, buyer.id)
    for order in (pending, accepted, bought):
        assert ("order_paused", order["id"]) in told
    paused_mail = await mailer.wait_for(buyer.email, "order_transitioned", count=1)
    assert "paused" in paused_mail.subject

    # The other side can do nothing to a paused order.
    for path in (f"{ORDERS}{pending['id']}/cancel/", f"{ORDERS}{accepted['id']}/dispute/"):
        refused = await api.post(path, token=buyer.access)
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "order_paused"
        assert refused.json()["allowed_actions"] == []
    seen = (await api.get(f"{ORDERS}{pending['id']}/", token=buyer.access)).json()
    assert seen["status"] == "paused" and seen["allowed_actions"] == []

    # The banned user hears why, by mail.
    mail = await mailer.wait_for(seller.email, "account_suspended")
    assert "suspended" in mail.subject
    assert "Reason: Selling stolen accounts" in mail.body

    # One audit row: who, what, the reason, the orders paused.
    rows = await audit_rows(deps, "user", seller.id)
    assert [(r.action, r.actor_id, r.reason) for r in rows] == [
        ("user.ban", admin.id, "Selling stolen accounts")
    ]
    assert rows[0].before == {"is_active": True, "banned_at": None}
    assert rows[0].after["is_active"] is False
    assert rows[0].after["paused_orders"] == sorted([pending["id"], accepted["id"], bought["id"]])
    assert rows[0].request_id
    assert (await audit_ledger(deps.db)).ok


async def test_a_ban_needs_a_reason_and_at_least_one_field(api, make_user):
    admin, member = await make_user(admin=True), await make_user()
    for body, field in (
        ({"is_active": False}, "reason"),
        ({"is_active": False, "reason": "   "}, "reason"),
        ({}, "is_active"),
        ({"reason": "nothing to do"}, "is_active"),
        ({"is_active": "no", "reason": "x"}, "is_active"),
        ({"is_admin": True, "colour": "red"}, "colour"),
    ):
        refused = await api.patch(users_path(member.id), token=admin.access, json=body)
        assert refused.status_code == 400, (body, refused.text)
        assert field in refused.json()["errors"], body
    missing = await api.patch(
        users_path(987_654_321), token=admin.access, json={"is_verified": True}
    )
    assert (missing.status_code, missing.json()["code"]) == (404, "user_not_found")
    assert (await api.get("/api/auth/profile/", token=member.access)).status_code == 200


async def test_an_administrator_resolves_a_paused_order_and_the_unban_leaves_it(
    api, deps, make_user
):
    admin, seller, buyer = await make_user(admin=True), await make_user(), await make_user()
    order = await order_of(api, deps, buyer, seller, accept=True)
    buyer_before, _ = await balance(deps, buyer.id)
    seller_before, _ = await balance(deps, seller.id)
    await ban(api, admin, seller)
    resolved = await api.post(
        f"{ORDERS}{order['id']}/resolve/",
        token=admin.access,
        json={"resolution": "split", "buyer_points": 2, "note": "half the lessons were given"},
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "resolved"
    assert await balance(deps, buyer.id) == (buyer_before - 3, 0)
    seller_after, _ = await balance(deps, seller.id)
    fee = resolved.json()["settlement"]["fee_points"]
    assert seller_after == seller_before + 3 - fee
    rows = await audit_rows(deps, "order", order["id"])
    assert [(r.action, r.actor_id, r.reason) for r in rows] == [
        ("order.resolve", admin.id, "half the lessons were given")
    ]
    assert rows[0].before == {"status": "paused"}
    assert rows[0].after == {
        "status": "resolved",
        "resolution": "split",
        "seller_points": 3 - fee,
        "fee_points": fee,
        "refunded_points": 2,
    }
    await unban(api, admin, seller)
    assert (await order_row(deps, order["id"])).status == "resolved"
    assert (await audit_ledger(deps.db)).ok


async def test_resolving_a_dispute_leaves_an_audit_row(api, deps, make_user):
    admin, seller, buyer = await make_user(admin=True), await make_user(), await make_user()
    order = await order_of(api, deps, buyer, seller, accept=True)
    disputed = await api.post(f"{ORDERS}{order['id']}/dispute/", token=buyer.access)
    assert disputed.status_code == 200, disputed.text
    resolved = await api.post(
        f"{ORDERS}{order['id']}/resolve/", token=admin.access, json={"resolution": "refund"}
    )
    assert resolved.status_code == 200, resolved.text
    rows = await audit_rows(deps, "order", order["id"])
    assert [(r.action, r.before["status"], r.after["resolution"]) for r in rows] == [
        ("order.resolve", "disputed", "refund")
    ]
    assert rows[0].after["refunded_points"] == 5


async def test_an_unban_resumes_the_orders_with_fresh_deadlines_and_shows_the_skills(
    api, deps, make_user, make_skill
):
    admin, seller, buyer = await make_user(admin=True), await make_user(), await make_user()
    listed = await make_skill(seller)
    pending = await order_of(api, deps, buyer, seller)
    accepted = await order_of(api, deps, buyer, seller, accept=True)
    await ban(api, admin, seller)
    assert (await api.get(f"/api/skills/{listed['id']}/")).status_code == 404

    before = deps.clock()
    lifted = await unban(api, admin, seller)
    assert lifted["is_active"] is True and lifted["banned_at"] is None
    settings = deps.settings
    for order, status, seconds in (
        (pending, "pending", settings.order_accept_timeout_seconds),
        (accepted, "accepted", settings.order_delivery_timeout_seconds),
    ):
        row = await order_row(deps, order["id"])
        assert row.status == status
        assert row.deadline_at is not None
        assert before + timedelta(seconds=seconds) <= row.deadline_at
        assert row.deadline_at <= deps.clock() + timedelta(seconds=seconds)
        assert (await steps(deps, order["id"]))[-1] == ("resume", "paused", status, admin.id)
        assert ("order_resumed", order["id"]) in await kinds_of_notifications(deps, buyer.id)
    assert (await api.get(f"/api/skills/{listed['id']}/")).status_code == 200
    shown = (await api.get(f"/api/skills/?owner={seller.id}")).json()["results"]
    assert listed["id"] in [s["id"] for s in shown]
    # The seller signs in again and goes on.
    login = await api.post(
        "/api/auth/login/", json={"email": seller.email, "password": seller.password}
    )
    assert login.status_code == 200, login.text
    delivered = await api.post(f"{ORDERS}{accepted['id']}/deliver/", token=login.json()["access"])
    assert delivered.status_code == 200, delivered.text
    rows = await audit_rows(deps, "user", seller.id)
    assert [r.action for r in rows] == ["user.ban", "user.unban"]
    assert rows[1].after == {
        "is_active": True,
        "banned_at": None,
        "resumed_orders": [pending["id"], accepted["id"]],
    }
    assert rows[1].reason == "appeal"
    assert (await audit_ledger(deps.db)).ok


async def test_an_order_between_two_banned_people_resumes_once_both_are_back(api, deps, make_user):
    admin, seller, buyer = await make_user(admin=True), await make_user(), await make_user()
    order = await order_of(api, deps, buyer, seller)
    await ban(api, admin, seller)
    second = await ban(api, admin, buyer)
    assert second["is_active"] is False
    assert [s[0] for s in await steps(deps, order["id"])] == ["place", "pause"]
    await unban(api, admin, seller)
    assert (await order_row(deps, order["id"])).status == "paused"
    await unban(api, admin, buyer)
    assert (await order_row(deps, order["id"])).status == "pending"
    assert [s[0] for s in await steps(deps, order["id"])] == ["place", "pause", "resume"]


async def test_banning_twice_changes_nothing_the_second_time(api, deps, make_user):
    admin, member = await make_user(admin=True), await make_user()
    await ban(api, admin, member)
    again = await ban(api, admin, member, reason="still bad")
    assert again["is_active"] is False
    assert [r.action for r in await audit_rows(deps, "user", member.id)] == ["user.ban"]


# -- the administrator's own account, and the last one ---------------------------------------------


async def test_an_administrator_cannot_ban_themselves_or_take_their_own_rights(api, make_user):
    admin, _other_admin = await make_user(admin=True), await make_user(admin=True)
    for body in ({"is_active": False, "reason": "testing"}, {"is_admin": False}):
        refused = await api.patch(users_path(admin.id), token=admin.access, json=body)
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "own_account"
    assert (await api.get("/api/auth/profile/", token=admin.access)).json()["is_admin"] is True
    verified = await api.patch(users_path(admin.id), token=admin.access, json={"is_verified": True})
    assert verified.status_code == 200 and verified.json()["is_verified"] is True


async def test_the_last_active_administrator_keeps_their_rights(own_app):
    admin = await own_app.user(admin=True)
    alone = await own_app.api.patch(
        users_path(admin.id), token=admin.access, json={"is_admin": False}
    )
    assert (alone.status_code, alone.json()["code"]) == (409, "last_admin")
    second = await own_app.user(admin=True)
    revoked = await own_app.api.patch(
        users_path(second.id), token=admin.access, json={"is_admin": False, "reason": "left"}
    )
    assert revoked.status_code == 200 and revoked.json()["is_admin"] is False
    # Their sessions end, so that no node acts on the old rights from a cached copy.
    assert (await own_app.api.get(users_path(), token=second.access)).status_code == 401
    again = await own_app.api.patch(
        users_path(admin.id), token=admin.access, json={"is_admin": False}
    )
    assert (again.status_code, again.json()["code"]) == (409, "last_admin")
    rows = await audit_rows(own_app.deps, "user", second.id)
    assert [(r.action, r.before, r.after, r.reason) for r in rows] == [
        ("user.revoke_admin", {"is_admin": True}, {"is_admin": False}, "left")
    ]


async def test_a_granted_administrator_can_administer(api, deps, make_user):
    admin, member = await make_user(admin=True), await make_user()
    granted = await api.patch(users_path(member.id), token=admin.access, json={"is_admin": True})
    assert granted.status_code == 200 and granted.json()["is_admin"] is True
    assert (await api.get(users_path(), token=member.access)).status_code == 200
    assert [r.action for r in await audit_rows(deps, "user", member.id)] == ["user.grant_admin"]


# -- the trust badge -------------------------------------------------------------------------------


async def test_the_trust_badge_shows_on_the_profile_and_on_the_owners_skills(
    api, deps, make_user, make_skill
):
    admin, owner = await make_user(admin=True), await make_user()
    listed = await make_skill(owner)
    assert (await api.get(f"/api/users/{owner.id}/")).json()["is_verified"] is False
    assert (await api.get(f"/api/skills/{listed['id']}/")).json()["owner"]["is_verified"] is False
    verified = await api.patch(
        users_path(owner.id), token=admin.access, json={"is_verified": True, "reason": "ID seen"}
    )
    assert verified.status_code == 200 and verified.json()["is_verified"] is True
    assert (await api.get(f"/api/users/{owner.id}/")).json()["is_verified"] is True
    # The cached anonymous answers change at once.
    assert (await api.get(f"/api/skills/{listed['id']}/")).json()["owner"]["is_verified"] is True
    listed_page = (await api.get(f"/api/skills/?owner={owner.id}")).json()
    assert listed_page["results"][0]["owner"]["is_verified"] is True
    await api.patch(users_path(owner.id), token=admin.access, json={"is_verified": False})
    assert (await api.get(f"/api/users/{owner.id}/")).json()["is_verified"] is False
    rows = await audit_rows(deps, "user", owner.id)
    assert [(r.action, r.after, r.reason) for r in rows] == [
        ("user.verify", {"is_verified": True}, "ID seen"),
        ("user.unverify", {"is_verified": False}, ""),
    ]


async def test_a_suspension_mail_is_in_the_users_language(api, mailer, make_user):
    admin, member = await make_user(admin=True), await make_user(locale="ar")
    await ban(api, admin, member, reason="احتيال")
    mail = await mailer.wait_for(member.email, "account_suspended")
    assert mail.locale == "ar"
    assert "احتيال" in mail.body
    assert "suspended" not in mail.subject
