"""Web clients on other origins (CORS) and the host names a node answers for."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import extra_server

WEB = "https://app.skillswap.example"


@pytest.fixture
async def strict_node(settings) -> AsyncIterator[str]:
    configured = settings.with_overrides(
        cors_origins=(WEB,), allowed_hosts=("127.0.0.1", "api.skillswap.example")
    )
    async with extra_server(configured) as (url, _deps):
        yield url


async def test_preflight_from_a_configured_origin_lists_methods_and_headers(strict_node):
    async with httpx.AsyncClient(base_url=strict_node) as client:
        response = await client.options(
            "/api/auth/profile/",
            headers={
                "Origin": WEB,
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == WEB
    assert set(response.headers["Access-Control-Allow-Methods"].split(", ")) == {
        "GET",
        "PUT",
        "PATCH",
        "DELETE",  # asks for the account's deletion, as POST /api/auth/account/delete/ does
    }
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert "Idempotency-Key" in response.headers["Access-Control-Allow-Headers"]


async def test_responses_and_errors_carry_cors_headers_only_for_configured_origins(strict_node):
    async with httpx.AsyncClient(base_url=strict_node) as client:
        allowed = await client.get("/api/auth/profile/", headers={"Origin": WEB})
        other = await client.get("/api/auth/profile/", headers={"Origin": "https://evil.example"})
    assert allowed.status_code == 401  # the error itself is readable by the web app
    assert allowed.headers["Access-Control-Allow-Origin"] == WEB
    assert "X-Request-ID" in allowed.headers["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Origin" not in other.headers


async def test_a_host_name_that_is_not_configured_is_refused(strict_node):
    async with httpx.AsyncClient(base_url=strict_node) as client:
        refused = await client.get("/healthz", headers={"Host": "attacker.example"})
        served = await client.get("/healthz", headers={"Host": "api.skillswap.example"})
    assert refused.status_code == 400
    assert refused.json()["code"] == "host_not_allowed"
    assert served.status_code == 200
