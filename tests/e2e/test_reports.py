"""Reports over real HTTP: filing one about what you can see, the queue, closing with an action."""

from __future__ import annotations

from sqlalchemy import select

from skillswap.models import AuditEntry, Review
from tests.factories import order_room, place_order, unique_name

REPORTS = "/api/reports/"
QUEUE = "/api/admin/reports/"


def close_path(report_id: int) -> str:
    return f"{QUEUE}{report_id}/close/"


async def report(api, user, target_type: str, target_id: int, **extra):
    body = {"target_type": target_type, "target_id": target_id, "reason": "abuse", **extra}
    return await api.post(REPORTS, token=user.access, json=body)


async def audit_actions(deps, target_type: str, target_id: int) -> list[str]:
    async with deps.db.read() as session:
        rows = await session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.target_type == target_type, AuditEntry.target_id == target_id)
            .order_by(AuditEntry.id)
        )
        return list(rows)


async def a_review(api, deps, reviewer, reviewee, *, published: bool) -> int:
    order = await place_order(api, deps, reviewer, reviewee)
    async with deps.db.uow() as uow:
        review = Review(
            order_id=order["id"],
            reviewer_id=reviewer.id,
            reviewee_id=reviewee.id,
            skill_id=order["skill"]["id"],
            reviewer_role="buyer",
            rating=1,
            comment="Rude and late",
            created_at=deps.clock(),
            counted_at=deps.clock() if published else None,
        )
        uow.session.add(review)
        await uow.session.flush()
        await uow.commit()
    return review.id


async def a_message(api, deps, sender, other) -> int:
    room = await order_room(api, deps, sender, other)
    sent = await api.post(
        f"/api/chat/rooms/{room}/send/", token=sender.access, json={"body": "pay me outside"}
    )
    assert sent.status_code == 201, sent.text
    return int(sent.json()["id"])


async def test_each_kind_of_target_can_be_reported_once_while_open(
    api, deps, make_user, make_skill
):
    reporter, owner, admin = await make_user(), await make_user(), await make_user(admin=True)
    skill = await make_skill(owner)
    review = await a_review(api, deps, owner, reporter, published=True)
    message = await a_message(api, deps, owner, reporter)
    for target_type, target_id in (
        ("skill", skill["id"]),
        ("user", owner.id),
        ("review", review),
        ("message", message),
    ):
        filed = await report(api, reporter, target_type, target_id, detail="see for yourself")
        assert filed.status_code == 201, (target_type, filed.text)
        body = filed.json()
        assert body == {
            "id": body["id"],
            "target_type": target_type,
            "target_id": target_id,
            "reason": "abuse",
            "detail": "see for yourself",
            "status": "open",
            "created_at": body["created_at"],
        }
        again = await report(api, reporter, target_type, target_id, reason="spam")
        assert again.status_code == 200 and again.json()["id"] == body["id"]
        assert again.json()["reason"] == "abuse"
    queue = (await api.get(f"{QUEUE}?status=open&page_size=100", token=admin.access)).json()
    mine = [r for r in queue["results"] if r["reporter_id"] == reporter.id]
    assert [r["target_type"] for r in mine] == ["skill", "user", "review", "message"]
    assert {r["subject_user_id"] for r in mine} == {owner.id}
    targets = {r["target_type"]: r["target"] for r in mine}
    assert targets["skill"] == {"title": skill["title_en"], "status": "active"}
    assert targets["user"] == {"username": owner.username, "is_active": True}
    assert targets["review"] == {"text": "Rude and late", "rating": 1}
    assert targets["message"]["text"] == "pay me outside"
    ids = [r["id"] for r in queue["results"]]
    assert ids == sorted(ids)  # oldest open first
    only_users = (await api.get(f"{QUEUE}?target_type=user", token=admin.access)).json()
    assert {r["target_type"] for r in only_users["results"]} == {"user"}
    bad = await api.get(f"{QUEUE}?status=maybe", token=admin.access)
    assert bad.status_code == 400 and "status" in bad.json()["errors"]


