"""Ids and page numbers beyond what the database can hold are client errors, never a 500.

Ids are BIGINT: a path id past 2**63 - 1 names nothing, and is answered exactly as any unknown
id is (the service's own 404); an id in a body or a query string past it, or a page number
past the last one anyone could reach, is invalid input (400 naming the field). Every route with
an id in its path is checked, read from the application's own route list, so a new route is
covered the day it is added.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import httpx
import pytest
import tornado.httpclient
import tornado.testing
import tornado.web
from PIL import Image

from skillswap.app import collect_routes
from skillswap.http.base import MAX_PAGE
from skillswap.http.dashboard.base import DashboardHandler
from skillswap.http.validation import MAX_ID
from tests.chat_support import ws_connect
from tests.conftest import extra_server
from tests.factories import order_room

# The largest id the database can hold, the first past it, one past any 64-bit integer, one
# too long for Python to parse as an int without being told to, and a zero-padded small one.
EDGE_IDS = [str(MAX_ID), str(MAX_ID + 1), "9" * 20, "9" * 5000, "0" * 30 + "1" * 20]
HUGE = MAX_ID + 1

METHODS = ("get", "post", "put", "patch", "delete")


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buffer, "PNG")
    return buffer.getvalue()


_GROUP_RE = re.compile(r"\((?:\?P<\w+>)?(?P<body>[^()]*)\)")

# A valid body for each operation that reads one, so the request fails on the id alone.
PNG = _png()
SKILL = {
    "title_en": "Guitar",
    "description_en": "Chords.",
    "category_id": 1,
    "price_points": 10,
}
PACKAGE = {
    "name_en": "Small",
    "name_ar": "صغيرة",
    "points": 10,
    "price_minor": 500,
    "currency": "USD",
}
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("SkillDetailHandler", "put"): {"json": SKILL},
    ("SkillDetailHandler", "patch"): {"json": {"title_en": "Guitar"}},
    ("SkillImagesHandler", "post"): {"content": PNG, "headers": {"Content-Type": "image/png"}},
    ("AdminCategoryHandler", "patch"): {"json": {"icon": "x"}},
    ("AdminRefundHandler", "post"): {"json": {"reason": "a refund"}},
    ("AdminPackageHandler", "put"): {"json": PACKAGE},
    ("AdminPackageHandler", "patch"): {"json": {"points": 5}},
    ("OrderHandler", "put"): {"json": {"action": "cancel"}},
    ("OrderActionHandler", "post"): {"json": {}},
    ("OrderReviewHandler", "post"): {"json": {"rating": 5}},
    ("SendHandler", "post"): {"json": {"body": "hello"}},
    ("ReadHandler", "post"): {"json": {"message_id": 1}},
    ("NotificationReadHandler", "post"): {},
    ("AdminUserHandler", "patch"): {"json": {"is_verified": True}},
    ("AdminSkillHandler", "patch"): {"json": {"status": "active"}},
    ("AdminCloseReportHandler", "post"): {"json": {"outcome": "dismissed"}},
    ("AdminDeleteUserHandler", "post"): {"json": {"reason": "asked by mail"}},
    ("AdminReinstateUserHandler", "post"): {"json": {"reason": "changed their mind"}},
}
ID_GROUPS = {r"\d+", ".*"}


def _path(spec: tornado.web.URLSpec, value: str) -> str:
    """The route's path with `value` for every id (and the first choice of any other group)."""

    def fill(match: re.Match[str]) -> str:
        body = match.group("body")
        return value if body in ID_GROUPS else body.split("|")[0]

    pattern = spec.regex.pattern.removesuffix("$").removesuffix("/?")
    path = _GROUP_RE.sub(fill, pattern).replace("\\", "")
    return path + "/" if path.startswith("/api/") else path


def _operations_with_path_ids(*, pages: bool = False) -> list[Any]:
    """The API's operations with an id in their path (or, with `pages`, the dashboard's pages,
    which take a session cookie and answer HTML instead of a bearer token and problem+json)."""
    operations = []
    for spec in collect_routes():
        handler = spec.handler_class
        if spec.regex.groups == 0 or not issubclass(handler, tornado.web.RequestHandler):
            continue
        groups = {m.group("body") for m in _GROUP_RE.finditer(spec.regex.pattern)}
        if not groups & ID_GROUPS:
            continue  # a path of other names (a mailed token), not of ids
        if issubclass(handler, DashboardHandler) != pages:
            continue
        for method in METHODS:
            if getattr(handler, method) is getattr(tornado.web.RequestHandler, method):
                continue
            operations.append(
                pytest.param(spec, method, id=f"{method.upper()} {_path(spec, '{id}')}")
            )
    return operations


