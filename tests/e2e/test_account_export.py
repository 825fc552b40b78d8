"""A copy of one's data, over real HTTP: asked for, built by the worker into a zip (a JSON
document of every section and the uploaded images), mailed as a link that works once and for
a day; one a day (429 `export_limited` with Retry-After); the files are deleted after use or
expiry."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta

from PIL import Image
from sqlalchemy import select

from skillswap.accounts.exports import sweep_exports
from skillswap.models import DataExport
from tests.factories import order_room
from tests.outbox_support import outbox_settled

EXPORT = "/api/auth/account/export/"
SECTIONS = {
    "exported_at", "profile", "skills", "orders", "reviews_given", "reviews_received",
    "chat_rooms", "notifications", "payments", "ledger_entries", "devices", "preferences",
}  # fmt: skip


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (6, 5), (200, 20, 20)).save(buffer, "PNG")
    return buffer.getvalue()


async def mailed_link(deps, mailer, user) -> str:  # type: ignore[no-untyped-def]
    await outbox_settled(deps)
    mail = mailer.last_to(user.email, "data_export_ready")
    assert mail is not None, "no export mail"
    link = mail.context["link"]
    assert "/api/auth/account/export/" in link
    return "/api/auth/account/export/" + link.rstrip("/").rsplit("/", 1)[-1] + "/"


async def test_the_export_holds_every_section_and_the_images_and_works_once(
    api, deps, mailer, make_user, make_skill
):
    user = await make_user(display_name="Layla Export")
    other = await make_user()
    skill = await make_skill(user, title_en="Calligraphy")
    uploaded = await api.post(
        f"/api/skills/{skill['id']}/images/",
        token=user.access,
        files={"image": ("pen.png", png_bytes(), "image/png")},
    )
    assert uploaded.status_code == 201
    room = await order_room(api, deps, other, user)  # `other` orders from `user`
    for who, body in ((user, "My message"), (other, "Their message")):
        sent = await api.post(
            f"/api/chat/rooms/{room}/send/", token=who.access, json={"body": body}
        )
        assert sent.status_code == 201
    device = await api.post(
        "/api/notifications/devices/",
        token=user.access,
        json={"token": "export-device-token-0123456789", "platform": "ios"},
    )
    assert device.status_code == 201

    asked = await api.post(EXPORT, token=user.access)
    assert asked.status_code == 202, asked.text
    assert asked.json()["status"] == "building"
    again = await api.post(EXPORT, token=user.access)
    assert (again.status_code, again.json()["code"]) == (429, "export_limited")
    assert int(again.headers["Retry-After"]) > 23 * 3600

    link = await mailed_link(deps, mailer, user)
    downloaded = await api.get(link)
    assert downloaded.status_code == 200, downloaded.text
    assert downloaded.headers["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(downloaded.content))
    document = json.loads(archive.read("data.json"))
    assert set(document) == SECTIONS
    assert document["profile"]["email"] == user.email
    assert document["profile"]["display_name"] == "Layla Export"
    assert len(document["skills"]) == 2  # the one listed here, and the one ordered
    [listed] = [s for s in document["skills"] if s["id"] == skill["id"]]
    assert listed["title_en"] == "Calligraphy"
    [image] = listed["images"]
    assert Image.open(io.BytesIO(archive.read(image["file"]))).size == (6, 5)
    [order] = document["orders"]
    assert (order["role"], order["status"]) == ("seller", "pending")
    assert [step["action"] for step in order["history"]] == ["place"]
    [chat] = document["chat_rooms"]
    assert [(m["body"], m["mine"]) for m in chat["messages"]] == [
        ("My message", True),
        ("Their message", False),
    ]
    assert {m["id"] for m in chat["members"]} == {user.id, other.id}
    assert any(n["kind"] == "order_placed" for n in document["notifications"])
    assert any(e["kind"] == "signup_bonus" for e in document["ledger_entries"])
    assert [d["platform"] for d in document["devices"]] == ["ios"]
    assert document["payments"] == [] and document["reviews_given"] == []
    assert document["reviews_received"] == [] and document["preferences"] == []

    # Single use: the link is spent and the file gone.
    assert (await api.get(link)).status_code == 404
    async with deps.db.read() as session:
        export = await session.scalar(select(DataExport).where(DataExport.user_id == user.id))
    assert export is not None and export.status == "used" and export.file_key is None


async def test_an_unused_link_expires_after_a_day_and_its_file_is_deleted(
    api, deps, mailer, make_user
):
    user = await make_user()
    assert (await api.post(EXPORT, token=user.access)).status_code == 202
    link = await mailed_link(deps, mailer, user)
    async with deps.db.read() as session:
        export = await session.scalar(select(DataExport).where(DataExport.user_id == user.id))
    assert export is not None and export.file_key is not None
    key = export.file_key
    assert await deps.storage.exists(key)
    # The local media handler never serves an export.
    assert (await api.get(f"/media/{key}")).status_code == 404
    with deps.clock.moved(timedelta(hours=25)):
        assert (await api.get(link)).status_code == 404
        await sweep_exports(deps, now=deps.clock())
    assert not await deps.storage.exists(key)
    async with deps.db.read() as session:
        export = await session.get(DataExport, export.id)
    assert export is not None and (export.status, export.file_key) == ("expired", None)
    assert (await api.get("/api/auth/account/export/not-a-real-token/")).status_code == 404