async def test_what_the_reporter_cannot_see_is_not_found(api, deps, make_user, make_skill):
    reporter, a, b = await make_user(), await make_user(), await make_user()
    stranger_message = await a_message(api, deps, a, b)  # a room the reporter is not in
    hidden_review = await a_review(api, deps, a, b, published=False)
    paused = await make_skill(a)
    await api.patch(f"/api/skills/{paused['id']}/", token=a.access, json={"status": "paused"})
    for target_type, target_id in (
        ("message", stranger_message),
        ("review", hidden_review),
        ("skill", paused["id"]),
        ("skill", 987_654_321),
        ("user", 987_654_321),
        ("message", 987_654_321),
        ("review", 987_654_321),
    ):
        refused = await report(api, reporter, target_type, target_id)
        assert refused.status_code == 404, (target_type, target_id, refused.text)
        assert refused.json()["code"] == "target_not_found"


async def test_nobody_reports_themselves_or_what_they_wrote(api, deps, make_user, make_skill):
    member, other = await make_user(), await make_user()
    skill = await make_skill(member)
    message = await a_message(api, deps, member, other)
    for target_type, target_id in (
        ("user", member.id),
        ("skill", skill["id"]),
        ("message", message),
    ):
        refused = await report(api, member, target_type, target_id)
        assert (refused.status_code, refused.json()["code"]) == (409, "own_target"), target_type
    for body, field in (
        ({"target_type": "order", "target_id": 1, "reason": "spam"}, "target_type"),
        ({"target_type": "user", "target_id": other.id, "reason": "boring"}, "reason"),
        ({"target_type": "user", "target_id": 0, "reason": "spam"}, "target_id"),
        ({"target_type": "user", "reason": "spam"}, "target_id"),
    ):
        refused = await api.post(REPORTS, token=member.access, json=body)
        assert refused.status_code == 400 and field in refused.json()["errors"], body
    assert (await api.post(REPORTS, json={"target_type": "user"})).status_code == 401


async def test_reports_are_limited_per_day(api, make_user):
    reporter = await make_user()
    limit = 20
    targets = [await make_user(username=unique_name("t")) for _ in range(limit + 1)]
    for target in targets[:limit]:
        assert (await report(api, reporter, "user", target.id)).status_code == 201
    refused = await report(api, reporter, "user", targets[limit].id)
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "too_many_reports"
    assert 0 < int(refused.headers["Retry-After"]) <= 24 * 3600
    # An open report filed before is still answered.
    assert (await report(api, reporter, "user", targets[0].id)).status_code == 200


async def test_closing_dismissed_or_warned_and_closing_twice(api, deps, make_user):
    admin, reporter, subject = await make_user(admin=True), await make_user(), await make_user()
    member = await make_user()
    filed = (await report(api, reporter, "user", subject.id)).json()
    for who, kwargs in ((member, {"json": {"outcome": "dismissed"}}), (member, {"json": {}})):
        refused = await api.post(close_path(filed["id"]), token=who.access, **kwargs)
        assert (refused.status_code, refused.json()["code"]) == (403, "admin_only")
    closed = await api.post(
        close_path(filed["id"]), token=admin.access, json={"outcome": "warned", "note": "mailed"}
    )
    assert closed.status_code == 200, closed.text
    body = closed.json()
    assert (body["status"], body["outcome"], body["closed_by"], body["note"]) == (
        "closed",
        "warned",
        admin.id,
        "mailed",
    )
    twice = await api.post(
        close_path(filed["id"]), token=admin.access, json={"outcome": "dismissed"}
    )
    assert (twice.status_code, twice.json()["code"]) == (409, "report_closed")
    assert await audit_actions(deps, "report", filed["id"]) == ["report.close"]
    # Once closed, the same target may be reported again.
    anew = await report(api, reporter, "user", subject.id)
    assert anew.status_code == 201 and anew.json()["id"] != filed["id"]
    dismissed = await api.post(
        close_path(anew.json()["id"]), token=admin.access, json={"outcome": "dismissed"}
    )
    assert dismissed.json()["outcome"] == "dismissed"
    assert (await api.get("/api/auth/profile/", token=subject.access)).status_code == 200
    missing = await api.post(
        close_path(987_654_321), token=admin.access, json={"outcome": "warned"}
    )
    assert (missing.status_code, missing.json()["code"]) == (404, "report_not_found")
    hide_a_user = await report(api, reporter, "user", member.id)
    refused = await api.post(
        close_path(hide_a_user.json()["id"]),
        token=admin.access,
        json={"outcome": "skill_hidden", "note": "x"},
    )
    assert refused.status_code == 400 and "outcome" in refused.json()["errors"]
    no_note = await api.post(
        close_path(hide_a_user.json()["id"]), token=admin.access, json={"outcome": "user_banned"}
    )
    assert no_note.status_code == 400 and "note" in no_note.json()["errors"]
    assert await audit_actions(deps, "report", hide_a_user.json()["id"]) == []


