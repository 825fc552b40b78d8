"""HTTP as a client library expects it: Allow on 405, HEAD wherever GET, Location on 201, and
every error (whoever answers it) a problem+json document with a request id."""

from __future__ import annotations

import base64
import os

import httpx
import pytest

from tests.conftest import Api

PROBLEM = "application/problem+json; charset=utf-8"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert (problem["status"], problem["code"]) == (status, code)
    assert isinstance(problem["request_id"], str)
    assert problem["request_id"] == response.headers["x-request-id"]
    return problem


# -- 405 and Allow --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/api/auth/login/", "POST, OPTIONS"),
        ("POST", "/api/skills/1/", "GET, HEAD, PUT, PATCH, DELETE, OPTIONS"),
        ("PUT", "/api/skills/", "GET, HEAD, POST, OPTIONS"),
        ("GET", "/api/points/orders/1/accept/", "POST, OPTIONS"),
        ("HEAD", "/api/auth/logout/", "POST, OPTIONS"),
        ("POST", "/media/skills/x.png", "GET, HEAD"),
        ("POST", "/static/docs/nothing.js", "GET, HEAD"),
        ("POST", "/ws/", "GET"),
    ],
)
async def test_a_405_names_the_methods_the_resource_serves(api, method, path, allow):
    response = await api.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    if method != "HEAD":
        assert_problem(response, 405, "method_not_allowed")


async def test_a_method_tornado_does_not_know_is_a_405_problem_with_allow(api):
    response = await api.request("PROPFIND", "/api/skills/")
    assert response.headers["allow"] == "GET, HEAD, POST, OPTIONS"
    assert_problem(response, 405, "method_not_allowed")


# -- HEAD -----------------------------------------------------------------------------------------


async def assert_head_matches_get(api: Api, path: str, token: str | None = None) -> None:
    got = await api.get(path, token=token)
    head = await api.request("HEAD", path, token=token)
    assert (head.status_code, head.content) == (got.status_code, b"")
    assert head.headers["content-type"] == got.headers["content-type"]
    # The length on the wire: of the gzipped body when it is gzipped (httpx asks for gzip).
    assert head.headers.get("content-encoding") == got.headers.get("content-encoding")
    assert head.headers["content-length"] == got.headers["content-length"]
    if "content-encoding" not in got.headers:
        assert head.headers["content-length"] == str(len(got.content))
    assert head.headers.get("etag") == got.headers.get("etag")


async def test_head_answers_like_get_without_a_body(api, make_user, make_skill):
    user = await make_user()
    skill = await make_skill(user)
    for path in (
        "/healthz",
        "/api/skills/",
        f"/api/skills/{skill['id']}/",
        "/api/skills/categories/",
        f"/api/users/{user.id}/",
        f"/api/users/{user.id}/skills/",
        f"/api/users/{user.id}/reviews/",
        "/api/points/packages/",
        "/api/schema/",
        "/api/docs/",
    ):
        await assert_head_matches_get(api, path)
    for path in (
        "/api/auth/profile/",
        "/api/points/orders/",
        "/api/points/transactions/",
        "/api/chat/rooms/",
        "/api/notifications/",
        "/api/skills/mine/",
    ):
        await assert_head_matches_get(api, path, token=user.access)


async def test_head_needs_what_get_needs(api):
    refused = await api.request("HEAD", "/api/auth/profile/")
    assert (refused.status_code, refused.content) == (401, b"")
    assert refused.headers["content-type"] == PROBLEM
    missing = await api.request("HEAD", "/api/skills/999999999/")
    assert missing.status_code == 404


# -- 201 and Location -----------------------------------------------------------------------------


async def test_every_creation_names_its_address_in_location(
    api, server, deps, make_user, make_category, make_skill
):
    # (Every 201 the suite meets is checked by the `api` client; here each address is followed.)
    buyer = await make_user()
    registered = buyer.data
    seller = await make_user()
    admin = await make_user(admin=True)

    category = await api.post(
        "/api/admin/categories/",
        token=admin.access,
        json={"slug": f"loc{os.getpid()}x{id(buyer)}", "name_en": "Loc", "name_ar": "موقع"},
    )
    assert category.headers["location"] == (
        f"{server}/api/admin/categories/{category.json()['id']}/"
    )

    skill = await api.post(
        "/api/skills/",
        token=seller.access,
        json={
            "title_en": "Knots",
            "description_en": "Sailing knots, one a lesson.",
            "price_points": 10,
            "level": "beginner",
            "delivery_days": 3,
            "category_id": category.json()["id"],
        },
    )
    assert skill.headers["location"] == f"{server}/api/skills/{skill.json()['id']}/"
    assert (await api.get(skill.headers["location"])).json()["id"] == skill.json()["id"]

    order = await api.post(
        "/api/points/orders/", token=buyer.access, json={"skill_id": skill.json()["id"]}
    )
    order_url = f"{server}/api/points/orders/{order.json()['id']}/"
    assert order.headers["location"] == order_url
    assert (await api.get(order_url, token=buyer.access)).json()["id"] == order.json()["id"]

    room = await api.post("/api/chat/rooms/", token=buyer.access, json={"user_id": seller.id})
    assert room.status_code == 201
    room_url = f"{server}/api/chat/rooms/{room.json()['id']}/"
    assert room.headers["location"] == room_url
    again = await api.post("/api/chat/rooms/", token=buyer.access, json={"user_id": seller.id})
    assert (again.status_code, again.headers["location"]) == (200, room_url)

    sent = await api.post(
        f"/api/chat/rooms/{room.json()['id']}/send/", token=buyer.access, json={"body": "hi"}
    )
    assert sent.status_code == 201
    assert sent.headers["location"] == room_url  # a message is found in its room
    page = (await api.get(sent.headers["location"], token=buyer.access)).json()
    assert [m["id"] for m in page["messages"]] == [sent.json()["id"]]

    package = await api.post(
        "/api/admin/packages/",
        token=admin.access,
        json={
            "name_en": "Few",
            "name_ar": "قليل",
            "points": 10,
            "price_minor": 100,
            "currency": "USD",
        },
    )
    assert package.status_code == 201, package.text
    assert package.headers["location"] == (f"{server}/api/admin/packages/{package.json()['id']}/")
    followed = await api.get(package.headers["location"], token=admin.access)
    assert followed.json()["id"] == package.json()["id"]

    user_url = f"{server}/api/users/{registered['user']['id']}/"
    profile = await api.get(user_url)
    assert profile.status_code == 200


