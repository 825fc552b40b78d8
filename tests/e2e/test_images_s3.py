"""Skill images through the real app with STORAGE_BACKEND=s3, on a real S3 server (moto's)."""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import httpx
from PIL import Image

from skillswap.storage import S3Storage
from tests.conftest import api_client, extra_server
from tests.s3_support import S3Server, s3_server

__all__ = ["s3_server"]  # the fixture, imported for this module


def photo(size: tuple[int, int] = (30, 20)) -> bytes:
    image = Image.new("RGB", size, (200, 40, 40))
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


async def test_an_image_is_stored_in_the_bucket_served_from_it_and_deleted_from_it(
    s3_server: S3Server, settings, make_user, make_skill
):
    bucket = await s3_server.new_bucket()
    owner = await make_user()
    skill = await make_skill(owner)
    async with (
        extra_server(s3_server.settings(settings, bucket)) as (url, deps),
        api_client(url) as api,
    ):
        assert isinstance(deps.storage, S3Storage)  # chosen by STORAGE_BACKEND alone
        uploaded = await api.post(
            f"/api/skills/{skill['id']}/images/",
            token=owner.access,
            files={"image": ("photo.jpg", photo(), "image/jpeg")},
        )
        assert uploaded.status_code == 201, uploaded.text
        image = uploaded.json()
        assert (image["content_type"], image["width"], image["height"]) == ("image/jpeg", 30, 20)
        [key] = await s3_server.keys(bucket)
        assert key.startswith(f"skills/{skill['id']}/") and key.endswith(".jpg")
        # A presigned URL of the store itself, not of the app.
        parts = urlsplit(image["url"])
        assert f"{parts.scheme}://{parts.netloc}" == s3_server.endpoint_url
        assert parts.path == f"/{bucket}/{key}" and "X-Amz-Signature=" in parts.query

        stored = await s3_server.read(bucket, key)
        assert b"Canon" not in stored  # re-encoded before it reached the bucket
        async with httpx.AsyncClient() as http:
            fetched = await http.get(image["url"])
        assert fetched.status_code == 200
        assert fetched.content == stored
        assert fetched.headers["content-type"] == "image/jpeg"
        # The skill lists the same URL (the same signing window), on this node...
        detail = await api.get(f"/api/skills/{skill['id']}/")
        assert [i["url"] for i in detail.json()["images"]] == [image["url"]]
        # ... and the app's /media/ serves nothing: the files are not on its disk.
        assert (await api.get(f"/media/{key}")).status_code == 404

        deleted = await api.delete(
            f"/api/skills/{skill['id']}/images/{image['id']}/", token=owner.access
        )
        assert deleted.status_code == 204
        assert await s3_server.keys(bucket) == []
        assert not await deps.storage.exists(key)
        async with httpx.AsyncClient() as http:
            gone = await http.get(image["url"])
        assert gone.status_code == 404
        assert (await api.get(f"/api/skills/{skill['id']}/")).json()["images"] == []


async def test_with_a_public_base_url_the_api_hands_out_plain_urls(
    s3_server: S3Server, settings, make_user, make_skill
):
    bucket = await s3_server.new_bucket()
    await s3_server.make_public(bucket)
    public = f"{s3_server.endpoint_url}/{bucket}/"
    owner = await make_user()
    skill = await make_skill(owner)
    configured = s3_server.settings(settings, bucket, s3_public_base_url=public)
    async with extra_server(configured) as (url, _deps), api_client(url) as api:
        uploaded = await api.post(
            f"/api/skills/{skill['id']}/images/",
            token=owner.access,
            content=photo((8, 8)),
            headers={"Content-Type": "image/jpeg"},
        )
        assert uploaded.status_code == 201, uploaded.text
        [key] = await s3_server.keys(bucket)
        assert uploaded.json()["url"] == public + key
        listed = await api.get(f"/api/skills/?owner={owner.id}")
        assert listed.status_code == 200
        urls = [i["url"] for s in listed.json()["results"] for i in s["images"]]
        assert urls == [public + key]
        async with httpx.AsyncClient() as http:
            fetched = await http.get(public + key)
        assert fetched.status_code == 200
        assert fetched.content == await s3_server.read(bucket, key)


async def test_a_refused_upload_leaves_nothing_in_the_bucket(
    s3_server: S3Server, settings, make_user, make_skill
):
    bucket = await s3_server.new_bucket()
    owner = await make_user()
    other = await make_user()
    skill = await make_skill(owner)
    async with (
        extra_server(s3_server.settings(settings, bucket)) as (url, _deps),
        api_client(url) as api,
    ):
        files = {"image": ("a.jpg", photo(), "image/jpeg")}
        refused = await api.post(
            f"/api/skills/{skill['id']}/images/", token=other.access, files=files
        )
        assert refused.status_code == 403
        not_an_image = await api.post(
            f"/api/skills/{skill['id']}/images/",
            token=owner.access,
            files={"image": ("a.jpg", b"GIF89a but not really", "image/gif")},
        )
        assert not_an_image.status_code == 415
        assert await s3_server.keys(bucket) == []
