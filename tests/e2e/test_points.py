"""Points endpoints over real HTTP: balance, statement, packages, and their administration."""

from __future__ import annotations

from tests.factories import insert_skill

PACKAGES = "/api/admin/packages/"


async def test_balance_starts_with_the_signup_bonus(api, make_user):
    user = await make_user()
    response = await api.get("/api/points/balance/", token=user.access)
    assert response.status_code == 200
    assert response.json() == {"balance": 100, "held": 0, "available": 100}


async def test_statement_is_newest_first_signed_translated_and_paginated(api, deps, make_user):
    buyer, seller = await make_user(locale="ar"), await make_user()
    skill_id = await insert_skill(deps, owner_id=seller.id, price=15)
    for _ in range(2):
        order_id = (
            await api.post("/api/points/orders/", token=buyer.access, json={"skill_id": skill_id})
        ).json()["id"]
        for user, action in ((seller, "accept"), (seller, "deliver"), (buyer, "complete")):
            await api.post(f"/api/points/orders/{order_id}/{action}/", token=user.access, json={})
    page = (await api.get("/api/points/transactions/?page_size=2", token=buyer.access)).json()
    assert page["count"] == 3
    newest, older = page["results"]
    assert (newest["amount"], newest["direction"], newest["kind"]) == (
        -15,
        "debit",
        "order_payment",
    )
    assert newest["order_id"] == order_id and newest["balance_after"] == 70
    assert older["balance_after"] == 85
    assert newest["description"] == f"الدفع مقابل الطلب رقم {order_id}"
    assert page["next"] is not None
    last = (await api.get(page["next"], token=buyer.access)).json()
    (bonus,) = last["results"]
    assert (bonus["amount"], bonus["kind"], bonus["balance_after"]) == (100, "signup_bonus", 100)
    assert bonus["description"] == "مكافأة التسجيل"
    assert last["previous"] is not None and last["next"] is None
    english = (await api.get("/api/points/transactions/", token=seller.access)).json()
    assert english["results"][0]["description"] == f"Earnings from order #{order_id}"


async def test_admins_manage_packages_and_everyone_sees_those_on_sale(api, make_user):
    admin, user = await make_user(admin=True), await make_user()
    body = {
        "name_en": "Starter",
        "name_ar": "باقة البداية",
        "points": 100,
        "price_minor": 499,
        "currency": "USD",
        "sort_order": -100,
    }
    refused = await api.post(PACKAGES, token=user.access, json=body)
    assert (refused.status_code, refused.json()["code"]) == (403, "admin_only")
    # Refused before the body is read: a member learns nothing of its rules.
    invalid = await api.post(PACKAGES, token=user.access, json={"points": "many"})
    assert (invalid.status_code, invalid.json()["code"]) == (403, "admin_only")
    assert (await api.get(PACKAGES, token=user.access)).status_code == 403
    created = await api.post(PACKAGES, token=admin.access, json=body)
    assert created.status_code == 201, created.text
    package = created.json()
    assert (package["price"], package["is_active"]) == ("4.99", True)
    kuwaiti = await api.post(
        PACKAGES,
        token=admin.access,
        json={**body, "name_en": "Gulf", "price_minor": 1250, "currency": "KWD"},
    )
    assert kuwaiti.json()["price"] == "1.250"

    shop = (await api.get("/api/points/packages/", headers={"Accept-Language": "ar"})).json()
    listed = next(p for p in shop["results"] if p["id"] == package["id"])
    assert listed["name"] == "باقة البداية" and listed["name_en"] == "Starter"
    assert "is_active" not in listed

    hidden = await api.patch(
        f"{PACKAGES}{package['id']}/", token=admin.access, json={"is_active": False}
    )
    assert hidden.json()["is_active"] is False
    shop = (await api.get("/api/points/packages/")).json()
    assert package["id"] not in {p["id"] for p in shop["results"]}
    everything = (await api.get(PACKAGES + "?page_size=100", token=admin.access)).json()
    assert package["id"] in {p["id"] for p in everything["results"]}

    replaced = await api.put(
        f"{PACKAGES}{package['id']}/", token=admin.access, json={**body, "points": 120}
    )
    assert replaced.json()["points"] == 120 and replaced.json()["is_active"] is True
    assert (await api.get(f"{PACKAGES}{package['id']}/", token=admin.access)).json()[
        "points"
    ] == 120
    assert (await api.delete(f"{PACKAGES}{package['id']}/", token=user.access)).status_code == 403
    assert (await api.delete(f"{PACKAGES}{package['id']}/", token=admin.access)).status_code == 204
    gone = await api.get(f"{PACKAGES}{package['id']}/", token=admin.access)
    assert (gone.status_code, gone.json()["code"]) == (404, "package_not_found")


async def test_package_fields_are_validated(api, make_user):
    admin = await make_user(admin=True)
    response = await api.post(
        PACKAGES,
        token=admin.access,
        json={"name_en": "", "points": 0, "price_minor": -1, "currency": "usd", "extra": 1},
    )
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {
        "name_en",
        "name_ar",
        "points",
        "price_minor",
        "currency",
        "extra",
    }
