"""Double-blind reviews over real HTTP: who may review, once, and when reviews become public."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from datetime import timedelta

import pytest

from tests.points_support import make_skill, skill_row

ORDERS = "/api/points/orders/"


@contextmanager
def clock_moved(deps, delta: timedelta):
    """Run the app (same deps as the test server) `delta` in the future."""
    real = deps.clock
    deps.clock = lambda: real() + delta
    try:
        yield
    finally:
        deps.clock = real


async def completed_order(api, buyer, seller, skill_id) -> int:
    order_id = (await api.post(ORDERS, token=buyer.access, json={"skill_id": skill_id})).json()[
        "id"
    ]
    for user, action in ((seller, "accept"), (seller, "deliver"), (buyer, "complete")):
        response = await api.post(f"{ORDERS}{order_id}/{action}/", token=user.access, json={})
        assert response.status_code == 200, response.text
    return order_id


async def review(api, user, order_id, rating=5, comment=""):
    return await api.post(
        f"{ORDERS}{order_id}/review/",
        token=user.access,
        json={"rating": rating, "comment": comment},
    )


@pytest.fixture
def sale(make_user, deps, api):
    async def build():
        buyer, seller = await make_user(), await make_user()
        skill_id = await make_skill(deps, owner_id=seller.id, price=10, title_ar="درس")
        order_id = await completed_order(api, buyer, seller, skill_id)
        return buyer, seller, skill_id, order_id

    return build


async def test_reviews_stay_hidden_until_both_sides_have_reviewed(api, deps, sale):
    buyer, seller, skill_id, order_id = await sale()
    first = await review(api, buyer, order_id, rating=4, comment="Clear and patient")
    assert first.status_code == 201, first.text
    assert first.json()["rating"] == 4
    hidden = (await api.get(f"/api/users/{seller.id}/reviews/")).json()
    assert hidden["count"] == 0
    assert (await api.get(f"/api/skills/{skill_id}/reviews/")).json()["count"] == 0
    seller_view = (await api.get(f"{ORDERS}{order_id}/", token=seller.access)).json()["reviews"]
    assert seller_view["theirs_submitted"] is True
    assert seller_view["theirs"] is None  # no peeking before writing one's own
    assert seller_view["can_review"] is True

    second = await review(api, seller, order_id, rating=5, comment="Great student")
    assert second.status_code == 201
    about_seller = (await api.get(f"/api/users/{seller.id}/reviews/")).json()
    assert about_seller["count"] == 1
    shown = about_seller["results"][0]
    assert (shown["rating"], shown["comment"], shown["reviewer"]["id"]) == (
        4,
        "Clear and patient",
        buyer.id,
    )
    assert "email" not in shown["reviewer"]
    about_buyer = (await api.get(f"/api/users/{buyer.id}/reviews/")).json()
    assert [r["comment"] for r in about_buyer["results"]] == ["Great student"]
    # A skill's reviews are what its buyers wrote.
    skill_reviews = (
        await api.get(f"/api/skills/{skill_id}/reviews/", headers={"Accept-Language": "ar"})
    ).json()
    assert [r["rating"] for r in skill_reviews["results"]] == [4]
    assert skill_reviews["results"][0]["skill"]["title"] == "درس"
    buyer_view = (await api.get(f"{ORDERS}{order_id}/", token=buyer.access)).json()["reviews"]
    assert buyer_view["theirs"]["comment"] == "Great student"
    assert buyer_view["can_review"] is False


async def test_a_lone_review_becomes_public_when_the_window_closes(api, deps, sale):
    buyer, seller, _, order_id = await sale()
    await review(api, buyer, order_id, rating=3)
    assert (await api.get(f"/api/users/{seller.id}/reviews/")).json()["count"] == 0
    window = timedelta(seconds=deps.settings.review_window_seconds)
    with clock_moved(deps, window - timedelta(minutes=1)):
        assert (await api.get(f"/api/users/{seller.id}/reviews/")).json()["count"] == 0
    with clock_moved(deps, window + timedelta(minutes=1)):
        public = (await api.get(f"/api/users/{seller.id}/reviews/")).json()
        assert [r["rating"] for r in public["results"]] == [3]
        late = await review(api, seller, order_id)
        assert (late.status_code, late.json()["code"]) == (409, "review_window_closed")


async def test_ratings_of_user_and_skill_are_updated_with_the_review(api, deps, sale):
    buyer, seller, skill_id, order_id = await sale()
    await review(api, buyer, order_id, rating=2)
    await review(api, seller, order_id, rating=5)
    profile = (await api.get(f"/api/users/{seller.id}/")).json()
    assert (profile["rating_average"], profile["rating_count"]) == (2.0, 1)
    assert (await api.get(f"/api/users/{buyer.id}/")).json()["rating_count"] == 1
    skill = await skill_row(deps, skill_id)
    # Only the buyer's review rates the skill.
    assert (skill.rating_sum, skill.rating_count) == (2, 1)


async def test_only_participants_of_a_completed_order_review_it_once(api, deps, make_user, sale):
    buyer, seller, skill_id, order_id = await sale()
    stranger, admin = await make_user(), await make_user(admin=True)
    outsider = await review(api, stranger, order_id)
    assert (outsider.status_code, outsider.json()["code"]) == (404, "order_not_found")
    by_admin = await review(api, admin, order_id)
    assert (by_admin.status_code, by_admin.json()["code"]) == (403, "not_a_participant")
    assert (await review(api, buyer, order_id)).status_code == 201
    twice = await review(api, buyer, order_id, rating=1)
    assert (twice.status_code, twice.json()["code"]) == (409, "already_reviewed")
    for bad in (0, 6, "five"):
        invalid = await review(api, seller, order_id, rating=bad)
        assert (invalid.status_code, list(invalid.json()["errors"])) == (400, ["rating"])
    open_order = (await api.post(ORDERS, token=buyer.access, json={"skill_id": skill_id})).json()[
        "id"
    ]
    early = await review(api, buyer, open_order)
    assert (early.status_code, early.json()["code"]) == (409, "order_not_completed")
    assert early.json()["status"] == "pending"


async def test_review_lists_of_unknown_users_and_skills_are_404(api):
    assert (await api.get("/api/users/999999999/reviews/")).status_code == 404
    assert (await api.get("/api/skills/999999999/reviews/")).status_code == 404


@pytest.mark.postgres
async def test_concurrent_reviews_add_up_exactly(api, deps, make_user):
    seller = await make_user()
    skill_id = await make_skill(deps, owner_id=seller.id, price=5)
    buyers = [await make_user() for _ in range(12)]
    orders = [await completed_order(api, b, seller, skill_id) for b in buyers]
    ratings = [1 + i % 5 for i in range(len(buyers))]
    responses = await asyncio.gather(
        *(
            review(api, b, order_id, rating=r)
            for b, order_id, r in zip(buyers, orders, ratings, strict=True)
        ),
        # The same buyer twice at once: exactly one counts.
        review(api, buyers[0], orders[0], rating=5),
    )
    assert sorted(r.status_code for r in responses) == [201] * 12 + [409]
    skill = await skill_row(deps, skill_id)
    first_rating = next(
        r.json()["rating"] for r in responses[:1] + responses[-1:] if r.status_code == 201
    )
    expected = sum(ratings[1:]) + first_rating
    assert (skill.rating_sum, skill.rating_count) == (expected, 12)
    profile = (await api.get(f"/api/users/{seller.id}/")).json()
    assert profile["rating_count"] == 12
