"""Administrators and listings over real HTTP: hide a skill from the marketplace, restore it."""

from __future__ import annotations

from sqlalchemy import select

from skillswap.models import AuditEntry
from tests.factories import insert_skill, unique_name


def skills_path(skill_id: int | None = None) -> str:
    return "/api/admin/skills/" if skill_id is None else f"/api/admin/skills/{skill_id}/"


async def audit_rows(deps, skill_id: int) -> list[AuditEntry]:
    async with deps.db.read() as session:
        rows = await session.scalars(
            select(AuditEntry)
            .where(AuditEntry.target_type == "skill", AuditEntry.target_id == skill_id)
            .order_by(AuditEntry.id)
        )
        return list(rows)


async def notes_of(api, user) -> list[dict]:
    response = await api.get("/api/notifications/?page_size=100", token=user.access)
    assert response.status_code == 200, response.text
    return response.json()["results"]


async def hide(api, admin, skill_id: int, note: str = "Copied from another site"):
    response = await api.patch(
        skills_path(skill_id), token=admin.access, json={"status": "hidden", "note": note}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_only_administrators_moderate_skills_and_before_any_validation(
    api, make_user, make_skill
):
    member = await make_user()
    skill = await make_skill(member)
    for method, path, kwargs in (
        ("GET", skills_path() + "?status=gone&sort=up", {}),
        ("PATCH", skills_path(skill["id"]), {"json": {"status": "hidden", "note": "mine"}}),
        ("PATCH", skills_path(skill["id"]), {"json": {"status": "sideways"}}),
        ("PATCH", skills_path(987_654_321), {"json": {}}),
    ):
        refused = await api.request(method, path, token=member.access, **kwargs)
        assert (refused.status_code, refused.json()["code"]) == (403, "admin_only"), (method, path)
        assert (await api.request(method, path, **kwargs)).status_code == 401
    assert (await api.get(f"/api/skills/{skill['id']}/")).json()["status"] == "active"


async def test_a_hidden_skill_leaves_the_marketplace_at_once_and_its_owner_is_told_why(
    api, deps, make_user, make_skill
):
    admin, owner, buyer = await make_user(admin=True), await make_user(), await make_user()
    word = unique_name("zither")
    skill = await make_skill(owner, title_en=f"Zither {word}")
    detail = f"/api/skills/{skill['id']}/"
    search = f"/api/skills/?search={word}"
    assert (await api.get(detail)).status_code == 200  # cached for anonymous readers now
    assert [s["id"] for s in (await api.get(search)).json()["results"]] == [skill["id"]]
    assert (await api.get(detail)).json()["moderation_note"] is None

    hidden = await hide(api, admin, skill["id"], note="Copied from another site")
    assert (hidden["status"], hidden["moderation_note"]) == ("hidden", "Copied from another site")
    assert hidden["owner_id"] == owner.id

    anonymous = await api.get(detail)
    assert (anonymous.status_code, anonymous.json()["code"]) == (404, "skill_not_found")
    assert (await api.get(detail, token=buyer.access)).status_code == 404
    assert (await api.get(search)).json()["results"] == []
    assert (await api.get(f"/api/skills/?owner={owner.id}")).json()["results"] == []
    assert (await api.get(f"/api/users/{owner.id}/skills/")).json()["results"] == []
    ordered = await api.post(
        "/api/points/orders/", token=buyer.access, json={"skill_id": skill["id"]}
    )
    assert (ordered.status_code, ordered.json()["code"]) == (404, "skill_not_found")

    # Its owner sees it hidden, and why; and was told.
    mine = (await api.get(detail, token=owner.access)).json()
    assert (mine["status"], mine["moderation_note"]) == ("hidden", "Copied from another site")
    listed = (await api.get("/api/skills/mine/", token=owner.access)).json()["results"]
    assert [(s["id"], s["status"]) for s in listed] == [(skill["id"], "hidden")]
    told = [n for n in await notes_of(api, owner) if n["kind"] == "skill_hidden"]
    assert len(told) == 1
    assert told[0]["payload"] == {
        "skill_id": skill["id"],
        "status": "hidden",
        "note": "Copied from another site",
    }
    assert "Copied from another site" in told[0]["text"] and word in told[0]["text"]

    # The owner may edit its text but not list it again.
    for status in ("active", "paused"):
        refused = await api.patch(detail, token=owner.access, json={"status": status})
        assert (refused.status_code, refused.json()["code"]) == (409, "skill_hidden")
        assert refused.json()["moderation_note"] == "Copied from another site"
    edited = await api.patch(detail, token=owner.access, json={"title_en": f"Zither {word} 2"})
    assert edited.status_code == 200 and edited.json()["status"] == "hidden"
    assert (await api.get(detail)).status_code == 404

    rows = await audit_rows(deps, skill["id"])
    assert [(r.action, r.actor_id, r.reason) for r in rows] == [
        ("skill.hide", admin.id, "Copied from another site")
    ]
    assert rows[0].before == {"status": "active", "moderation_note": ""}
    assert rows[0].after == {"status": "hidden", "moderation_note": "Copied from another site"}


async def test_a_restored_skill_is_listed_again_and_its_owner_is_told(
    api, deps, make_user, make_skill
):
    admin, owner = await make_user(admin=True), await make_user()
    skill = await make_skill(owner)
    detail = f"/api/skills/{skill['id']}/"
    await hide(api, admin, skill["id"])
    assert (await api.get(detail)).status_code == 404
    restored = await api.patch(
        skills_path(skill["id"]), token=admin.access, json={"status": "active"}
    )
    assert restored.status_code == 200, restored.text
    assert (restored.json()["status"], restored.json()["moderation_note"]) == ("active", "")
    shown = await api.get(detail)
    assert shown.status_code == 200
    assert (shown.json()["status"], shown.json()["moderation_note"]) == ("active", None)
    assert skill["id"] in [
        s["id"] for s in (await api.get(f"/api/skills/?owner={owner.id}")).json()["results"]
    ]
    kinds = [n["kind"] for n in await notes_of(api, owner)]
    assert kinds.count("skill_restored") == 1 and kinds.count("skill_hidden") == 1
    # The owner may pause it again as before.
    paused = await api.patch(detail, token=owner.access, json={"status": "paused"})
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert [r.action for r in await audit_rows(deps, skill["id"])] == [
        "skill.hide",
        "skill.restore",
    ]


async def test_moderating_refuses_bad_input_unknown_and_deleted_skills(
    api, deps, make_user, make_skill
):
    admin, owner = await make_user(admin=True), await make_user()
    skill = await make_skill(owner)
    for body, field in (
        ({"status": "hidden"}, "note"),
        ({"status": "hidden", "note": "  "}, "note"),
        ({"status": "paused", "note": "x"}, "status"),
        ({"note": "x"}, "status"),
        ({"status": "hidden", "note": "x", "colour": 1}, "colour"),
    ):
        refused = await api.patch(skills_path(skill["id"]), token=admin.access, json=body)
        assert refused.status_code == 400, (body, refused.text)
        assert field in refused.json()["errors"], body
    missing = await api.patch(
        skills_path(987_654_321), token=admin.access, json={"status": "hidden", "note": "x"}
    )
    assert (missing.status_code, missing.json()["code"]) == (404, "skill_not_found")

    # A skill paused by its owner is theirs to reactivate.
    paused = await make_skill(owner)
    await api.patch(f"/api/skills/{paused['id']}/", token=owner.access, json={"status": "paused"})
    refused = await api.patch(
        skills_path(paused["id"]), token=admin.access, json={"status": "active"}
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "skill_not_hidden")
    assert refused.json()["skill_status"] == "paused"

    gone = await make_skill(owner)
    assert (await api.delete(f"/api/skills/{gone['id']}/", token=owner.access)).status_code == 204
    deleted = await api.patch(
        skills_path(gone["id"]), token=admin.access, json={"status": "hidden", "note": "x"}
    )
    assert (deleted.status_code, deleted.json()["code"]) == (409, "skill_deleted")

    # Hiding twice changes nothing the second time.
    await hide(api, admin, skill["id"], note="first")
    again = await hide(api, admin, skill["id"], note="second")
    assert again["moderation_note"] == "first"
    assert [r.action for r in await audit_rows(deps, skill["id"])] == ["skill.hide"]
    assert await audit_rows(deps, gone["id"]) == [] and await audit_rows(deps, paused["id"]) == []


async def test_deleting_a_hidden_skill_with_open_orders_keeps_it_hidden(api, deps, make_user):
    admin, owner, buyer = await make_user(admin=True), await make_user(), await make_user()
    skill_id = await insert_skill(deps, owner_id=owner.id, price=2)
    placed = await api.post("/api/points/orders/", token=buyer.access, json={"skill_id": skill_id})
    assert placed.status_code == 201, placed.text
    await hide(api, admin, skill_id)
    kept = await api.delete(f"/api/skills/{skill_id}/", token=owner.access)
    assert kept.status_code == 200 and kept.json()["open_orders"] is True
    assert kept.json()["status"] == "hidden"
    assert "stays hidden" in kept.json()["detail"]
    assert (await api.get(f"/api/skills/{skill_id}/", token=owner.access)).json()[
        "status"
    ] == "hidden"


async def test_administrators_list_every_skill_searched_filtered_and_sorted(
    api, make_user, make_skill
):
    admin, owner, other = await make_user(admin=True), await make_user(), await make_user()
    word = unique_name("oud")
    first = await make_skill(owner, title_en=f"Oud {word} basics")
    second = await make_skill(owner, title_en="Something else", title_ar=f"عود {word}")
    third = await make_skill(other, title_en=f"OUD {word.upper()} advanced")
    await hide(api, admin, second["id"])
    await api.patch(f"/api/skills/{third['id']}/", token=other.access, json={"status": "paused"})

    found = (
        await api.get(skills_path() + f"?search={word}&sort=oldest", token=admin.access)
    ).json()
    assert [s["id"] for s in found["results"]] == [first["id"], second["id"], third["id"]]
    assert found["count"] == 3
    row = found["results"][1]
    assert (row["status"], row["moderation_note"], row["owner_username"]) == (
        "hidden",
        "Copied from another site",
        owner.username,
    )
    assert row["owner_is_active"] is True
    hidden = (
        await api.get(skills_path() + f"?search={word}&status=hidden", token=admin.access)
    ).json()
    assert [s["id"] for s in hidden["results"]] == [second["id"]]
    by_owner = (await api.get(skills_path() + f"?owner_id={other.id}", token=admin.access)).json()
    assert [(s["id"], s["status"]) for s in by_owner["results"]] == [(third["id"], "paused")]
    newest = (await api.get(skills_path() + f"?search={word}", token=admin.access)).json()
    assert [s["id"] for s in newest["results"]] == [third["id"], second["id"], first["id"]]
    for bad in ("status=gone", "sort=up", "owner_id=0", "search=", "colour=red"):
        refused = await api.get(skills_path() + f"?{bad}", token=admin.access)
        assert refused.status_code == 400, bad
        assert bad.split("=")[0] in refused.json()["errors"], bad