def _assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["code"] == code
    assert "Traceback" not in response.text
    return body


@pytest.mark.parametrize(("spec", "method"), _operations_with_path_ids())
async def test_every_path_id_beyond_bigint_is_answered_as_an_unknown_id(
    api, make_user, spec, method
):
    admin = await make_user(admin=True)  # past every permission check, to the lookup itself
    request = BODIES.get((spec.handler_class.__name__, method), {})
    if method in {"post", "put", "patch"} and not request:
        request = {"json": {}}

    async def answer(value: str) -> Any:
        path = _path(spec, value)
        assert spec.regex.match(path), path
        return await api.request(method.upper(), path, token=admin.access, **request)

    unknown = await answer("0")  # no row has id 0
    assert unknown.status_code == 404, unknown.text
    code = unknown.json()["code"]
    assert code.endswith("not_found")
    for value in EDGE_IDS:
        _assert_problem(await answer(value), 404, code)


@pytest.mark.parametrize(("spec", "method"), _operations_with_path_ids(pages=True))
async def test_every_dashboard_page_id_beyond_bigint_is_an_unknown_one(
    server, make_user, spec, method
):
    """A page of the dashboard answers an id past BIGINT as it answers any unknown id."""
    admin = await make_user(admin=True)
    async with httpx.AsyncClient(base_url=server, timeout=30) as client:
        await client.get("/admin/login")
        xsrf = client.cookies["_xsrf"]
        form = {"_xsrf": xsrf, "email": admin.email, "password": admin.password}
        signed_in = await client.post("/admin/login", data=form)
        assert signed_in.status_code == 303, signed_in.text[:500]

        async def answer(value: str) -> Any:
            path = _path(spec, value)
            assert spec.regex.match(path), path
            if method == "get":
                return await client.get(path)
            return await client.post(path, data={"_xsrf": xsrf, "is_verified": "true"})

        unknown = await answer("0")
        assert unknown.status_code == 404, unknown.text[:500]
        for value in EDGE_IDS:
            response = await answer(value)
            assert response.status_code == 404, (value[:30], response.text[:300])
            assert response.headers["content-type"].startswith("text/html")
            assert "Traceback" not in response.text


def test_every_operation_with_a_body_has_a_sample_here():
    """A new route that reads a body needs one above, or its test would stop at the body."""
    from skillswap.http.operations import declared_operation

    missing = []
    for param in _operations_with_path_ids():
        spec, method = param.values
        declared = declared_operation(getattr(spec.handler_class, method))
        if declared is None:  # not a REST operation (media files)
            continue
        takes_body = declared.body is not None or declared.upload is not None
        if takes_body and (spec.handler_class.__name__, method) not in BODIES:
            missing.append(param.id)
    assert missing == []


# -- ids in bodies and query strings -----------------------------------------------------------


async def test_an_order_for_a_skill_id_beyond_bigint_names_the_field(api, make_user):
    buyer = await make_user()
    response = await api.post("/api/points/orders/", token=buyer.access, json={"skill_id": HUGE})
    body = _assert_problem(response, 400, "validation_error")
    assert list(body["errors"]) == ["skill_id"]


async def test_a_direct_room_with_a_user_id_beyond_bigint_names_the_field(api, make_user):
    user = await make_user()
    response = await api.post("/api/chat/rooms/", token=user.access, json={"user_id": HUGE})
    body = _assert_problem(response, 400, "validation_error")
    assert list(body["errors"]) == ["user_id"]


async def test_room_message_ids_beyond_bigint_name_the_field(api, deps, make_user):
    buyer, seller = await make_user(), await make_user()
    room = await order_room(api, deps, buyer, seller)

    read = await api.post(
        f"/api/chat/rooms/{room}/read/", token=buyer.access, json={"message_id": HUGE}
    )
    assert list(_assert_problem(read, 400, "validation_error")["errors"]) == ["message_id"]

    older = await api.get(f"/api/chat/rooms/{room}/?before={HUGE}", token=buyer.access)
    assert list(_assert_problem(older, 400, "validation_error")["errors"]) == ["before"]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (f"/api/skills/?category={HUGE}", "category"),
        (f"/api/skills/?owner={HUGE}", "owner"),
    ],
)
async def test_skill_filters_by_ids_beyond_bigint_name_the_field(api, path, field):
    response = await api.get(path)
    assert list(_assert_problem(response, 400, "validation_error")["errors"]) == [field]