async def test_an_image_upload_names_the_image_address(
    api, server, deps, make_user, make_skill, tmp_path
):
    from tests.conftest import media_folder
    from tests.e2e.test_oversized import noisy_png

    with media_folder(deps, tmp_path):
        owner = await make_user()
        skill = await make_skill(owner)
        uploaded = await api.post(
            f"/api/skills/{skill['id']}/images/",
            token=owner.access,
            files={"image": ("a.png", noisy_png(8), "image/png")},
        )
    assert uploaded.status_code == 201
    image_id = uploaded.json()["id"]
    assert uploaded.headers["location"] == f"{server}/api/skills/{skill['id']}/images/{image_id}/"


# -- every error is a problem with a request id -----------------------------------------------------


async def test_an_unknown_path_is_a_problem_with_the_callers_request_id(api):
    response = await api.get("/api/nothing-here/", headers={"X-Request-ID": "client-req-0042"})
    problem = assert_problem(response, 404, "not_found")
    assert problem["request_id"] == "client-req-0042"


async def test_a_refused_token_is_a_401_with_a_request_id(api):
    response = await api.get("/api/auth/profile/", token="not-a-token")
    assert_problem(response, 401, "invalid_token")
    anonymous = await api.get("/api/auth/profile/")
    assert_problem(anonymous, 401, "not_authenticated")


def handshake(origin: str | None = None, token: str | None = None) -> dict[str, str]:
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
    }
    if origin:
        headers["Origin"] = origin
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


async def test_websocket_handshake_refusals_are_problems_with_a_request_id(api, make_user):
    user = await make_user()
    foreign = await api.get(
        "/ws/", headers={**handshake("https://evil.example", user.access), "Accept-Language": "ar"}
    )
    problem = assert_problem(foreign, 403, "origin_not_allowed")
    assert problem["detail"] == "لا يُسمح للصفحات من هذا المصدر بالاتصال هنا."
    # A foreign page is refused before its token is even looked at.
    foreign_without_token = await api.get("/ws/", headers=handshake("https://evil.example"))
    assert_problem(foreign_without_token, 403, "origin_not_allowed")
    no_token = await api.get("/ws/", headers=handshake())
    assert_problem(no_token, 401, "invalid_token")
    assert no_token.headers["www-authenticate"].startswith("Bearer")
    bad_token = await api.get("/ws/", headers=handshake(token="forged"))
    assert_problem(bad_token, 401, "invalid_token")
    plain = await api.get("/ws/", headers={"Authorization": f"Bearer {user.access}"})
    assert_problem(plain, 400, "websocket_required")


async def test_media_and_static_errors_are_problems_with_a_request_id(api):
    media = await api.get("/media/skills/none.png", headers={"X-Request-ID": "media-req-0001"})
    assert assert_problem(media, 404, "not_found")["request_id"] == "media-req-0001"
    static = await api.get("/static/docs/nothing-here.js")
    assert_problem(static, 404, "not_found")
    assert "<html" not in static.text


async def test_a_replayed_creation_names_the_same_location(api, server, make_user, make_skill):
    buyer, seller = await make_user(), await make_user()
    skill = await make_skill(seller)
    headers = {"Idempotency-Key": f"replay-{buyer.id}"}
    first = await api.post(
        "/api/points/orders/", token=buyer.access, json={"skill_id": skill["id"]}, headers=headers
    )
    again = await api.post(
        "/api/points/orders/", token=buyer.access, json={"skill_id": skill["id"]}, headers=headers
    )
    assert (again.status_code, again.headers["idempotent-replayed"]) == (201, "true")
    assert again.headers["location"] == first.headers["location"]
    assert first.headers["location"] == f"{server}/api/points/orders/{first.json()['id']}/"
