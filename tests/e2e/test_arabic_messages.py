"""An answer in Arabic is wholly Arabic: lists are joined with Arabic joiners and order
statuses and actions are named in Arabic; only codes (and the machine fields) stay as they are.
"""

from __future__ import annotations

import httpx

from skillswap.http.health import SERVICE_LABELS
from skillswap.i18n import Catalogs, all_of, lazy, one_of_english
from tests.conftest import extra_server

ORDERS = "/api/points/orders/"
ARABIC = {"Accept-Language": "ar"}


async def order_between(api, make_user, make_skill):  # type: ignore[no-untyped-def]
    buyer, seller = await make_user(locale="ar"), await make_user(locale="ar")
    skill = await make_skill(seller, price_points=10)
    placed = await api.post(ORDERS, token=buyer.access, json={"skill_id": skill["id"]})
    assert placed.status_code == 201, placed.text
    return buyer, seller, placed.json()["id"]


async def act(api, user, order_id: int, action: str, **body):  # type: ignore[no-untyped-def]
    return await api.post(f"{ORDERS}{order_id}/{action}/", token=user.access, json=body)


async def test_a_transition_from_the_wrong_status_names_status_and_action_in_arabic(
    api, make_user, make_skill
):
    buyer, seller, order_id = await order_between(api, make_user, make_skill)
    early = await act(api, buyer, order_id, "complete")
    assert early.status_code == 409
    assert early.json()["code"] == "invalid_transition"
    assert (
        early.json()["detail"]
        == 'حالة هذا الطلب "قيد الانتظار": لا يمكن تنفيذ الإجراء "إتمام" الآن.'
    )
    assert early.json()["allowed_actions"] == ["cancel"]  # codes stay codes
    assert (await act(api, seller, order_id, "accept")).status_code == 200
    again = await act(api, seller, order_id, "accept")
    assert again.status_code == 409
    assert again.json()["detail"] == 'حالة هذا الطلب "مقبول": لا يمكن تنفيذ الإجراء "قبول" الآن.'


async def test_an_action_of_the_other_role_is_named_in_arabic(api, make_user, make_skill):
    buyer, seller, order_id = await order_between(api, make_user, make_skill)
    refused = await act(api, buyer, order_id, "accept")
    assert refused.status_code == 403
    assert refused.json()["code"] == "action_not_permitted"
    assert refused.json()["detail"] == 'غير مسموح لك بتنفيذ الإجراء "قبول" على هذا الطلب.'
    changes = await act(api, seller, order_id, "request_changes")
    assert changes.status_code == 403
    assert changes.json()["detail"] == 'غير مسموح لك بتنفيذ الإجراء "طلب تعديلات" على هذا الطلب.'


async def test_english_readers_get_the_english_names(api, make_user, make_skill):
    buyer, seller = await make_user(locale="en"), await make_user(locale="en")
    skill = await make_skill(seller, price_points=10)
    order_id = (await api.post(ORDERS, token=buyer.access, json={"skill_id": skill["id"]})).json()[
        "id"
    ]
    early = await act(api, buyer, order_id, "complete")
    assert early.json()["detail"] == 'This order is "pending": "complete" is not possible now.'
    refused = await act(api, seller, order_id, "request_changes")
    assert refused.json()["detail"] == 'You are not allowed to "request changes" this order.'


async def test_choices_are_joined_with_the_arabic_or(api, make_user, make_skill):
    buyer, seller, order_id = await order_between(api, make_user, make_skill)
    admin = await make_user(admin=True, locale="ar")
    assert (await act(api, seller, order_id, "accept")).status_code == 200
    assert (await act(api, buyer, order_id, "dispute", note="لم يحضر")).status_code == 200
    # No resolution: the settlement's own check.
    missing = await act(api, admin, order_id, "resolve")
    assert missing.status_code == 400
    assert missing.json()["errors"] == {
        "resolution": ["يجب أن يكون أحد: refund أو release أو split."]
    }
    # A resolution that is not one of them: the body's check (pydantic's literal).
    wrong = await act(api, admin, order_id, "resolve", resolution="keep")
    assert wrong.status_code == 400
    assert wrong.json()["errors"] == {
        "resolution": ["يجب أن يكون أحد: 'refund' أو 'release' أو 'split'."]
    }
    profile = await api.patch(
        "/api/auth/profile/", token=buyer.access, json={"locale": "fr"}, headers=ARABIC
    )
    assert profile.status_code == 400
    assert profile.json()["errors"] == {"locale": ["يجب أن يكون أحد: 'en' أو 'ar'."]}
    english = await api.patch(
        "/api/auth/profile/",
        token=(await make_user(locale="en")).access,
        json={"locale": "fr"},
    )
    assert english.json()["errors"] == {"locale": ["Must be one of: 'en' or 'ar'."]}


async def test_unknown_category_ids_are_joined_with_the_arabic_and(api, make_user, make_category):
    admin = await make_user(admin=True, locale="ar")
    known = await make_category()
    response = await api.post(
        "/api/admin/categories/reorder/",
        token=admin.access,
        json={"ids": [known["id"], 999_999_998, 999_999_999]},
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {"ids": ["فئات غير معروفة: 999999998 و999999999."]}


async def test_a_service_that_is_down_is_named_in_arabic(settings):
    broken = settings.with_overrides(redis_url="redis://127.0.0.1:1/0")
    async with extra_server(broken) as (url, _deps), httpx.AsyncClient() as client:
        arabic = await client.get(f"{url}/readyz", headers=ARABIC)
        english = await client.get(f"{url}/readyz", headers={"Accept-Language": "en"})
    assert arabic.status_code == 503
    assert arabic.json()["detail"] == "غير جاهز: تعذّر الوصول إلى Redis."
    assert arabic.json()["down"] == ["redis"]
    assert english.json()["detail"] == "Not ready: Redis unreachable."


def test_several_services_and_choices_render_in_either_language() -> None:
    catalogs = Catalogs()
    down = lazy(
        "Not ready: {services} unreachable.",
        services=all_of(SERVICE_LABELS[name] for name in ("database", "redis")),
    )
    assert down.render(catalogs.get("ar")) == "غير جاهز: تعذّر الوصول إلى قاعدة البيانات وRedis."
    assert down.render(catalogs.get("en")) == "Not ready: database and Redis unreachable."
    choices = lazy("Must be one of: {choices}.", choices=one_of_english("1, 2 or 3"))
    assert choices.render(catalogs.get("ar")) == "يجب أن يكون أحد: 1 أو 2 أو 3."
    assert choices.render(catalogs.get("en")) == "Must be one of: 1, 2, or 3."
