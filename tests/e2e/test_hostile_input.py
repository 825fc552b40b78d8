"""Input a client or an attacker sends that the database or the parser cannot take: a 400 that
names the field, never a 500, and never another user's failure."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.chat_support import ws_connect
from tests.factories import insert_skill, place_order

UNSTORABLE = "Must not contain NUL characters or unpaired surrogates."
NOT_NULL = "This field may not be null."
WHOLE_NUMBER = "Must be a whole number."
JSON_HEADERS = {"Content-Type": "application/json"}

# JSON escapes for the characters PostgreSQL cannot store: NUL, and lone UTF-16 surrogates
# (json.loads accepts both; asyncpg then cannot send a surrogate and PostgreSQL refuses NUL).
BAD_TEXT = ["a\\u0000b", "a\\ud800b", "\\udfff"]


def raw_json(document: dict[str, Any], **bad: str) -> str:
    """`document` as JSON text with each of `bad` (a field name and an escaped JSON string
    body) spliced in verbatim, so that lone surrogates survive the encoding."""
    text = json.dumps(document)
    spliced = ", ".join(f'"{name}": "{escaped}"' for name, escaped in bad.items())
    if not document:
        return "{" + spliced + "}"
    return text[:-1] + ", " + spliced + "}"


def assert_field_refused(response: Any, errors: dict[str, list[str]]) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["status"] == 400
    assert body["errors"] == errors


@pytest.fixture
def world(api, deps, make_user):
    """A buyer and a seller with an order (and its chat room), and an administrator."""

    async def build() -> dict[str, Any]:
        buyer, seller, admin = await make_user(), await make_user(), await make_user(admin=True)
        order = await place_order(api, deps, buyer, seller)
        rooms = (await api.get("/api/chat/rooms/", token=buyer.access)).json()["results"]
        room = next(r["id"] for r in rooms if r["order_id"] == order["id"])
        return {"buyer": buyer, "seller": seller, "admin": admin, "order": order, "room": room}

    return build


# -- text the database cannot hold -----------------------------------------------------------------


def _places(w: dict[str, Any]) -> list[tuple[str, str, str | None, dict[str, Any], str]]:
    """(method, path, token, the rest of a valid body, the field that gets the bad text)."""
    buyer, seller, admin = w["buyer"], w["seller"], w["admin"]
    order_id, room = w["order"]["id"], w["room"]
    return [
        ("POST", "/api/auth/login/", None, {"password": "x"}, "username"),
        ("POST", "/api/auth/login/", None, {"username": buyer.username}, "password"),
        (
            "POST",
            "/api/auth/register/",
            None,
            {"email": "x@example.com", "username": "new_user", "password": "long enough 1"},
            "display_name",
        ),
        ("PATCH", "/api/auth/profile/", buyer.access, {}, "bio"),
        (
            "PUT",
            "/api/auth/profile/",
            buyer.access,
            {"username": buyer.username, "display_name": "Buyer"},
            "bio",
        ),
        ("POST", "/api/points/orders/", buyer.access, {"skill_id": 1}, "requirements"),
        ("POST", f"/api/points/orders/{order_id}/reject/", seller.access, {}, "note"),
        ("PUT", f"/api/points/orders/{order_id}/", seller.access, {"action": "accept"}, "note"),
        ("POST", f"/api/chat/rooms/{room}/send/", buyer.access, {}, "body"),
        ("POST", f"/api/chat/rooms/{room}/send/", buyer.access, {"body": "hi"}, "client_id"),
        (
            "POST",
            "/api/admin/packages/",
            admin.access,
            {"name_ar": "باقة", "points": 10, "price_minor": 500, "currency": "USD"},
            "name_en",
        ),
        (
            "POST",
            "/api/admin/categories/",
            admin.access,
            {"slug": "bad-text", "name_ar": "فئة"},
            "name_en",
        ),
        (
            "POST",
            "/api/skills/",
            seller.access,
            {"description_en": "Lessons", "category_id": 1, "price_points": 5},
            "title_en",
        ),
    ]


PLACE_IDS = [
    "login-username",
    "login-password",
    "register-display_name",
    "profile-patch-bio",
    "profile-put-bio",
    "order-requirements",
    "order-action-note",
    "order-put-note",
    "chat-body",
    "chat-client_id",
    "admin-package-name",
    "admin-category-name",
    "skill-title",
]


@pytest.mark.parametrize("bad", BAD_TEXT, ids=["nul", "high-surrogate", "low-surrogate"])
@pytest.mark.parametrize("place", range(len(PLACE_IDS)), ids=PLACE_IDS)
async def test_text_the_database_cannot_store_is_a_400_naming_the_field(api, world, place, bad):
    method, path, token, body, field = _places(await world())[place]
    response = await api.request(
        method, path, token=token, content=raw_json(body, **{field: bad}), headers=JSON_HEADERS
    )
    assert_field_refused(response, {field: [UNSTORABLE]})


async def test_nothing_was_stored_by_a_refused_chat_message(api, world):
    w = await world()
    response = await api.post(
        f"/api/chat/rooms/{w['room']}/send/",
        token=w["buyer"].access,
        content='{"body": "before\\u0000after"}',
        headers=JSON_HEADERS,
    )
    assert response.status_code == 400
    room = (await api.get(f"/api/chat/rooms/{w['room']}/", token=w["buyer"].access)).json()
    assert room["messages"] == []


async def test_bad_text_nested_in_a_body_is_named_by_its_path(api, world):
    w = await world()
    body = '{"title_en": "Ok", "description_en": "Ok", "category_id": 1, "price_points": 5, '
    body += '"tags": ["fine", "bad\\u0000", "also\\ud83d"]}'
    response = await api.post(
        "/api/skills/", token=w["seller"].access, content=body, headers=JSON_HEADERS
    )
    assert_field_refused(response, {"tags.1": [UNSTORABLE], "tags.2": [UNSTORABLE]})


async def test_a_surrogate_pair_is_ordinary_text(api, world):
    w = await world()
    response = await api.post(
        f"/api/chat/rooms/{w['room']}/send/",
        token=w["buyer"].access,
        content='{"body": "smile \\ud83d\\ude00"}',
        headers=JSON_HEADERS,
    )
    assert response.status_code == 201, response.text
    assert response.json()["body"] == "smile \U0001f600"


async def test_a_key_the_database_cannot_store_is_named_escaped(api):
    response = await api.post(
        "/api/auth/login/", content='{"password": "x", "\\ud800": 1}', headers=JSON_HEADERS
    )
    assert_field_refused(response, {"\\ud800": [UNSTORABLE]})


async def test_a_body_that_is_not_utf8_is_malformed_json(api):
    # Raw UTF-8 bytes of a surrogate: json.loads on bytes would decode them ("surrogatepass").
    response = await api.post(
        "/api/auth/login/",
        content=b'{"username": "a\xed\xa0\x80", "password": "x"}',
        headers=JSON_HEADERS,
    )
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"
    assert response.json()["detail"] == "The body must be JSON encoded as UTF-8."


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/skills/?search=a%00b", "search"),
        ("/api/points/orders/?status=pending%00", "status.0"),
        ("/api/chat/rooms/?page=%00", "page"),
        ("/api/notifications/?unread=%00", "unread"),
    ],
)
async def test_query_arguments_the_database_cannot_store_are_a_400(api, world, path, field):
    w = await world()
    response = await api.get(path, token=w["buyer"].access)
    assert_field_refused(response, {field: [UNSTORABLE]})


async def test_a_media_path_with_nul_is_a_400_not_a_500(api):
    response = await api.get("/media/skills/a%00b.png")
    assert_field_refused(response, {"path": [UNSTORABLE]})


async def test_a_media_path_that_is_not_utf8_is_a_400_naming_it(api):
    response = await api.get("/media/skills/%ED%A0%80.png")
    assert_field_refused(response, {"path": ["Must be valid UTF-8."]})


async def test_a_missing_media_file_is_still_a_404(api):
    response = await api.get("/media/skills/nothing-here.png")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


# -- over the WebSocket ------------------------------------------------------------------------------


async def test_a_frame_with_text_the_database_cannot_store_is_an_error_frame(
    api, deps, server, world
):
    w = await world()
    socket = await ws_connect(server, w["buyer"].access)
    try:
        await socket.conn.write_message(
            f'{{"type": "send", "room": {w["room"]}, "body": "a\\u0000b", "client_id": "c-1"}}'
        )
        error = await socket.of_type("error")
        assert error == {
            "type": "error",
            "code": "invalid_frame",
            "detail": "`body` must not contain NUL characters or unpaired surrogates.",
            "field": "body",
            "room": w["room"],
            "client_id": "c-1",
        }
        # The socket stays open and works.
        await socket.send(type="send", room=w["room"], body="fine", client_id="c-2")
        ack = await socket.of_type("ack")
        assert (ack["client_id"], ack["message"]["body"]) == ("c-2", "fine")
    finally:
        socket.close()


async def test_a_deeply_nested_frame_is_an_error_frame_and_the_socket_stays_open(
    api, server, world
):
    w = await world()
    socket = await ws_connect(server, w["buyer"].access)
    try:
        await socket.conn.write_message("[" * 5000 + "]" * 5000)
        error = await socket.of_type("error")
        assert error == {
            "type": "error",
            "code": "malformed_frame",
            "detail": "The frame is nested more than 64 levels deep.",
        }
        await socket.send(type="ping")
        assert await socket.of_type("pong") == {"type": "pong"}
    finally:
        socket.close()


# -- deeply nested JSON ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "[" * 5000 + "]" * 5000,
        '{"a":' * 1000 + "1" + "}" * 1000,
        '{"username": "u", "password": ' + "[" * 65 + "]" * 65 + "}",
        "[" * 100_000,  # not even closed: refused for its depth before it is parsed
    ],
    ids=["arrays-5000", "objects-1000", "depth-65", "unclosed"],
)
async def test_deeply_nested_json_is_a_400_malformed_json_even_unauthenticated(api, body):
    response = await api.post("/api/auth/login/", content=body, headers=JSON_HEADERS)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "malformed_json"
    assert response.json()["detail"] == "The body is nested more than 64 levels deep."


async def test_json_64_levels_deep_is_parsed_and_validated(api):
    body = '{"username": "u", "password": ' + "[" * 63 + "]" * 63 + "}"
    response = await api.post("/api/auth/login/", content=body, headers=JSON_HEADERS)
    assert_field_refused(response, {"password": ["Must be a string."]})


async def test_brackets_inside_strings_do_not_count_as_depth(api, make_user):
    password = "open [[[[" + "[" * 100 + " sesame"
    user = await make_user(password=password)
    response = await api.post(
        "/api/auth/login/", json={"username": user.username, "password": password}
    )
    assert response.status_code == 200, response.text


# -- null where a value is required ----------------------------------------------------------------


@pytest.mark.parametrize("field", ["username", "email"])
async def test_login_with_a_null_identifier_is_a_400_naming_it(api, field):
    response = await api.post("/api/auth/login/", json={field: None, "password": "x"})
    assert_field_refused(response, {field: [NOT_NULL]})


@pytest.mark.parametrize(
    "field", ["username", "display_name", "bio", "avatar_url", "phone", "locale"]
)
async def test_a_profile_field_set_to_null_is_a_400_not_a_500_or_a_409(api, make_user, field):
    user = await make_user()
    response = await api.patch("/api/auth/profile/", token=user.access, json={field: None})
    assert_field_refused(response, {field: [NOT_NULL]})
    profile = (await api.get("/api/auth/profile/", token=user.access)).json()
    assert profile["username"] == user.username


async def test_a_category_name_set_to_null_is_a_400_and_a_null_parent_still_means_top_level(
    api, make_user, make_category
):
    admin = await make_user(admin=True)
    child = await make_category(parent_id=(await make_category())["id"])
    refused = await api.patch(
        f"/api/admin/categories/{child['id']}/", token=admin.access, json={"name_en": None}
    )
    assert_field_refused(refused, {"name_en": [NOT_NULL]})
    moved = await api.patch(
        f"/api/admin/categories/{child['id']}/", token=admin.access, json={"parent_id": None}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["parent_id"] is None


async def test_a_package_field_set_to_null_is_a_400(api, make_user):
    admin = await make_user(admin=True)
    created = await api.post(
        "/api/admin/packages/",
        token=admin.access,
        json={"name_en": "P", "name_ar": "ب", "points": 10, "price_minor": 500, "currency": "USD"},
    )
    assert created.status_code == 201, created.text
    response = await api.patch(
        f"/api/admin/packages/{created.json()['id']}/", token=admin.access, json={"points": None}
    )
    assert_field_refused(response, {"points": [NOT_NULL]})


# -- one coercion policy: strict --------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, "201", 1.0, "1"], ids=["true", "str", "float", "str-1"])
async def test_an_id_must_be_a_json_integer(api, deps, make_user, value):
    buyer = await make_user()
    response = await api.post("/api/points/orders/", token=buyer.access, json={"skill_id": value})
    assert_field_refused(response, {"skill_id": [WHOLE_NUMBER]})


@pytest.mark.parametrize(
    ("method", "path", "body", "errors"),
    [
        (
            "POST",
            "/api/auth/login/",
            {"username": 5, "password": "x"},
            {"username": ["Must be a string."]},
        ),
        (
            "PATCH",
            "/api/auth/profile/",
            {"locale": 1},
            {"locale": ["Must be one of: 'en' or 'ar'."]},
        ),
        ("POST", "room-send", {"body": 12}, {"body": ["Must be a string."]}),
        ("POST", "room-read", {"message_id": "1"}, {"message_id": [WHOLE_NUMBER]}),
        ("POST", "order-reject", {"note": False}, {"note": ["Must be a string."]}),
        ("POST", "order-reject", {"buyer_points": "3"}, {"buyer_points": [WHOLE_NUMBER]}),
    ],
    ids=[
        "login-number",
        "locale-number",
        "chat-number",
        "read-string-id",
        "note-bool",
        "points-str",
    ],
)
async def test_bodies_do_not_coerce_types(api, world, method, path, body, errors):
    w = await world()
    path = {
        "room-send": f"/api/chat/rooms/{w['room']}/send/",
        "room-read": f"/api/chat/rooms/{w['room']}/read/",
        "order-reject": f"/api/points/orders/{w['order']['id']}/reject/",
    }.get(path, path)
    token = w["seller"].access if "orders" in path else w["buyer"].access
    response = await api.request(method, path, token=token, json=body)
    assert_field_refused(response, errors)


async def test_a_package_flag_must_be_a_json_boolean(api, make_user):
    admin = await make_user(admin=True)
    response = await api.post(
        "/api/admin/packages/",
        token=admin.access,
        json={
            "name_en": "P",
            "name_ar": "ب",
            "points": 10,
            "price_minor": 500,
            "currency": "USD",
            "is_active": "false",
        },
    )
    assert_field_refused(response, {"is_active": ["Must be true or false."]})


async def test_query_strings_still_read_numbers_and_booleans_from_text(api, world):
    w = await world()
    response = await api.get(f"/api/chat/rooms/{w['room']}/?limit=5", token=w["buyer"].access)
    assert response.status_code == 200, response.text
    unread = await api.get("/api/notifications/?unread=true", token=w["seller"].access)
    assert unread.status_code == 200, unread.text


# -- client strings in bounded columns ---------------------------------------------------------------


async def test_the_longest_idempotency_key_places_an_order(api, deps, make_user):
    buyer, seller = await make_user(), await make_user()
    skill_id = await insert_skill(deps, owner_id=seller.id, price=1)
    key = "k" * 255  # the documented maximum; with its prefix longer than the ledger's 200
    response = await api.post(
        "/api/points/orders/",
        token=buyer.access,
        json={"skill_id": skill_id},
        headers={"Idempotency-Key": key},
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "pending"


async def test_an_idempotency_key_over_the_maximum_is_a_400(api, deps, make_user):
    buyer = await make_user()
    response = await api.post(
        "/api/points/orders/",
        token=buyer.access,
        json={"skill_id": 1},
        headers={"Idempotency-Key": "k" * 256},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"


async def test_an_idempotent_request_on_a_very_long_path_is_answered_not_a_500(api, make_user):
    user = await make_user()
    response = await api.post(
        f"/api/points/orders/{'9' * 400}/accept/",
        token=user.access,
        json={},
        headers={"Idempotency-Key": "long-path"},
    )
    assert response.status_code == 404
    assert response.json()["code"] == "order_not_found"
