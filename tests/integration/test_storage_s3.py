"""The S3 storage against a real S3 server (moto's server mode, over HTTP on this machine)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from skillswap.settings import ConfigError, Settings
from skillswap.storage import S3Storage, open_s3_storage, open_storage
from tests.s3_support import ACCESS_KEY_ID, REGION, S3Server, s3_server

__all__ = ["s3_server"]  # the fixture, imported for this module

PNG_KEY = "skills/1/0123456789abcdef01234567.png"


class Clock:
    """A clock the test sets (presigned URLs are signed as of its time)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@contextlib.asynccontextmanager
async def storage_on(settings: Settings, clock: Clock | None = None) -> AsyncIterator[S3Storage]:
    async with contextlib.AsyncExitStack() as resources:
        yield await open_s3_storage(settings, resources, clock=clock)


async def test_save_exists_url_and_delete(s3_server: S3Server, settings: Settings) -> None:
    bucket = await s3_server.new_bucket()
    async with storage_on(s3_server.settings(settings, bucket)) as storage:
        assert not await storage.exists(PNG_KEY)
        await storage.save(PNG_KEY, b"\x89PNG not really", content_type="image/png")
        assert await storage.exists(PNG_KEY)
        assert await s3_server.keys(bucket) == [PNG_KEY]
        async with s3_server.client() as client:
            head = await client.head_object(Bucket=bucket, Key=PNG_KEY)
        assert head["ContentType"] == "image/png"
        assert head["CacheControl"] == "public, max-age=31536000, immutable"

        async with httpx.AsyncClient() as http:
            fetched = await http.get(storage.url(PNG_KEY))
        assert fetched.status_code == 200
        assert fetched.content == b"\x89PNG not really"
        assert fetched.headers["content-type"] == "image/png"

        await storage.delete(PNG_KEY)
        assert not await storage.exists(PNG_KEY)
        assert await s3_server.keys(bucket) == []
        await storage.delete(PNG_KEY)  # deleting a missing key is not an error


async def test_a_presigned_url_is_the_object_path_with_a_signature(
    s3_server: S3Server, settings: Settings
) -> None:
    bucket = await s3_server.new_bucket()
    clock = Clock(datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))
    configured = s3_server.settings(settings, bucket, s3_presign_seconds=600)
    async with storage_on(configured, clock) as storage:
        await storage.save(PNG_KEY, b"bytes", content_type="image/png")
        url = storage.url(PNG_KEY)
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == s3_server.endpoint_url
        assert parts.path == f"/{bucket}/{PNG_KEY}"  # path style: any S3-compatible server
        query = {name: values[0] for name, values in parse_qs(parts.query).items()}
        # Signed as of the start of the 10-minute window, valid for two windows: whoever gets
        # it has at least 10 minutes left, and it is the same URL for the whole window.
        assert query["X-Amz-Date"] == "20300102T030000Z"
        assert query["X-Amz-Expires"] == "1200"
        assert query["X-Amz-Credential"] == f"{ACCESS_KEY_ID}/20300102/{REGION}/s3/aws4_request"
        assert query["X-Amz-SignedHeaders"] == "host"
        assert len(query["X-Amz-Signature"]) == 64

        clock.now += timedelta(minutes=5, seconds=54)  # 03:09:59, still the same window
        assert storage.url(PNG_KEY) == url
        clock.now += timedelta(seconds=1)  # 03:10:00, the next window
        later = storage.url(PNG_KEY)
        assert later != url
        assert parse_qs(urlsplit(later).query)["X-Amz-Date"] == ["20300102T031000Z"]

        async with httpx.AsyncClient() as http:
            fetched = await http.get(url)
            unsigned = await http.get(url.split("?", 1)[0])
        assert fetched.status_code == 200 and fetched.content == b"bytes"
        assert unsigned.status_code == 403  # the bucket is private: the signature lets it in


async def test_with_a_public_base_url_the_url_is_the_base_and_the_key(
    s3_server: S3Server, settings: Settings
) -> None:
    bucket = await s3_server.new_bucket()
    await s3_server.make_public(bucket)
    public = f"{s3_server.endpoint_url}/{bucket}"  # no trailing slash: one is added
    # A public base needs no keys: the client may take the default credential chain.
    configured = s3_server.settings(settings, bucket, s3_public_base_url=public)
    async with storage_on(configured) as storage:
        await storage.save(PNG_KEY, b"public bytes", content_type="image/png")
        assert storage.url(PNG_KEY) == f"{public}/{PNG_KEY}"
        async with httpx.AsyncClient() as http:
            fetched = await http.get(storage.url(PNG_KEY))
        assert fetched.status_code == 200 and fetched.content == b"public bytes"


async def test_keys_that_could_escape_are_refused_before_any_request(
    s3_server: S3Server, settings: Settings
) -> None:
    bucket = await s3_server.new_bucket()
    async with storage_on(s3_server.settings(settings, bucket)) as storage:
        for key in ("../other-bucket/x.png", "skills/../../x.png", "Skills/X.PNG", "a b.png"):
            with pytest.raises(ValueError):
                await storage.save(key, b"x", content_type="image/png")
            with pytest.raises(ValueError):
                storage.url(key)
    assert await s3_server.keys(bucket) == []


async def test_a_missing_bucket_is_an_error_not_a_missing_key(
    s3_server: S3Server, settings: Settings
) -> None:
    from botocore.exceptions import ClientError

    async with storage_on(s3_server.settings(settings, "no-such-bucket-here")) as storage:
        with pytest.raises(ClientError):
            await storage.save(PNG_KEY, b"x", content_type="image/png")


async def test_the_backend_is_chosen_by_settings(s3_server: S3Server, settings: Settings) -> None:
    async with contextlib.AsyncExitStack() as resources:
        local = await open_storage(settings, resources)
        assert type(local).__name__ == "LocalStorage"
        bucket = await s3_server.new_bucket()
        s3 = await open_storage(s3_server.settings(settings, bucket), resources)
        assert isinstance(s3, S3Storage) and s3.bucket == bucket
        with pytest.raises(ConfigError, match="S3_BUCKET"):
            await open_storage(s3_server.settings(settings, ""), resources)
