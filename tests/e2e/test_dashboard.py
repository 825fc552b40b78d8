"""The operators' dashboard over real HTTP: sign-in, its cookie, its timeouts, xsrf, the
security headers, and every form's effect as the API then shows it, with its audit row."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

WRONG = "Wrong email or password, or not an administrator."


class Dashboard:
    """A browser's view of the dashboard: a cookie jar, forms posted with their _xsrf."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(path, **kwargs)

    def xsrf(self) -> str:
        token = self.client.cookies.get("_xsrf")
        assert token, "no _xsrf cookie yet: GET a page first"
        return str(token)

    async def post(self, path: str, data: dict[str, Any], **kwargs: Any) -> httpx.Response:
        """Post a form as the page's own form does (its _xsrf field included)."""
        if "_xsrf" not in self.client.cookies:
            await self.client.get("/admin/login")
        return await self.client.post(path, data={"_xsrf": self.xsrf(), **data}, **kwargs)

    async def sign_in(self, email: str, password: str) -> httpx.Response:
        await self.client.get("/admin/login")
        return await self.post("/admin/login", {"email": email, "password": password})


@contextlib.asynccontextmanager
async def dashboard(server: str) -> AsyncIterator[Dashboard]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as client:
        yield Dashboard(client)


@pytest.fixture
async def admin(make_user):  # type: ignore[no-untyped-def]
    return await make_user(admin=True)


@pytest.fixture
async def signed_in(server, admin):  # type: ignore[no-untyped-def]
    async with dashboard(server) as page:
        response = await page.sign_in(admin.email, admin.password)
        assert response.status_code == 303, response.text
        yield page


# -- signing in ----------------------------------------------------------------------------------


async def test_an_administrator_signs_in_and_sees_the_overview(server, admin):
    async with dashboard(server) as page:
        response = await page.sign_in(admin.email, admin.password)
        assert response.status_code == 303
        assert response.headers["Location"] == "/admin/"
        overview = await page.get("/admin/")
        assert overview.status_code == 200
        assert 'action="/admin/logout"' in overview.text
        assert '<html lang="en" dir="ltr">' in overview.text
