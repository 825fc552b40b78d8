"""Listing a skill, changing it, pausing, deleting, its images, and what others may see of it."""

from __future__ import annotations

import asyncio
import contextlib
import io
from pathlib import Path

import httpx
import pytest
from PIL import Image
from sqlalchemy import update

from skillswap.models import Skill
from tests.conftest import Api, extra_server, media_folder


class _Asks:
    """An `OpenOrders` answering with `check`, for an app of its own."""

    def __init__(self, check) -> None:  # type: ignore[no-untyped-def]
        self.check = check

    async def skill_has_open_orders(self, session, skill_id: int) -> bool:  # type: ignore[no-untyped-def]
        return bool(await self.check(session, skill_id))


@contextlib.asynccontextmanager
async def node_asking(settings, check):  # type: ignore[no-untyped-def]
    """An Api on another app of this deployment whose skill deletion asks `check`."""
    async with (
        extra_server(settings, open_orders=_Asks(check)) as (url, _deps),
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield Api(client)


def png_bytes(size: tuple[int, int] = (4, 3), fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buffer, fmt)
    return buffer.getvalue()


async def test_create_returns_the_full_skill_with_normalised_tags(api, make_user, make_category):
    owner = await make_user(display_name="Huda")
    category = await make_category()
    response = await api.post(
        "/api/skills/",
        token=owner.access,
        json={
            "title_en": "  Arabic calligraphy  ",
            "description_en": "Naskh and Thuluth scripts.",
            "title_ar": "الخط العربي",
            "description_ar": "خط النسخ والثلث.",
            "category_id": category["id"],
            "price_points": 40,
            "tags": ["#Calligraphy", "Arabic Script", "calligraphy"],
            "level": "intermediate",
            "languages": ["AR", "en"],
            "delivery_days": 5,
        },
    )
    assert response.status_code == 201, response.text
    skill = response.json()
    assert skill["title"] == "Arabic calligraphy"
    assert skill["title_ar"] == "الخط العربي"
    assert skill["tags"] == ["calligraphy", "arabic-script"]
    assert skill["languages"] == ["ar", "en"]
    assert skill["category"]["id"] == category["id"]
    assert skill["status"] == "active"
    assert skill["rating_average"] is None and skill["rating_count"] == 0
    assert skill["orders_completed"] == 0
    assert skill["owner"]["display_name"] == "Huda"
    assert skill["created_at"].endswith("Z")

    fetched = await api.get(f"/api/skills/{skill['id']}/")
    assert fetched.status_code == 200
    assert fetched.json() == skill


async def test_response_speaks_the_request_language_and_falls_back(api, make_user, make_skill):
    owner = await make_user()
    both = await make_skill(
        owner, title_ar="دروس الغيتار", description_ar="أوتار وإيقاع للمبتدئين."
    )
    english_only = await make_skill(owner)
    arabic = await api.get(f"/api/skills/{both['id']}/", headers={"Accept-Language": "ar"})
    assert arabic.json()["title"] == "دروس الغيتار"
    assert arabic.json()["description"] == "أوتار وإيقاع للمبتدئين."
    assert arabic.json()["language"] == "ar"
    assert arabic.json()["category"]["name"].startswith("فئة")
    english = await api.get(f"/api/skills/{both['id']}/", headers={"Accept-Language": "en"})
    assert english.json()["title"] == "Guitar lessons"
    fallback = await api.get(
        f"/api/skills/{english_only['id']}/", headers={"Accept-Language": "ar"}
    )
    assert fallback.json()["title"] == "Guitar lessons"
    assert fallback.json()["language"] == "en"


async def test_the_owner_is_shown_as_a_public_profile_only(api, make_user, make_skill):
    owner = await make_user(display_name="Salem")
    await api.patch("/api/auth/profile/", token=owner.access, json={"phone": "+20 100 555 0199"})
    skill = await make_skill(owner)
    response = await api.get(f"/api/skills/{skill['id']}/")
    assert set(response.json()["owner"]) == {
        "id",
        "username",
        "display_name",
        "avatar_url",
        "is_verified",
        "rating_average",
        "rating_count",
    }
    for private in (owner.email, "555 0199", "balance", "is_admin", "password"):
        assert private not in response.text
    listed = await api.get(f"/api/skills/?owner={owner.id}")
    assert owner.email not in listed.text and "555 0199" not in listed.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"price_points": 0}, "price_points"),
        ({"price_points": 100_001}, "price_points"),
        ({"price_points": 2.5}, "price_points"),
        ({"price_points": "10"}, "price_points"),
        ({"delivery_days": 0}, "delivery_days"),
        ({"level": "guru"}, "level"),
        ({"languages": ["english"]}, "languages"),
        ({"tags": ["x"] * 11}, "tags"),
        ({"tags": ["   "]}, "tags"),
        ({"tags": ["a" * 31]}, "tags"),
        ({"title_en": "t" * 121}, "title_en"),
        ({"surprise": 1}, "surprise"),
        ({"title_en": "nul\u0000byte"}, "title_en"),
        ({"tags": ["ok", "bad\u0000"]}, "tags.1"),
        ({"category_id": 2**63}, "category_id"),
    ],
)
async def test_bad_fields_are_refused_per_field(api, make_user, make_category, body, field):
    owner = await make_user()
    category = await make_category()
    base = {
        "title_en": "Piano",
        "description_en": "Scales.",
        "category_id": category["id"],
        "price_points": 10,
    }
    response = await api.post("/api/skills/", token=owner.access, json={**base, **body})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "validation_error"
    assert field in response.json()["errors"]


