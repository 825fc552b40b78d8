"""The audit trail over real HTTP: each administrator action on categories, packages and
refunds leaves exactly one row (who, what, before and after, why, the request id), listed at
/api/admin/audit/ to administrators only, filtered by actor, target and action."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import Api
from tests.factories import TestUser
from tests.payments_support import Shop, stripe_shop


async def _trail(api: Api, admin: TestUser, query: str) -> list[dict[str, Any]]:
    response = await api.get(f"/api/admin/audit/?{query}&page_size=100", token=admin.access)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["count"] == len(page["results"])
    results: list[dict[str, Any]] = page["results"]
    return results


async def test_the_trail_is_for_administrators_and_refuses_them_first(api: Api, make_user):
    user = await make_user()
    for query in ("", "?target_type=planet", "?actor=abc", "?unknown=1"):
        refused = await api.get(f"/api/admin/audit/{query}", token=user.access)
        assert refused.status_code == 403, (query, refused.text)
        assert refused.json()["code"] == "admin_only"
    assert (await api.get("/api/admin/audit/")).status_code == 401
    admin = await make_user(admin=True)
    bad = await api.get("/api/admin/audit/?target_type=planet&actor=0", token=admin.access)
    assert bad.status_code == 400
    assert set(bad.json()["errors"]) == {"target_type", "actor"}


async def test_each_category_action_leaves_one_row_with_what_changed(api: Api, make_user):
    admin = await make_user(admin=True)
    created = await api.post(
        "/api/admin/categories/",
        token=admin.access,
        json={"slug": f"audited-{admin.id}", "name_en": "Audited", "name_ar": "مدقق"},
    )
    assert created.status_code == 201, created.text
    category = created.json()
    target = f"target_type=category&target_id={category['id']}"
    [row] = await _trail(api, admin, target)
    assert (row["action"], row["actor_id"], row["before"]) == ("category.create", admin.id, None)
    assert row["after"] == {
        "slug": f"audited-{admin.id}",
        "name_en": "Audited",
        "name_ar": "مدقق",
        "icon": "",
        "parent_id": None,
        "position": category["position"],
        "is_active": True,
    }
    assert row["request_id"] == created.headers["X-Request-ID"]

    renamed = await api.patch(
        f"/api/admin/categories/{category['id']}/",
        token=admin.access,
        json={"name_en": "Audited twice", "icon": ""},
    )
    assert renamed.status_code == 200, renamed.text
    removed = await api.delete(f"/api/admin/categories/{category['id']}/", token=admin.access)
    assert removed.status_code == 200, removed.text
    deleted, updated, _ = await _trail(api, admin, target)  # newest first
    assert (updated["action"], updated["before"], updated["after"]) == (
        "category.update",
        {"name_en": "Audited"},
        {"name_en": "Audited twice"},
    )
    assert (deleted["action"], deleted["before"], deleted["after"]) == (
        "category.delete",
        {"is_active": True},
        {"is_active": False},
    )
    assert deleted["request_id"] == removed.headers["X-Request-ID"]
    only_deletes = await _trail(api, admin, f"{target}&action=category.delete")
    assert [r["id"] for r in only_deletes] == [deleted["id"]]
    mine = await _trail(api, admin, f"actor={admin.id}")
    assert [r["id"] for r in mine] == [deleted["id"], updated["id"], mine[-1]["id"]]


async def test_a_refused_category_change_leaves_no_row(api: Api, make_user, make_category):
    admin = await make_user(admin=True)
    first, second = await make_category(), await make_category()
    taken = await api.patch(
        f"/api/admin/categories/{second['id']}/",
        token=admin.access,
        json={"slug": first["slug"]},
    )
    assert taken.status_code == 409, taken.text
    rows = await _trail(api, admin, f"target_type=category&target_id={second['id']}")
    assert [r["action"] for r in rows] == ["category.create"]


async def test_reordering_categories_is_one_row_naming_both_orders(api: Api, make_user):
    admin = await make_user(admin=True)
    parent = await api.post(
        "/api/admin/categories/",
        token=admin.access,
        json={"slug": f"parent-{admin.id}", "name_en": "Parent", "name_ar": "أصل"},
    )
    kids = []
    for n in (1, 2):
        kid = await api.post(
            "/api/admin/categories/",
            token=admin.access,
            json={
                "slug": f"kid{n}-{admin.id}",
                "name_en": f"Kid {n}",
                "name_ar": f"فرع {n}",
                "parent_id": parent.json()["id"],
            },
        )
        kids.append(kid.json()["id"])
    reordered = await api.post(
        "/api/admin/categories/reorder/", token=admin.access, json={"ids": kids[::-1]}
    )
    assert reordered.status_code == 200, reordered.text
    [row] = await _trail(api, admin, f"actor={admin.id}&action=category.reorder")
    assert (row["target_id"], row["before"], row["after"]) == (
        kids[1],
        {"ids": kids},
        {"ids": kids[::-1]},
    )


async def test_each_package_action_leaves_one_row_with_its_prices(api: Api, make_user):
    admin = await make_user(admin=True)
    created = await api.post(
        "/api/admin/packages/",
        token=admin.access,
        json={
            "name_en": "Audited pack",
            "name_ar": "حزمة",
            "points": 100,
            "price_minor": 499,
            "currency": "USD",
            "prices": [{"currency": "EGP", "amount_minor": 25000}],
        },
    )
    assert created.status_code == 201, created.text
    package_id = created.json()["id"]
    changed = await api.patch(
        f"/api/admin/packages/{package_id}/",
        token=admin.access,
        json={"points": 120, "prices": [{"currency": "EGP", "amount_minor": 26000}]},
    )
    assert changed.status_code == 200, changed.text
    gone = await api.delete(f"/api/admin/packages/{package_id}/", token=admin.access)
    assert gone.status_code == 204, gone.text
    deleted, updated, made = await _trail(api, admin, f"target_type=package&target_id={package_id}")
    assert (made["action"], made["before"]) == ("package.create", None)
    assert made["after"] == {
        "name_en": "Audited pack",
        "name_ar": "حزمة",
        "points": 100,
        "price_minor": 499,
        "currency": "USD",
        "is_active": True,
        "sort_order": 0,
        "prices": [{"currency": "EGP", "amount_minor": 25000}],
    }
    assert (updated["action"], updated["before"], updated["after"]) == (
        "package.update",
        {"points": 100, "prices": [{"currency": "EGP", "amount_minor": 25000}]},
        {"points": 120, "prices": [{"currency": "EGP", "amount_minor": 26000}]},
    )
    assert (deleted["action"], deleted["after"]) == ("package.delete", None)
    assert deleted["before"]["points"] == 120


@pytest.fixture(scope="module")
async def shop() -> AsyncIterator[Shop]:
    async with stripe_shop() as built:
        yield built


async def test_a_refund_leaves_one_row_and_its_replay_none(shop: Shop):
    admin, buyer = await shop.user(admin=True), await shop.user()
    payment = await shop.buy(buyer, await shop.package(points=100, price_minor=1000))
    session_id = await shop.session_of(payment["id"])
    shop.stripe.pay(session_id)
    await shop.send(shop.stripe.session_event("checkout.session.completed", session_id))
    body = {"reason": "the buyer asked", "amount_minor": 400}
    url = f"/api/admin/payments/{payment['id']}/refund/"
    key = {"Idempotency-Key": f"refund-{payment['id']}"}
    refunded = await shop.api.post(url, token=admin.access, json=body, headers=key)
    assert refunded.status_code == 200, refunded.text
    again = await shop.api.post(url, token=admin.access, json=body, headers=key)
    assert again.headers["Idempotent-Replayed"] == "true"
    [row] = await _trail(shop.api, admin, f"target_type=payment&target_id={payment['id']}")
    refund = refunded.json()["refund"]
    assert (row["action"], row["actor_id"], row["reason"]) == (
        "payment.refund",
        admin.id,
        "the buyer asked",
    )
    assert row["before"] == {"status": "succeeded", "refunded_minor": 0}
    assert row["after"] == {
        "status": "partially_refunded",
        "refunded_minor": 400,
        "gateway_refund_id": refund["gateway_refund_id"],
        "amount_minor": 400,
        "points_reversed": 40,
        "points_unrecovered": 0,
    }
    assert row["request_id"] == refunded.headers["X-Request-ID"]
    await shop.assert_ledger_clean()


async def test_a_refused_refund_leaves_no_row(shop: Shop):
    admin, buyer = await shop.user(admin=True), await shop.user()
    pending = await shop.buy(buyer, await shop.package())
    refused = await shop.api.post(
        f"/api/admin/payments/{pending['id']}/refund/",
        token=admin.access,
        json={"reason": "x"},
    )
    assert refused.status_code == 409, refused.text
    assert await _trail(shop.api, admin, f"target_type=payment&target_id={pending['id']}") == []