async def test_closing_with_skill_hidden_hides_the_skill_in_the_same_step(
    api, deps, make_user, make_skill
):
    admin, reporter, owner = await make_user(admin=True), await make_user(), await make_user()
    skill = await make_skill(owner)
    filed = (await report(api, reporter, "skill", skill["id"])).json()
    closed = await api.post(
        close_path(filed["id"]),
        token=admin.access,
        json={"outcome": "skill_hidden", "note": "Counterfeit"},
    )
    assert closed.status_code == 200, closed.text
    assert (await api.get(f"/api/skills/{skill['id']}/")).status_code == 404
    mine = (await api.get(f"/api/skills/{skill['id']}/", token=owner.access)).json()
    assert (mine["status"], mine["moderation_note"]) == ("hidden", "Counterfeit")
    assert await audit_actions(deps, "report", filed["id"]) == ["report.close"]
    assert await audit_actions(deps, "skill", skill["id"]) == ["skill.hide"]


async def test_closing_with_user_banned_bans_the_subject(api, deps, server, mailer, make_user):
    admin, reporter, sender = await make_user(admin=True), await make_user(), await make_user()
    message = await a_message(api, deps, sender, reporter)
    filed = (await report(api, reporter, "message", message)).json()
    closed = await api.post(
        close_path(filed["id"]),
        token=admin.access,
        json={"outcome": "user_banned", "note": "Scam attempts"},
    )
    assert closed.status_code == 200, closed.text
    assert (await api.get("/api/auth/profile/", token=sender.access)).status_code == 401
    mail = await mailer.wait_for(sender.email, "account_suspended")
    assert "Scam attempts" in mail.body
    assert await audit_actions(deps, "report", filed["id"]) == ["report.close"]
    assert await audit_actions(deps, "user", sender.id) == ["user.ban"]
    page = (await api.get(f"/api/admin/users/{sender.id}/", token=admin.access)).json()
    assert [r["id"] for r in page["reports"]] == [filed["id"]]
    assert page["reports"][0]["outcome"] == "user_banned"


async def test_a_reporter_reads_their_own_reports_and_nobody_elses(api, make_user):
    admin, reporter, other, subject = (
        await make_user(admin=True),
        await make_user(),
        await make_user(),
        await make_user(),
    )
    first = (await report(api, reporter, "user", subject.id, detail="spam in chat")).json()
    second = (await report(api, reporter, "user", admin.id)).json()
    await report(api, other, "user", subject.id)
    closed = await api.post(
        close_path(first["id"]), token=admin.access, json={"outcome": "warned", "note": "mailed"}
    )
    assert closed.status_code == 200, closed.text

    mine = await api.get(REPORTS, token=reporter.access)
    assert mine.status_code == 200, mine.text
    body = mine.json()
    assert body["count"] == 2
    assert [(r["id"], r["status"]) for r in body["results"]] == [
        (second["id"], "open"),
        (first["id"], "closed"),
    ]
    # The reporter never learns who handled it, nor the administrator's note.
    assert set(body["results"][1]) == {
        "id",
        "target_type",
        "target_id",
        "reason",
        "detail",
        "status",
        "created_at",
    }
    one = await api.get(f"{REPORTS}{first['id']}/", token=reporter.access)
    assert (one.status_code, one.json()["detail"], one.json()["status"]) == (
        200,
        "spam in chat",
        "closed",
    )
    for who in (other, admin):
        refused = await api.get(f"{REPORTS}{first['id']}/", token=who.access)
        assert (refused.status_code, refused.json()["code"]) == (404, "report_not_found")
    assert (await api.get(REPORTS)).status_code == 401
