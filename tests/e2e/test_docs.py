"""The OpenAPI document and the documentation pages."""

from __future__ import annotations

import re

from openapi_spec_validator import validate as validate_openapi

from tests.browser_support import launch_chromium, needs_chromium


async def test_schema_is_valid_openapi_31_and_describes_the_account_endpoints(api):
    response = await api.get("/api/schema/")
    assert response.status_code == 200
    document = response.json()
    validate_openapi(document)
    assert document["openapi"] == "3.1.0"
    paths = document["paths"]
    for path in (
        "/api/auth/register/",
        "/api/auth/login/",
        "/api/auth/refresh/",
        "/api/auth/logout/",
        "/api/auth/profile/",
        "/api/users/{user_id}/",
    ):
        assert path in paths, path
    register = paths["/api/auth/register/"]["post"]
    assert register["security"] == []  # public
    assert "201" in register["responses"]
    body_ref = register["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body_schema = document["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert {"email", "username", "password"} <= set(body_schema["required"])
    assert body_schema["additionalProperties"] is False
    assert not any(p["name"] == "Idempotency-Key" for p in register["parameters"])
    place_order = paths["/api/points/orders/"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in place_order["parameters"])
    profile = paths["/api/auth/profile/"]
    assert set(profile) >= {"get", "put", "patch"}
    assert "security" not in profile["get"]  # inherits bearer
    assert "401" in profile["get"]["responses"]
    logout = paths["/api/auth/logout/"]["post"]
    assert "204" in logout["responses"]


CLIENT_TAGS = [
    "Accounts", "Skills", "Orders", "Lessons", "Chat", "Reviews", "Points", "Notifications",
]  # fmt: skip


def _operations(document):  # type: ignore[no-untyped-def]
    return [
        (verb, path, operation)
        for path, item in document["paths"].items()
        for verb, operation in item.items()
    ]


async def test_every_operation_is_named_typed_and_lists_its_problems(api):
    document = (await api.get("/api/schema/")).json()
    from skillswap.app import collect_routes
    from skillswap.http.operations import declared_operation

    routes = collect_routes()
    class_names = {spec.handler_class.__name__ for spec in routes}
    operations = _operations(document)
    # Every declared handler method is in the document, once (and nothing undeclared is).
    declared = [
        (spec.regex.pattern, verb)
        for spec in routes
        for verb in ("get", "post", "put", "patch", "delete")
        if declared_operation(getattr(spec.handler_class, verb, None)) is not None
    ]
    assert len(operations) == len(declared) >= 73
    ids = [operation["operationId"] for _, _, operation in operations]
    assert len(set(ids)) == len(ids)
    assert set(ids).isdisjoint(class_names)
    assert all(re.fullmatch(r"[a-z][A-Za-z]+", name) for name in ids), ids
    for verb, path, operation in operations:
        where = f"{verb.upper()} {path} ({operation['operationId']})"
        assert len(operation["tags"]) == 1, where
        responses = operation["responses"]
        successes = [status for status in responses if status.startswith("2")]
        assert successes, where
        for status in successes:
            content = responses[status].get("content")
            if status == "204":
                assert content is None, where
                continue
            if "application/json" not in content:  # a download: one file of a named type
                [(_media_type, file)] = content.items()
                assert file["schema"] == {"type": "string", "format": "binary"}, where
                continue
            schema = content["application/json"]["schema"]
            assert set(schema) == {"$ref"}, where  # a named model, never a bare object
        problems = [status for status in responses if status[0] in "45" or status == "default"]
        assert "400" in problems and "default" in problems, where  # unknown query arguments
        if operation.get("security") != []:  # needs a user (public ones may still say 401)
            assert "401" in problems, where
        for status in problems:
            problem = responses[status]["content"]["application/problem+json"]["schema"]
            assert problem == {"$ref": "#/components/schemas/Problem"}, where


async def test_operation_ids_are_the_names_a_client_calls(api):
    document = (await api.get("/api/schema/")).json()
    named = {
        (verb, path): operation["operationId"] for verb, path, operation in _operations(document)
    }
    assert named[("get", "/api/skills/")] == "listSkills"
    assert named[("post", "/api/skills/")] == "createSkill"
    assert named[("get", "/api/skills/categories/")] == "listCategories"
    assert named[("post", "/api/points/orders/")] == "placeOrder"
    assert named[("get", "/api/points/orders/{order_id}/")] == "getOrder"
    assert named[("put", "/api/points/orders/{order_id}/")] == "actOnOrder"
    assert named[("post", "/api/auth/register/")] == "register"
    assert named[("post", "/api/auth/login/")] == "login"
    assert named[("post", "/api/chat/rooms/{room_id}/send/")] == "sendMessage"
    assert named[("get", "/healthz")] == "getHealth"


async def test_a_page_types_its_results_and_its_links(api):
    document = (await api.get("/api/schema/")).json()
    schemas = document["components"]["schemas"]
    listing = document["paths"]["/api/skills/"]["get"]
    ref = listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/SkillOutPage"
    page = schemas["SkillOutPage"]
    assert page["required"] == ["count", "next", "previous", "results"]
    assert page["additionalProperties"] is False
    assert page["properties"]["results"] == {
        "items": {"$ref": "#/components/schemas/SkillOut"},
        "title": "Results",
        "type": "array",
    }
    assert {"page", "page_size"} <= {p["name"] for p in listing["parameters"]}
    skill = schemas["SkillOut"]
    assert skill["additionalProperties"] is False
    assert skill["properties"]["owner"] == {"$ref": "#/components/schemas/SkillOwner"}
    assert set(skill["required"]) == set(skill["properties"])
    order = schemas["OrderOut"]
    # On a single order's read only: optional, and never null.
    assert {"history", "reviews"}.isdisjoint(order["required"])
    assert order["properties"]["history"]["type"] == "array"


async def test_the_image_upload_declares_its_file_field(api):
    document = (await api.get("/api/schema/")).json()
    upload = document["paths"]["/api/skills/{skill_id}/images/"]["post"]
    form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form == {
        "type": "object",
        "required": ["image"],
        "properties": {"image": {"type": "string", "format": "binary"}},
    }
    path_parameter = upload["parameters"][0]
    assert path_parameter == {
        "name": "skill_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }


async def test_tags_put_the_client_groups_first(api):
    document = (await api.get("/api/schema/")).json()
    order = [tag["name"] for tag in document["tags"]]
    assert order == [*CLIENT_TAGS, "Admin", "Operations"]
    first_seen: list[str] = []
    for _, _, operation in _operations(document):
        if operation["tags"][0] not in first_seen:
            first_seen.append(operation["tags"][0])
    assert first_seen == order  # the paths come in the same order


async def test_every_api_route_appears_in_the_schema(api, server):
    """No endpoint is left out of the document."""
    import re

    from skillswap.app import collect_routes

    document = (await api.get("/api/schema/")).json()
    documented = set(document["paths"])
    for spec in collect_routes():
        pattern = spec.regex.pattern
        if not pattern.startswith("/api/") or pattern.startswith(
            ("/api/schema", "/api/docs", "/api/redoc")
        ):
            continue
        shape = re.sub(r"\([^()]*\)", "{}", pattern.rstrip("$").removesuffix("/?")).replace(
            "\\", ""
        )
        assert any(
            re.sub(r"\{[^}]+\}", "{}", path).rstrip("/") == shape.rstrip("/") for path in documented
        ), pattern


async def test_docs_pages_are_served_with_local_assets(api):
    swagger = await api.get("/api/docs/")
    assert swagger.status_code == 200
    assert swagger.headers["content-type"].startswith("text/html")
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in swagger.text
    redoc = await api.get("/api/redoc/")
    assert redoc.status_code == 200
    assert "redoc.standalone.js" in redoc.text
    asset = await api.get("/static/vendor/swagger-ui/swagger-ui.css")
    assert asset.status_code == 200


@needs_chromium
async def test_swagger_ui_and_redoc_render_the_api_in_a_real_browser(server):
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await launch_chromium(p)
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{server}/api/docs/")
            await page.wait_for_selector("text=/api/auth/register/", timeout=15000)
            assert await page.locator(".opblock").count() > 5
            await page.goto(f"{server}/api/redoc/")
            await page.wait_for_selector("text=SkillSwap API", timeout=15000)
            assert errors == []
        finally:
            await browser.close()
