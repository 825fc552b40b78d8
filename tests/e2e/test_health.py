"""Liveness and readiness."""

from __future__ import annotations

import httpx

from tests.conftest import BACKENDS, extra_server


async def test_healthz_is_public_and_ok(api):
    response = await api.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_each_backend(api):
    response = await api.get("/readyz")
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert checks["database"] == "ok"
    if BACKENDS.redis:
        assert checks["redis"] == "ok"


async def test_readyz_names_what_is_down(settings):
    """A node whose Redis is unreachable answers 503 naming it."""
    broken = settings.with_overrides(redis_url="redis://127.0.0.1:1/0")
    async with extra_server(broken) as (url, _deps), httpx.AsyncClient() as client:
        response = await client.get(f"{url}/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "not_ready"
    assert body["down"] == ["redis"]
    assert body["checks"]["database"] == "ok"
