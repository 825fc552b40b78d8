"""Categories: the public two-level tree with live counts, and administration by admins only."""

from __future__ import annotations


def find(tree: list[dict], category_id: int) -> dict:
    for top in tree:
        if top["id"] == category_id:
            return top
        for child in top["children"]:
            if child["id"] == category_id:
                return child
    raise AssertionError(f"category {category_id} not in the tree")


async def test_tree_has_children_counts_and_both_names(api, make_user, make_category, make_skill):
    owner = await make_user()
    parent = await make_category(name_en="Music", name_ar="الموسيقى")
    guitar = await make_category(parent_id=parent["id"], name_en="Guitar", name_ar="الغيتار")
    piano = await make_category(parent_id=parent["id"], name_en="Piano", name_ar="البيانو")
    await make_skill(owner, category_id=parent["id"])
    await make_skill(owner, category_id=guitar["id"])
    await make_skill(owner, category_id=guitar["id"])
    paused = await make_skill(owner, category_id=piano["id"])
    await api.patch(f"/api/skills/{paused['id']}/", token=owner.access, json={"status": "paused"})

    response = await api.get("/api/skills/categories/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    top = find(body["results"], parent["id"])
    assert top["parent_id"] is None
    assert top["skill_count"] == 3  # its own and its children's active skills
    assert [c["id"] for c in top["children"]] == [guitar["id"], piano["id"]]
    assert find(body["results"], guitar["id"])["skill_count"] == 2
    assert find(body["results"], piano["id"])["skill_count"] == 0  # paused is not counted
    assert top["name"] == top["name_en"] == "Music" and top["name_ar"] == "الموسيقى"
    assert top["slug"] == parent["slug"] and "icon" in top

    arabic = await api.get("/api/skills/categories/", headers={"Accept-Language": "ar"})
    assert find(arabic.json()["results"], guitar["id"])["name"] == "الغيتار"


async def test_counts_follow_writes(api, make_user, make_category, make_skill):
    owner = await make_user()
    category = await make_category()
    before = await api.get("/api/skills/categories/")
    assert find(before.json()["results"], category["id"])["skill_count"] == 0
    skill = await make_skill(owner, category_id=category["id"])
    after = await api.get("/api/skills/categories/")
    assert find(after.json()["results"], category["id"])["skill_count"] == 1
    await api.delete(f"/api/skills/{skill['id']}/", token=owner.access)
    gone = await api.get("/api/skills/categories/")
    assert find(gone.json()["results"], category["id"])["skill_count"] == 0


async def test_only_admins_manage_categories(api, make_user, make_category):
    member = await make_user()
    category = await make_category()
    body = {"slug": "not-allowed", "name_en": "No", "name_ar": "لا"}
    for method, path, kwargs in (
        ("GET", "/api/admin/categories/", {}),
        ("POST", "/api/admin/categories/", {"json": body}),
        ("PATCH", f"/api/admin/categories/{category['id']}/", {"json": {"name_en": "X"}}),
        ("DELETE", f"/api/admin/categories/{category['id']}/", {}),
        ("POST", "/api/admin/categories/reorder/", {"json": {"ids": [category["id"]]}}),
        # Refused before what was sent is read: a member learns nothing of the rules.
        ("POST", "/api/admin/categories/", {"json": {"slug": 7}}),
        ("PATCH", f"/api/admin/categories/{category['id']}/", {"json": {"unknown": 1}}),
        ("POST", "/api/admin/categories/reorder/", {"content": b"{not json"}),
    ):
        refused = await api.request(method, path, token=member.access, **kwargs)
        assert refused.status_code == 403, (method, path, refused.text)
        assert refused.json()["code"] == "admin_only"
        anonymous = await api.request(method, path, **kwargs)
        assert anonymous.status_code == 401


async def test_admin_creates_renames_reorders_and_deactivates(api, make_user, make_skill):
    admin, owner = await make_user(admin=True), await make_user()
    parent = await api.post(
        "/api/admin/categories/",
        token=admin.access,
        json={
            "slug": f"crafts-{admin.id}",
            "name_en": "Crafts",
            "name_ar": "الحرف",
            "icon": "scissors",
        },
    )
    assert parent.status_code == 201, parent.text
    pid = parent.json()["id"]
    kids = []
    for n, (en, ar) in enumerate(
        (("Knitting", "الحياكة"), ("Pottery", "الفخار"), ("Wood", "الخشب"))
    ):
        made = await api.post(
            "/api/admin/categories/",
            token=admin.access,
            json={"slug": f"craft-{admin.id}-{n}", "name_en": en, "name_ar": ar, "parent_id": pid},
        )
        assert made.status_code == 201
        kids.append(made.json()["id"])

    renamed = await api.patch(
        f"/api/admin/categories/{kids[0]}/",
        token=admin.access,
        json={"name_en": "Knitting and crochet", "name_ar": "الحياكة والكروشيه"},
    )
    assert renamed.status_code == 200 and renamed.json()["name_en"] == "Knitting and crochet"

    reordered = await api.post(
        "/api/admin/categories/reorder/",
        token=admin.access,
        json={"ids": [kids[2], kids[0], kids[1]]},
    )
    assert reordered.status_code == 200
    assert [c["position"] for c in reordered.json()["results"]] == [1, 2, 3]
    tree = (await api.get("/api/skills/categories/")).json()["results"]
    crafts = find(tree, pid)
    assert [c["id"] for c in crafts["children"]] == [kids[2], kids[0], kids[1]]
    assert crafts["children"][1]["name"] == "Knitting and crochet"

    closed = await api.delete(f"/api/admin/categories/{kids[1]}/", token=admin.access)
    assert closed.status_code == 200 and closed.json()["is_active"] is False
    tree = (await api.get("/api/skills/categories/")).json()["results"]
    assert [c["id"] for c in find(tree, pid)["children"]] == [kids[2], kids[0]]
    refused = await api.post(
        "/api/skills/",
        token=owner.access,
        json={
            "title_en": "Vases",
            "description_en": "Wheel.",
            "category_id": kids[1],
            "price_points": 5,
        },
    )
    assert refused.status_code == 400 and "category_id" in refused.json()["errors"]
    listed = await api.get("/api/admin/categories/", token=admin.access)
    assert {c["id"]: c["is_active"] for c in listed.json()["results"]}[kids[1]] is False
    reopened = await api.patch(
        f"/api/admin/categories/{kids[1]}/", token=admin.access, json={"is_active": True}
    )
    assert reopened.json()["is_active"] is True
    await make_skill(owner, category_id=kids[1])


async def test_category_rules_are_enforced(api, make_user, make_category):
    admin = await make_user(admin=True)
    top = await make_category()
    child = await make_category(parent_id=top["id"])
    other_top = await make_category()

    def create(**body):
        return api.post("/api/admin/categories/", token=admin.access, json=body)

    third_level = await create(
        slug=f"deep-{admin.id}", name_en="D", name_ar="د", parent_id=child["id"]
    )
    assert third_level.status_code == 400 and "parent_id" in third_level.json()["errors"]
    taken = await create(slug=top["slug"], name_en="Again", name_ar="مرة")
    assert taken.status_code == 409 and taken.json()["code"] == "slug_taken"
    bad_slug = await create(slug="Not A Slug", name_en="x", name_ar="س")
    assert bad_slug.status_code == 400 and "slug" in bad_slug.json()["errors"]
    missing = await create(slug=f"m-{admin.id}")
    assert set(missing.json()["errors"]) == {"name_en", "name_ar"}
    unknown_parent = await create(
        slug=f"u-{admin.id}", name_en="U", name_ar="ي", parent_id=999_999_999
    )
    assert unknown_parent.status_code == 400
    with_children = await api.patch(
        f"/api/admin/categories/{top['id']}/",
        token=admin.access,
        json={"parent_id": other_top["id"]},
    )
    assert with_children.status_code == 400  # it has a child: it cannot become one
    mixed = await api.post(
        "/api/admin/categories/reorder/",
        token=admin.access,
        json={"ids": [top["id"], child["id"]]},
    )
    assert mixed.status_code == 400
    unknown = await api.patch(
        "/api/admin/categories/999999999/", token=admin.access, json={"icon": "x"}
    )
    assert unknown.status_code == 404
