"""Double-blind reviews over real HTTP: who may review, once, and when reviews become public.

A hidden review must not move the public ratings either (the change in average and count would
give it away): ratings count a review only once it is public.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from skillswap.models import Review
from skillswap.orders.deadlines import run_order_deadlines
from skillswap.reviews.services import publish_due_reviews
from tests.clock import MovableClock
from tests.factories import insert_skill, skill_row

ORDERS = "/api/points/orders/"


def clock_moved(deps, delta: timedelta):  # type: ignore[no-untyped-def]
    """Run the app (same deps as the test server) `delta` in the future."""
    assert isinstance(deps.clock, MovableClock)
    return deps.clock.moved(delta)


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
        skill_id = await insert_skill(deps, owner_id=seller.id, price=10, title_ar="درس")
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


async def ratings(api, deps, user, skill_id):
    """(average, count) of the user's public profile and of the skill's public detail."""
    profile = (await api.get(f"/api/users/{user.id}/")).json()
    skill = (await api.get(f"/api/skills/{skill_id}/")).json()
    return (
        (profile["rating_average"], profile["rating_count"]),
        (skill["rating_average"], skill["rating_count"]),
    )


async def test_a_hidden_review_leaves_the_public_ratings_as_they_were(api, deps, sale):
    buyer, seller, skill_id, order_id = await sale()
    assert (await review(api, buyer, order_id, rating=2)).status_code == 201
    # Nothing public may change: a new average or count would reveal the hidden rating.
    assert await ratings(api, deps, seller, skill_id) == ((None, 0), (None, 0))
    skill = await skill_row(deps, skill_id)
    assert (skill.rating_sum, skill.rating_count) == (0, 0)


async def test_the_second_review_counts_both_in_the_ratings(api, deps, sale):
    buyer, seller, skill_id, order_id = await sale()
    await review(api, buyer, order_id, rating=2)
    await review(api, seller, order_id, rating=5)
    assert await ratings(api, deps, seller, skill_id) == ((2.0, 1), (2.0, 1))
    buyer_profile = (await api.get(f"/api/users/{buyer.id}/")).json()
    # Only the buyer's review rates the skill; the seller's rates the buyer.
    assert (buyer_profile["rating_average"], buyer_profile["rating_count"]) == (5.0, 1)
    async with deps.db.read() as session:
        both = (await session.scalars(select(Review).where(Review.order_id == order_id))).all()
    assert len(both) == 2 and all(r.counted_at is not None for r in both)
    # A later sweep finds nothing of this order left to count.
    window = timedelta(seconds=deps.settings.review_window_seconds)
    await publish_due_reviews(deps, now=deps.clock() + window + timedelta(minutes=1))
    assert await ratings(api, deps, seller, skill_id) == ((2.0, 1), (2.0, 1))


async def test_a_lone_review_is_counted_once_when_its_window_closes(own_app):
    # An app of its own: the sweep publishes exactly this test's lone reviews.
    api, deps = own_app.api, own_app.deps
    buyer, seller, other_buyer = await own_app.user(), await own_app.user(), await own_app.user()
    skill_id = await insert_skill(deps, owner_id=seller.id, price=10, title_ar="درس")
    order_id = await completed_order(api, buyer, seller, skill_id)
    other_order = await completed_order(api, other_buyer, seller, skill_id)
    await review(api, buyer, order_id, rating=3)
    await review(api, seller, other_order, rating=4)  # rates that buyer, not the skill
    window = timedelta(seconds=deps.settings.review_window_seconds)
    now = deps.clock()
    await publish_due_reviews(deps, now=now + window - timedelta(minutes=1))
    assert await ratings(api, deps, seller, skill_id) == ((None, 0), (None, 0))
    closed = now + window + timedelta(minutes=1)
    report = await run_order_deadlines(deps, now=closed)
    assert report.reviews_published == 2
    assert await ratings(api, deps, seller, skill_id) == ((3.0, 1), (3.0, 1))
    rated = (await api.get(f"/api/users/{other_buyer.id}/")).json()
    assert (rated["rating_average"], rated["rating_count"]) == (4.0, 1)
    # Sweeping again, later or at the same moment, counts nothing twice.
    assert await publish_due_reviews(deps, now=closed) == 0
    await publish_due_reviews(deps, now=closed + window)
    assert await ratings(api, deps, seller, skill_id) == ((3.0, 1), (3.0, 1))
    skill = await skill_row(deps, skill_id)
    assert (skill.rating_sum, skill.rating_count) == (3, 1)


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
    assert (early.json()["status"], early.json()["order_status"]) == (409, "pending")


async def test_review_lists_of_unknown_users_and_skills_are_404(api):
    assert (await api.get("/api/users/999999999/reviews/")).status_code == 404
    assert (await api.get("/api/skills/999999999/reviews/")).status_code == 404


@pytest.mark.postgres
async def test_concurrent_reviews_add_up_exactly(api, deps, make_user):
    seller = await make_user()
    skill_id = await insert_skill(deps, owner_id=seller.id, price=5)
    buyers = [await make_user() for _ in range(12)]
    orders = [await completed_order(api, b, seller, skill_id) for b in buyers]
    ratings = [1 + i % 5 for i in range(len(buyers))]
    responses = await asyncio.gather(
        *(
            review(api, b, order_id, rating=r)
            for b, order_id, r in zip(buyers, orders, ratings, strict=True)
        ),
        # The seller reviews every order at the same moment: each order's second review,
        # whichever it is, counts both.
        *(review(api, seller, order_id, rating=4) for order_id in orders),
        # The same buyer twice at once: exactly one counts.
        review(api, buyers[0], orders[0], rating=5),
    )
    assert sorted(r.status_code for r in responses) == [201] * 24 + [409]
    skill = await skill_row(deps, skill_id)
    first_rating = next(
        r.json()["rating"] for r in responses[:1] + responses[-1:] if r.status_code == 201
    )
    expected = sum(ratings[1:]) + first_rating
    assert (skill.rating_sum, skill.rating_count) == (expected, 12)
    profile = (await api.get(f"/api/users/{seller.id}/")).json()
    assert profile["rating_count"] == 12
    for buyer in buyers:
        rated = (await api.get(f"/api/users/{buyer.id}/")).json()
        assert (rated["rating_average"], rated["rating_count"]) == (4.0, 1)


@pytest.mark.postgres
async def test_racing_sweeps_count_each_lone_review_once(api, deps, make_user):
    seller = await make_user()
    skill_id = await insert_skill(deps, owner_id=seller.id, price=5)
    buyers = [await make_user() for _ in range(6)]
    for buyer in buyers:
        order_id = await completed_order(api, buyer, seller, skill_id)
        assert (await review(api, buyer, order_id, rating=5)).status_code == 201
    closed = deps.clock() + timedelta(seconds=deps.settings.review_window_seconds + 60)
    await asyncio.gather(*(publish_due_reviews(deps, now=closed) for _ in range(4)))
    skill = await skill_row(deps, skill_id)
    assert (skill.rating_sum, skill.rating_count) == (30, 6)
    profile = (await api.get(f"/api/users/{seller.id}/")).json()
    assert (profile["rating_average"], profile["rating_count"]) == (5.0, 6)
