"""Requests over the size limits, or framed wrongly: a problem+json answer the client can read."""

from __future__ import annotations

import asyncio
import io
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from skillswap.http.transport import HEADER_READ_CAP, MAX_HEADER_BYTES
from tests.conftest import media_folder

LOGIN = "/api/auth/login/"
JSON = {"Content-Type": "application/json"}


def assert_refused(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json; charset=utf-8"
    assert response.headers["connection"] == "close"
    problem = response.json()
    assert (problem["status"], problem["code"]) == (status, code)
    assert problem["request_id"] == response.headers["x-request-id"]
    assert len(problem["request_id"]) == 32
    return problem


async def raw_exchange(server: str, request: bytes) -> bytes:
    """Send `request` as bytes and read the whole answer, until the server closes."""
    parts = urlsplit(server)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def test_a_body_far_over_the_limit_is_a_413_problem_the_client_reads(api, deps):
    body = b"x" * (40 * 1024 * 1024)
    response = await api.post(
        LOGIN, content=body, headers={**JSON, "X-Request-ID": "big-body-0001"}
    )
    assert response.status_code == 413
    problem = response.json()
    assert (problem["status"], problem["code"]) == (413, "payload_too_large")
    assert problem["title"] == "Request too large"
    assert problem["instance"] == LOGIN
    assert problem["request_id"] == "big-body-0001" == response.headers["x-request-id"]
    assert response.headers["content-type"] == "application/problem+json; charset=utf-8"
    assert response.headers["connection"] == "close"


async def test_a_body_a_few_bytes_over_the_limit_is_refused_and_one_at_the_limit_is_read(api, deps):
    limit = deps.settings.max_body_bytes
    over = await api.post(LOGIN, content=b"{" + b" " * limit, headers=JSON)
    assert_refused(over, 413, "payload_too_large")
    # Exactly at the limit the body reaches the handler, which finds it is not JSON.
    at = await api.post(LOGIN, content=b"{" + b" " * (limit - 1), headers=JSON)
    assert (at.status_code, at.json()["code"]) == (400, "malformed_json")


async def test_the_refusal_is_in_the_callers_language(api, deps):
    response = await api.post(
        LOGIN,
        content=b"x" * (deps.settings.max_body_bytes + 1),
        headers={**JSON, "Accept-Language": "ar"},
    )
    problem = assert_refused(response, 413, "payload_too_large")
    assert problem["title"] == "الطلب كبير جدًا"


async def chunks(total: int, size: int = 65_536) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b"x" * piece


async def test_a_chunked_body_that_grows_past_the_limit_is_a_413(api, deps):
    response = await api.post(LOGIN, content=chunks(40 * 1024 * 1024), headers=JSON)
    assert_refused(response, 413, "payload_too_large")


async def test_a_chunked_body_in_one_huge_chunk_is_a_413(api, deps):
    response = await api.post(
        LOGIN, content=chunks(8 * 1024 * 1024, size=8 * 1024 * 1024), headers=JSON
    )
    assert_refused(response, 413, "payload_too_large")


async def test_a_chunked_body_under_the_limit_reaches_the_handler(api):
    async def body() -> AsyncIterator[bytes]:
        yield b'{"username": "nobody-here", '
        yield b'"password": "not the password"}'

    response = await api.post(LOGIN, content=body(), headers=JSON)
    assert (response.status_code, response.json()["code"]) == (401, "invalid_credentials")


async def test_a_client_that_asks_first_is_refused_before_it_sends_the_body(server, deps):
    declared = 10 * 1024 * 1024 * 1024  # ten gigabytes, never sent
    answer = await raw_exchange(
        server,
        (
            f"POST {LOGIN} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared}\r\nExpect: 100-continue\r\n\r\n"
        ).encode(),
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n")
    assert b"100" not in head.split(b"\r\n")[0]
    assert b"\r\nConnection: close" in head
    assert b'"code":"payload_too_large"' in body


async def test_a_client_that_stops_sending_is_cut_off_after_the_linger(server, deps, monkeypatch):
    from skillswap.http import transport

    monkeypatch.setattr(transport, "LINGER_SECONDS", 0.5)
    started = time.monotonic()
    # Declares 10 MB, sends 1 KB and then nothing: the answer comes at once, the close soon.
    answer = await raw_exchange(
        server,
        f"POST {LOGIN} HTTP/1.1\r\nHost: test\r\nContent-Length: 10485760\r\n\r\n".encode()
        + b"x" * 1024,
    )
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert time.monotonic() - started < 5


async def test_headers_over_the_limit_are_a_431_problem(api):
    response = await api.get("/healthz", headers={"X-Filler": "a" * (MAX_HEADER_BYTES + 1)})
    assert_refused(response, 431, "request_headers_too_large")
    fine = await api.get("/healthz", headers={"X-Filler": "a" * (MAX_HEADER_BYTES // 2)})
    assert fine.status_code == 200


async def test_headers_past_what_the_server_reads_end_the_connection(server):
    filler = b"a" * (HEADER_READ_CAP + 1)
    answer = await raw_exchange(
        server, b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Filler: " + filler + b"\r\n\r\n"
    )
    assert answer == b""


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: twelve\r\n",
        b"Content-Length: 5, 6\r\n",
        b"Content-Length: 5\r\nContent-Length: 6\r\n",
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: gzip\r\n",
    ],
)
async def test_a_body_framed_wrongly_is_a_400_problem(server, framing):
    answer = await raw_exchange(
        server,
        b"POST " + LOGIN.encode() + b" HTTP/1.1\r\nHost: test\r\n" + framing + b"\r\nhello",
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"\r\nContent-Type: application/problem+json; charset=utf-8" in head
    assert b'"code":"malformed_request"' in body
    assert b'"request_id":"' in body


async def test_the_refusal_is_readable_by_an_allowed_web_origin(settings):
    from tests.conftest import extra_server

    web = "https://app.example"
    async with (
        extra_server(settings.with_overrides(cors_origins=(web,))) as (url, _deps),
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        response = await client.post(
            LOGIN,
            content=b"x" * (settings.max_body_bytes + 1),
            headers={**JSON, "Origin": web},
        )
    assert_refused(response, 413, "payload_too_large")
    assert response.headers["access-control-allow-origin"] == web


# -- uploads keep their own limit ----------------------------------------------------------------


@pytest.fixture
def media_dir(deps, tmp_path: Path):
    with media_folder(deps, tmp_path):
        yield tmp_path


def noisy_png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, "PNG")
    return buffer.getvalue()


async def test_an_upload_larger_than_a_json_body_may_be_is_accepted(
    api, deps, make_user, make_skill, media_dir
):
    owner = await make_user()
    skill = await make_skill(owner)
    image = noisy_png(700)
    assert deps.settings.max_body_bytes < len(image) < deps.settings.max_upload_bytes
    response = await api.post(
        f"/api/skills/{skill['id']}/images/",
        token=owner.access,
        files={"image": ("noise.png", image, "image/png")},
    )
    assert response.status_code == 201, response.text


async def test_an_upload_far_over_its_own_limit_is_a_413_before_it_is_read(
    api, deps, make_user, make_skill, media_dir
):
    owner = await make_user()
    skill = await make_skill(owner)
    response = await api.post(
        f"/api/skills/{skill['id']}/images/",
        token=owner.access,
        files={"image": ("huge.png", b"\0" * (40 * 1024 * 1024), "image/png")},
    )
    assert_refused(response, 413, "payload_too_large")
    assert not list(media_dir.rglob("*.*"))