async def test_a_title_and_description_in_one_language_are_required(api, make_user, make_category):
    owner = await make_user()
    category = await make_category()
    response = await api.post(
        "/api/skills/",
        token=owner.access,
        json={
            "title_en": "Piano",
            "description_ar": "سلالم",
            "category_id": category["id"],
            "price_points": 10,
        },
    )
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"title_en", "title_ar"}
    missing = await api.post("/api/skills/", token=owner.access, json={"title_en": "Piano"})
    assert missing.status_code == 400, missing.text
    assert set(missing.json()["errors"]) == {"category_id", "price_points"}


async def test_unknown_or_closed_category_is_refused(api, make_user, make_category, deps):
    owner = await make_user()
    closed = await make_category()
    from skillswap.models import Category

    async with deps.db.uow() as uow:
        await uow.session.execute(
            update(Category).where(Category.id == closed["id"]).values(is_active=False)
        )
        await uow.commit()
    for category_id in (closed["id"], 999_999_999):
        response = await api.post(
            "/api/skills/",
            token=owner.access,
            json={
                "title_en": "Piano",
                "description_en": "Scales.",
                "category_id": category_id,
                "price_points": 10,
            },
        )
        assert response.status_code == 400
        assert "category_id" in response.json()["errors"]


async def test_listing_needs_a_signed_in_user(api, make_category):
    category = await make_category()
    response = await api.post(
        "/api/skills/",
        json={"title_en": "x", "description_en": "y", "category_id": category["id"]},
    )
    assert response.status_code == 401