async def test_category_parents_and_orderings_beyond_bigint_name_the_field(api, make_user):
    admin = await make_user(admin=True)
    created = await api.post(
        "/api/admin/categories/",
        token=admin.access,
        json={"slug": "x-huge-parent", "name_en": "X", "name_ar": "س", "parent_id": HUGE},
    )
    assert list(_assert_problem(created, 400, "validation_error")["errors"]) == ["parent_id"]
    reordered = await api.post(
        "/api/admin/categories/reorder/", token=admin.access, json={"ids": [1, HUGE]}
    )
    assert list(_assert_problem(reordered, 400, "validation_error")["errors"]) == ["ids.1"]


# -- page numbers ------------------------------------------------------------------------------


async def _paginated_paths(api: Any) -> list[str]:
    schema = (await api.get("/api/schema/")).json()
    return [
        re.sub(r"\{\w+\}", "1", path)
        for path, operations in schema["paths"].items()
        for operation in operations.values()
        if any(p["name"] == "page" for p in operation["parameters"])
    ]


async def test_every_list_refuses_a_page_number_past_the_last_reachable_one(api, make_user):
    admin = await make_user(admin=True)
    paths = await _paginated_paths(api)
    assert "/api/points/orders/" in paths and "/api/users/1/reviews/" in paths
    for path in paths:
        for page in (str(MAX_PAGE + 1), str(2**64), "9" * 5000):
            response = await api.get(path, token=admin.access, params={"page": page})
            body = _assert_problem(response, 400, "validation_error")
            assert list(body["errors"]) == ["page"], path


async def test_the_last_reachable_page_is_an_empty_page_not_an_error(api, make_user):
    user = await make_user()
    response = await api.get(
        "/api/points/transactions/", token=user.access, params={"page": MAX_PAGE, "page_size": 100}
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"] == []


async def test_the_documented_page_parameter_states_its_maximum(api):
    schema = (await api.get("/api/schema/")).json()
    page = next(
        p
        for p in schema["paths"]["/api/points/orders/"]["get"]["parameters"]
        if p["name"] == "page"
    )
    assert page["schema"]["maximum"] == MAX_PAGE


# -- the WebSocket -----------------------------------------------------------------------------


async def test_websocket_frames_with_room_ids_beyond_bigint_are_refused_frames(
    api, server, make_user
):
    user = await make_user()
    client = await ws_connect(server, user.access)
    try:
        await client.send(type="subscribe", room=HUGE)
        refused = await client.of_type("error")
        assert refused["code"] == "invalid_frame" and refused["field"] == "room"
        await client.send(type="read", room=HUGE, message_id=1)
        refused = await client.of_type("error")
        assert refused["code"] == "invalid_frame" and refused["field"] == "room"
        await client.send(type="ping")
        assert (await client.of_type("pong"))["type"] == "pong"  # the socket lives on
    finally:
        client.close()


# -- the edges served outside BaseHandler ------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/media/skills/nothing-here.png", 404),
        ("HEAD", "/media/skills/nothing-here.png", 404),
        ("GET", "/media/", 404),
        ("GET", "/media/%2E%2E/%2E%2E/etc/passwd", 403),  # outside the storage root
        ("POST", "/media/skills/x.png", 405),
    ],
)
async def test_media_errors_are_problem_json_under_the_media_security_headers(
    api, method, path, status
):
    response = await api.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert response.headers["cache-control"] == "no-store"  # an error is not immutable
    if method != "HEAD":
        assert response.json()["status"] == status
        assert "<html" not in response.text


async def test_a_websocket_handshake_with_the_database_down_is_a_problem_without_traceback(
    settings, make_user
):
    user = await make_user()
    sock, port = tornado.testing.bind_unused_port()
    sock.close()  # nothing listens there: the database is down
    down = settings.with_overrides(database_url=f"postgresql://postgres@127.0.0.1:{port}/gone")
    async with extra_server(down) as (base, _deps):
        with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
            await ws_connect(base, user.access)
    response = refused.value.response
    # The database cannot be reached: a 503 the client may retry, not a 500.
    assert response is not None and response.code == 503
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.headers["Retry-After"] == "5"
    body = json.loads(response.body)
    assert body["code"] == "dependency_unavailable" and body["status"] == 503
    assert b"Traceback" not in response.body and b"<html" not in response.body
