"""The OpenAPI document and the documentation pages."""

from __future__ import annotations

import os
import shutil

import pytest
from openapi_spec_validator import validate as validate_openapi


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


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true", reason="no chromium on this machine"
)
async def test_swagger_ui_and_redoc_render_the_api_in_a_real_browser(server):
    from playwright.async_api import async_playwright

    assert CHROMIUM, "CI must have chromium"
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
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