async def test_same_idempotency_key_replays_the_first_listing(api, make_user, make_category):
    owner = await make_user()
    category = await make_category()
    body = {
        "title_en": "Chess",
        "description_en": "Openings.",
        "category_id": category["id"],
        "price_points": 12,
    }
    headers = {"Idempotency-Key": f"chess-{owner.id}"}
    first = await api.post("/api/skills/", token=owner.access, json=body, headers=headers)
    again = await api.post("/api/skills/", token=owner.access, json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    mine = await api.get("/api/skills/mine/", token=owner.access)
    assert mine.json()["count"] == 1


async def test_only_the_owner_edits_and_deletes(api, make_user, make_skill):
    owner, other = await make_user(), await make_user()
    skill = await make_skill(owner)
    path = f"/api/skills/{skill['id']}/"
    for method, kwargs in (
        ("PATCH", {"json": {"price_points": 1}}),
        (
            "PUT",
            {
                "json": {
                    "title_en": "Mine now",
                    "description_en": "x",
                    "category_id": skill["category"]["id"],
                    "price_points": 1,
                }
            },
        ),
        ("DELETE", {}),
    ):
        refused = await api.request(method, path, token=other.access, **kwargs)
        assert refused.status_code == 403, (method, refused.text)
        assert refused.json()["code"] == "not_owner"
        anonymous = await api.request(method, path, **kwargs)
        assert anonymous.status_code == 401
    unchanged = await api.get(path)
    assert unchanged.json()["price_points"] == skill["price_points"]
    huge = "99999999999999999999"
    assert (await api.get(f"/api/skills/{huge}/")).status_code == 404
    assert (await api.delete(f"/api/skills/{huge}/", token=owner.access)).status_code == 404
    assert (await api.get(f"/api/users/{huge}/skills/")).status_code == 404
    unknown = await api.patch(
        "/api/skills/999999999/", token=owner.access, json={"level": "expert"}
    )
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "skill_not_found"
    assert (await api.get("/api/skills/999999999/")).status_code == 404


async def test_patch_changes_only_what_is_given_and_put_replaces(api, make_user, make_skill):
    owner = await make_user()
    skill = await make_skill(owner, title_ar="بيانو", description_ar="سلالم", tags=["piano"])
    path = f"/api/skills/{skill['id']}/"
    patched = await api.patch(path, token=owner.access, json={"price_points": 25, "tags": ["Jazz"]})
    assert patched.status_code == 200
    assert patched.json()["price_points"] == 25
    assert patched.json()["tags"] == ["jazz"]
    assert patched.json()["title_ar"] == "بيانو"
    assert patched.json()["updated_at"] >= skill["updated_at"]
    replaced = await api.put(
        path,
        token=owner.access,
        json={
            "title_en": "Jazz piano",
            "description_en": "Voicings.",
            "category_id": skill["category"]["id"],
            "price_points": 30,
        },
    )
    assert replaced.status_code == 200
    assert replaced.json()["title_ar"] == "" and replaced.json()["tags"] == []
    emptied = await api.patch(path, token=owner.access, json={"title_en": "", "description_en": ""})
    assert emptied.status_code == 400  # no language left with a title and a description


async def test_owner_pauses_and_reactivates(api, make_user, make_skill):
    owner, stranger = await make_user(), await make_user()
    skill = await make_skill(owner)
    path = f"/api/skills/{skill['id']}/"
    paused = await api.patch(path, token=owner.access, json={"status": "paused"})
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert (await api.get(path)).status_code == 404  # hidden from everyone else
    assert (await api.get(path, token=stranger.access)).status_code == 404
    assert (await api.get(path, token=owner.access)).json()["status"] == "paused"
    listed = await api.get(f"/api/skills/?category={skill['category']['id']}")
    assert listed.json()["count"] == 0
    mine = await api.get("/api/skills/mine/", token=owner.access)
    assert [s["id"] for s in mine.json()["results"]] == [skill["id"]]
    cannot_delete_by_patch = await api.patch(path, token=owner.access, json={"status": "deleted"})
    assert cannot_delete_by_patch.status_code == 400
    active = await api.patch(path, token=owner.access, json={"status": "active"})
    assert active.json()["status"] == "active"
    assert (await api.get(path)).status_code == 200


async def test_delete_is_soft_and_hides_the_skill_everywhere(api, make_user, make_skill, deps):
    owner = await make_user()
    skill = await make_skill(owner)
    path = f"/api/skills/{skill['id']}/"
    deleted = await api.delete(path, token=owner.access)
    assert deleted.status_code == 204
    assert (await api.get(path, token=owner.access)).status_code == 404
    assert (await api.patch(path, token=owner.access, json={"status": "active"})).status_code == 404
    assert (await api.delete(path, token=owner.access)).status_code == 404
    async with deps.db.read() as session:
        row = await session.get(Skill, skill["id"])
    assert row is not None and row.status == "deleted" and row.deleted_at is not None


async def test_deleting_a_skill_with_open_orders_pauses_it_instead(settings, make_user, make_skill):
    owner = await make_user()
    busy = await make_skill(owner)
    idle = await make_skill(owner)
    checked: list[int] = []

    async def has_open_orders(session, skill_id: int) -> bool:
        checked.append(skill_id)
        return skill_id == busy["id"]

    async with node_asking(settings, has_open_orders) as api:
        response = await api.delete(f"/api/skills/{busy['id']}/", token=owner.access)
        assert response.status_code == 200
        assert response.json()["status"] == "paused"
        assert response.json()["open_orders"] is True
        assert "paused" in response.json()["detail"]
        again = await api.delete(f"/api/skills/{busy['id']}/", token=owner.access)
        assert again.status_code == 200 and again.json()["status"] == "paused"
        own_view = await api.get(f"/api/skills/{busy['id']}/", token=owner.access)
        assert own_view.json()["status"] == "paused"
        assert (
            await api.delete(f"/api/skills/{idle['id']}/", token=owner.access)
        ).status_code == 204
        assert checked.count(busy["id"]) == 2 and idle["id"] in checked


async def test_two_concurrent_deletes_delete_once(api, make_user, make_skill):
    owner = await make_user()
    skill = await make_skill(owner)
    results = await asyncio.gather(
        *(api.delete(f"/api/skills/{skill['id']}/", token=owner.access) for _ in range(2))
    )
    assert sorted(r.status_code for r in results) == [204, 404]


# -- images ---------------------------------------------------------------------------------


@pytest.fixture
def media_dir(deps, tmp_path: Path):
    """Uploaded files go to a temporary folder for the test."""
    with media_folder(deps, tmp_path):
        yield tmp_path


async def test_png_and_jpeg_uploads_are_stored_listed_and_served(
    api, make_user, make_skill, media_dir
):
    owner = await make_user()
    skill = await make_skill(owner)
    png = png_bytes((5, 4))
    uploaded = await api.post(
        f"/api/skills/{skill['id']}/images/",
        token=owner.access,
        files={"image": ("photo.txt", png, "text/plain")},  # name and declared type are ignored
    )
    assert uploaded.status_code == 201, uploaded.text
    image = uploaded.json()
    assert (image["content_type"], image["width"], image["height"]) == ("image/png", 5, 4)
    # Absolute, on the host the request came to (no PUBLIC_URL here).
    assert image["url"].startswith(str(api.client.base_url).rstrip("/") + "/media/skills/")
    assert image["url"].endswith(".png")
    jpeg = png_bytes((8, 6), "JPEG")
    raw = await api.post(
        f"/api/skills/{skill['id']}/images/",
        token=owner.access,
        content=jpeg,
        headers={"Content-Type": "image/jpeg"},
    )
    assert raw.status_code == 201 and raw.json()["content_type"] == "image/jpeg"

    detail = await api.get(f"/api/skills/{skill['id']}/")
    assert [i["url"] for i in detail.json()["images"]] == [image["url"], raw.json()["url"]]
    served = await api.get(image["url"])
    assert served.status_code == 200
    assert served.content == png
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert len(list(media_dir.rglob("*.png"))) == 1


async def test_a_text_file_named_png_is_refused(api, make_user, make_skill, media_dir):
    owner = await make_user()
    skill = await make_skill(owner)
    response = await api.post(
        f"/api/skills/{skill['id']}/images/",
        token=owner.access,
        files={"image": ("cat.png", b"just some text, honestly", "image/png")},
    )
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_image"
    assert not list(media_dir.rglob("*.*"))


async def test_an_image_over_the_size_limit_is_refused(api, make_user, make_skill, deps, media_dir):
    owner = await make_user()
    skill = await make_skill(owner)
    too_big = png_bytes() + b"\0" * deps.settings.max_upload_bytes
    response = await api.post(
        f"/api/skills/{skill['id']}/images/",
        token=owner.access,
        files={"image": ("big.png", too_big, "image/png")},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "image_too_large"
    missing = await api.post(f"/api/skills/{skill['id']}/images/", token=owner.access, json={})
    assert missing.status_code == 400 and missing.json()["code"] == "image_missing"


async def test_only_the_owner_adds_and_removes_images(api, make_user, make_skill, media_dir):
    owner, other = await make_user(), await make_user()
    skill = await make_skill(owner)
    files = {"image": ("a.png", png_bytes(), "image/png")}
    refused = await api.post(f"/api/skills/{skill['id']}/images/", token=other.access, files=files)
    assert refused.status_code == 403
    added = await api.post(f"/api/skills/{skill['id']}/images/", token=owner.access, files=files)
    image_path = f"/api/skills/{skill['id']}/images/{added.json()['id']}/"
    assert (await api.delete(image_path, token=other.access)).status_code == 403
    assert (await api.delete(image_path, token=owner.access)).status_code == 204
    assert (await api.delete(image_path, token=owner.access)).status_code == 404
    assert (await api.get(f"/api/skills/{skill['id']}/")).json()["images"] == []
    assert not list(media_dir.rglob("*.png"))
    unknown = await api.post("/api/skills/999999999/images/", token=owner.access, files=files)
    assert unknown.status_code == 404


async def test_a_skill_holds_at_most_eight_images(api, make_user, make_skill, media_dir):
    owner = await make_user()
    skill = await make_skill(owner)
    files = {"image": ("a.png", png_bytes(), "image/png")}
    for _ in range(8):
        ok = await api.post(f"/api/skills/{skill['id']}/images/", token=owner.access, files=files)
        assert ok.status_code == 201
    ninth = await api.post(f"/api/skills/{skill['id']}/images/", token=owner.access, files=files)
    assert ninth.status_code == 409 and ninth.json()["code"] == "too_many_images"
    assert len(list(media_dir.rglob("*.png"))) == 8


async def test_refusals_and_notices_are_in_the_users_language(api, settings, make_user, make_skill):
    owner = await make_user(locale="ar")
    stranger = await make_user(locale="ar")
    skill = await make_skill(owner)
    refused = await api.patch(
        f"/api/skills/{skill['id']}/", token=stranger.access, json={"price_points": 1}
    )
    assert refused.json()["detail"] == "لا يعدّل هذه المهارة إلا صاحبها."

    async def always_open(session, skill_id: int) -> bool:
        return True

    async with node_asking(settings, always_open) as other:
        paused = await other.delete(f"/api/skills/{skill['id']}/", token=owner.access)
    assert paused.json()["detail"].startswith("لهذه المهارة طلبات مفتوحة")
    bad = await api.get("/api/skills/?ordering=relevance", headers={"Accept-Language": "ar"})
    assert bad.json()["errors"]["ordering"] == ["الترتيب حسب الصلة يتطلب نص بحث."]
