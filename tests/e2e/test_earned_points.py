"""Points from nothing are earned, not farmed, over real HTTP: the signup bonus comes with a
verified email and once per address ever; orders and reviews need a verified email; reviews
between the same two people count once per period in the public ratings."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from skillswap.models import LedgerTransfer, Order, Review, User
from skillswap.models.reviews import ReviewPairPeriod
from skillswap.points.services import audit_ledger, signup_bonus_key
from skillswap.points.signup_bonus import address_digest, normalised_address
from tests import factories
from tests.clock import MovableClock
from tests.conftest import Api, api_client, extra_server
from tests.factories import TestUser, balance, insert_skill, unique_name, verify_email

ORDERS = "/api/points/orders/"
BONUS = 100


@contextlib.asynccontextmanager
async def node(settings, **overrides: Any) -> AsyncIterator[tuple[Api, Any]]:  # type: ignore[no-untyped-def]
    """Another node of the same deployment, configured with `overrides`."""
    async with (
        extra_server(settings.with_overrides(**overrides)) as (url, node_deps),
        api_client(url) as node_api,
    ):
        yield node_api, node_deps


async def bonus_transfers(deps, user_id: int) -> int:  # type: ignore[no-untyped-def]
    async with deps.db.read() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(LedgerTransfer)
                .where(LedgerTransfer.idempotency_key == signup_bonus_key(user_id))
            )
            or 0
        )


async def free_the_address(deps, user: TestUser) -> None:  # type: ignore[no-untyped-def]
    """The account leaves its address behind, as a deleted account will."""
    async with deps.db.uow() as uow:
        await uow.session.execute(
            update(User).where(User.id == user.id).values(email=f"gone-{user.id}@example.invalid")
        )
        await uow.commit()


# -- the signup bonus --------------------------------------------------------------------------


async def test_the_bonus_comes_when_the_email_is_verified_not_at_signup(api, deps, make_user):
    user = await make_user(verified=False)
    assert await balance(deps, user.id) == (0, 0)
    assert (await api.get("/api/points/balance/", token=user.access)).json()["balance"] == 0
    await verify_email(api, deps, user.id)
    assert (await api.get("/api/points/balance/", token=user.access)).json() == {
        "balance": BONUS,
        "held": 0,
        "available": BONUS,
    }
    statement = (await api.get("/api/points/transactions/", token=user.access)).json()
    assert [(line["kind"], line["amount"]) for line in statement["results"]] == [
        ("signup_bonus", BONUS)
    ]


async def test_an_address_has_the_bonus_once_ever_even_on_a_new_account(api, deps, make_user):
    name = unique_name()
    first = await make_user(email=f"{name}@example.com")
    assert await balance(deps, first.id) == (BONUS, 0)
    await free_the_address(deps, first)

    second = await make_user(email=f"{name}@example.com")  # verified, the same address
    assert await balance(deps, second.id) == (0, 0)
    assert await bonus_transfers(deps, second.id) == 0
    assert await balance(deps, first.id) == (BONUS, 0)  # the first keeps theirs


async def test_gmail_dots_tags_and_googlemail_are_one_address(api, deps, make_user):
    name = unique_name("amal.")
    first = await make_user(email=f"{name}@gmail.com")
    assert await balance(deps, first.id) == (BONUS, 0)
    variants = [
        f"{name.replace('.', '')}+points@gmail.com",
        f"{name.upper()}@googlemail.com",
        f"{name[:2]}.{name[2:]}+x@GMAIL.com",
    ]
    for variant in variants:
        other = await make_user(email=variant)
        assert await balance(deps, other.id) == (0, 0), variant
    # Other providers' addresses are taken as written: a +tag there is another address.
    plain = unique_name()
    assert normalised_address(f"{plain}+a@example.com") != normalised_address(
        f"{plain}@example.com"
    )
    elsewhere = await make_user(email=f"{plain}+a@example.com")
    assert await balance(deps, elsewhere.id) == (BONUS, 0)


async def test_the_claims_name_no_address(deps, make_user):
    from skillswap.models.users import SignupBonusClaim

    user = await make_user()
    digest = address_digest(deps.settings.secret_key, user.email)
    async with deps.db.read() as session:
        claim = await session.get(SignupBonusClaim, digest)
    assert claim is not None and claim.user_id == user.id
    assert user.email.split("@")[0] not in digest and len(digest) == 64
    assert address_digest("another secret key", user.email) != digest


async def test_two_accounts_verifying_one_address_at_once_get_one_bonus(api, deps, make_user):
    name = unique_name("twin.")
    first = await make_user(email=f"{name}@gmail.com", verified=False)
    second = await make_user(email=f"{name.replace('.', '')}@gmail.com", verified=False)
    await asyncio.gather(verify_email(api, deps, first.id), verify_email(api, deps, second.id))
    balances = sorted([(await balance(deps, first.id))[0], (await balance(deps, second.id))[0]])
    assert balances == [0, BONUS]


async def test_signup_mode_keeps_the_bonus_at_registration(settings, deps):
    async with node(settings, signup_bonus_on="signup") as (node_api, node_deps):
        user = await factories.make_user(node_api, node_deps, verified=False)
        assert await balance(deps, user.id) == (BONUS, 0)
        await verify_email(node_api, node_deps, user.id)
        assert await balance(deps, user.id) == (BONUS, 0)  # not twice
    assert await bonus_transfers(deps, user.id) == 1


async def test_a_google_account_is_verified_at_once_and_has_the_bonus(deps):
    from skillswap.accounts.google import GoogleIdentity, _sign_in_identity

    name = unique_name()
    identity = GoogleIdentity(
        sub=f"sub-{name}",
        email=f"{name}@example.com",
        email_verified=True,
        name="Amal",
        picture="",
        locale="en",
    )
    result = await _sign_in_identity(deps, identity)
    assert result.user.email_verified is True
    assert await balance(deps, result.user.id) == (BONUS, 0)


async def test_the_ledger_is_clean_after_the_bonus_flows(api, deps, make_user):
    name = unique_name()
    user = await make_user(email=f"{name}@example.com")
    await free_the_address(deps, user)
    await make_user(email=f"{name}@example.com")
    await make_user(verified=False)
    report = await audit_ledger(deps.db)
    assert report.ok, report.violations


# -- a verified email to order and to review --------------------------------------------------


async def test_an_unverified_account_cannot_order_and_nothing_is_written(api, deps, make_user):
    buyer, seller = await make_user(verified=False), await make_user()
    skill_id = await insert_skill(deps, owner_id=seller.id, price=1)
    async with deps.db.read() as session:
        before = await session.scalar(select(func.count()).select_from(Order))
    headers = {"Idempotency-Key": unique_name("key")}
    refused = await api.post(
        ORDERS, token=buyer.access, json={"skill_id": skill_id}, headers=headers
    )
    assert refused.status_code == 403, refused.text
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    assert refused.json()["code"] == "email_not_verified"
    again = await api.post(ORDERS, token=buyer.access, json={"skill_id": skill_id}, headers=headers)
    assert (again.status_code, again.json()["code"]) == (403, "email_not_verified")
    async with deps.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == before
        assert (
            await session.scalar(
                select(func.count()).select_from(Order).where(Order.buyer_id == buyer.id)
            )
            == 0
        )
    reader = await make_user(verified=False, locale="ar")
    arabic = await api.post(ORDERS, token=reader.access, json={"skill_id": skill_id})
    assert arabic.json()["code"] == "email_not_verified"
    assert arabic.json()["title"] == "البريد الإلكتروني غير مؤكَّد"

    await verify_email(api, deps, buyer.id)
    placed = await api.post(ORDERS, token=buyer.access, json={"skill_id": skill_id})
    assert placed.status_code == 201, placed.text


async def _completed(api, buyer: TestUser, seller: TestUser, skill_id: int) -> int:  # type: ignore[no-untyped-def]
    order_id = int(
        (await api.post(ORDERS, token=buyer.access, json={"skill_id": skill_id})).json()["id"]
    )
    for user, action in ((seller, "accept"), (seller, "deliver"), (buyer, "complete")):
        response = await api.post(f"{ORDERS}{order_id}/{action}/", token=user.access, json={})
        assert response.status_code == 200, response.text
    return order_id


async def _review(api, user: TestUser, order_id: int, rating: int = 5):  # type: ignore[no-untyped-def]
    return await api.post(f"{ORDERS}{order_id}/review/", token=user.access, json={"rating": rating})


async def test_an_unverified_participant_cannot_review_and_nothing_is_written(api, deps, make_user):
    buyer, seller = await make_user(), await make_user(verified=False)
    skill_id = await insert_skill(deps, owner_id=seller.id, price=1)
    order_id = await _completed(api, buyer, seller, skill_id)
    refused = await _review(api, seller, order_id)
    assert (refused.status_code, refused.json()["code"]) == (403, "email_not_verified")
    async with deps.db.read() as session:
        assert (
            await session.scalar(
                select(func.count()).select_from(Review).where(Review.order_id == order_id)
            )
            == 0
        )
    await verify_email(api, deps, seller.id)
    assert (await _review(api, seller, order_id)).status_code == 201


async def test_require_verified_email_false_lifts_it(settings, deps):
    demo = {"require_verified_email": False, "signup_bonus_on": "signup"}
    async with node(settings, **demo) as (node_api, node_deps):
        buyer = await factories.make_user(node_api, node_deps, verified=False)
        seller = await factories.make_user(node_api, node_deps, verified=False)
        skill_id = await insert_skill(deps, owner_id=seller.id, price=1)
        order_id = await _completed(node_api, buyer, seller, skill_id)
        assert (await _review(node_api, buyer, order_id)).status_code == 201
        assert (await _review(node_api, seller, order_id)).status_code == 201


# -- review pairs ------------------------------------------------------------------------------


def clock_moved(deps, delta: timedelta):  # type: ignore[no-untyped-def]
    assert isinstance(deps.clock, MovableClock)
    return deps.clock.moved(delta)


async def _rating(deps, user_id: int) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    async with deps.db.read() as session:
        row = (
            await session.execute(
                select(User.rating_sum, User.rating_count).where(User.id == user_id)
            )
        ).one()
    return int(row.rating_sum), int(row.rating_count)


async def _reviewed_both_ways(api, buyer, seller, skill_id, *, buyer_rating, seller_rating):  # type: ignore[no-untyped-def]
    order_id = await _completed(api, buyer, seller, skill_id)
    assert (await _review(api, buyer, order_id, buyer_rating)).status_code == 201
    assert (await _review(api, seller, order_id, seller_rating)).status_code == 201
    return order_id


async def written_a_period_earlier(deps, order_id: int) -> None:  # type: ignore[no-untyped-def]
    """The order's reviews, and the pair periods they were counted in, as if written one
    period before: the time between two orders, without moving the clock under live tokens."""
    days = deps.settings.review_pair_period_days
    async with deps.db.uow() as uow:
        reviews = (
            await uow.session.scalars(select(Review).where(Review.order_id == order_id))
        ).all()
        ids = [r.id for r in reviews]
        for review in reviews:
            review.created_at -= timedelta(days=days)
        await uow.session.execute(
            update(ReviewPairPeriod)
            .where(ReviewPairPeriod.review_id.in_(ids))
            .values(period_start=ReviewPairPeriod.period_start - days)
        )
        await uow.commit()


async def test_two_reviews_between_the_same_people_in_one_period_count_once(api, deps, make_user):
    buyer, seller = await make_user(), await make_user()
    skill_id = await insert_skill(deps, owner_id=seller.id, price=1)
    await _reviewed_both_ways(api, buyer, seller, skill_id, buyer_rating=5, seller_rating=4)
    second = await _reviewed_both_ways(
        api, buyer, seller, skill_id, buyer_rating=1, seller_rating=1
    )
    assert await _rating(deps, seller.id) == (5, 1)
    assert await _rating(deps, buyer.id) == (4, 1)
    skill = await factories.skill_row(deps, skill_id)
    assert (skill.rating_sum, skill.rating_count) == (5, 1)
    # Both reviews are stored and shown.
    shown = (await api.get(f"/api/users/{seller.id}/reviews/")).json()
    assert shown["count"] == 2
    assert second in {r["order_id"] for r in shown["results"]}


async def test_reviews_between_the_same_people_in_two_periods_count_twice(api, deps, make_user):
    buyer, seller = await make_user(), await make_user()
    skill_id = await insert_skill(deps, owner_id=seller.id, price=1)
    earlier = await _reviewed_both_ways(
        api, buyer, seller, skill_id, buyer_rating=5, seller_rating=4
    )
    await written_a_period_earlier(deps, earlier)
    await _reviewed_both_ways(api, buyer, seller, skill_id, buyer_rating=3, seller_rating=2)
    assert await _rating(deps, seller.id) == (8, 2)
    assert await _rating(deps, buyer.id) == (6, 2)
    skill = await factories.skill_row(deps, skill_id)
    assert (skill.rating_sum, skill.rating_count) == (8, 2)
    report = await audit_ledger(deps.db)
    assert report.ok, report.violations


async def test_a_pair_counts_once_for_lone_reviews_published_by_the_sweep(api, deps, make_user):
    from skillswap.reviews.services import publish_due_reviews

    buyer, seller = await make_user(), await make_user()
    skill_id = await insert_skill(deps, owner_id=seller.id, price=1)
    orders = [await _completed(api, buyer, seller, skill_id) for _ in range(3)]
    for order_id in orders:
        assert (await _review(api, buyer, order_id, 2)).status_code == 201
    window = timedelta(seconds=deps.settings.review_window_seconds + 60)
    await publish_due_reviews(deps, now=deps.clock() + window)
    assert await _rating(deps, seller.id) == (2, 1)


@pytest.mark.postgres
async def test_reviews_of_one_pair_counted_at_once_count_once(api, deps, make_user):
    buyer, seller = await make_user(), await make_user()
    skill_id = await insert_skill(deps, owner_id=seller.id, price=1)
    orders = [await _completed(api, buyer, seller, skill_id) for _ in range(6)]
    for order_id in orders:  # the seller's reviews wait, hidden, for the buyer's
        assert (await _review(api, seller, order_id, 3)).status_code == 201
    answers = await asyncio.gather(*(_review(api, buyer, order_id, 4) for order_id in orders))
    assert [a.status_code for a in answers] == [201] * len(orders)
    assert await _rating(deps, seller.id) == (4, 1)
    assert await _rating(deps, buyer.id) == (3, 1)
    skill = await factories.skill_row(deps, skill_id)
    assert (skill.rating_sum, skill.rating_count) == (4, 1)
