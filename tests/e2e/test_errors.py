"""Failures the client sees: no traceback ever, a request id to quote, problem+json."""

from __future__ import annotations

import logging

import httpx

from skillswap.http.base import BaseHandler, public, route
from tests.conftest import extra_server


class _Explodes(BaseHandler):
    @public
    async def get(self) -> None:
        """Fail the way a bug would."""
        raise RuntimeError("secret internal detail")


async def test_unexpected_errors_are_500_problems_with_request_id_and_no_traceback(
    settings, caplog
):
    async with extra_server(settings, routes=[route("/boom/", _Explodes)]) as (url, _deps):
        with caplog.at_level(logging.ERROR, logger="skillswap.http"):
            async with httpx.AsyncClient() as client:
                response = await client.get(
                    f"{url}/boom/",
                    headers={"X-Request-ID": "req-abc-12345", "Accept-Language": "ar"},
                )
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["X-Request-ID"] == "req-abc-12345"
    body = response.json()
    assert body["code"] == "internal_error"
    assert body["request_id"] == "req-abc-12345"
    assert body["title"] == "خطأ داخلي في الخادم"
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    assert any("req-abc-12345" in record.getMessage() for record in caplog.records)


async def test_a_request_id_that_is_not_sane_is_replaced(api):
    response = await api.get("/healthz", headers={"X-Request-ID": "bad id; with spaces"})
    assert response.headers["X-Request-ID"] != "bad id with spaces"
    assert len(response.headers["X-Request-ID"]) == 32


async def test_validation_errors_name_each_field(api):
    response = await api.post("/api/auth/login/", json={"password": ""})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_error"
    assert "password" in body["errors"]


async def test_a_json_body_that_is_not_an_object_is_refused(api):
    response = await api.post("/api/auth/login/", json=[1, 2, 3])
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"


async def test_wrong_content_type_is_415(api):
    response = await api.post(
        "/api/auth/login/",
        content=b"username=a",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
