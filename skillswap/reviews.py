"""Review use cases: the two participants of a completed order review each other, double-blind.

A review is hidden until the other side has reviewed too or the review window (counted from
completion) has closed; that is decided whenever reviews are read, from the timestamps, so no
timer has to publish anything. The reviewed user's rating (and, for a buyer's review, the
skill's) is updated in the same transaction with `SET x = x + n`, so concurrent reviews add up
exactly. The aggregate counts every submitted review, hidden or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from skillswap.deps import Deps
from skillswap.errors import Conflict, NotFound, PermissionDenied
from skillswap.i18n import lazy
from skillswap.models import Order, Review, Skill, User


@dataclass(frozen=True)
class ReviewView:
    review: Review
    reviewer: User
    skill_id: int
    skill_title_en: str
    skill_title_ar: str


@dataclass(frozen=True)
class ReviewState:
    """One participant's view of an order's reviews."""

    can_review: bool
    window_closes_at: datetime | None
    mine: Review | None
    theirs: Review | None  # only once it is public
    theirs_submitted: bool


def window_closes_at(order: Order, window_seconds: int) -> datetime | None:
    """When the order's review window closes (None before it is completed)."""
    if order.completed_at is None:
        return None
    return order.completed_at + timedelta(seconds=window_seconds)


async def submit_review(
    deps: Deps, *, actor: User, order_id: int, rating: int, comment: str = ""
) -> Review:
    """Review the other participant of a completed order, once, within the review window."""
    now = deps.clock()
    async with deps.db.uow() as uow:
        session = uow.session
        order = await session.get(Order, order_id)
        participant = order is not None and actor.id in (order.buyer_id, order.seller_id)
        if order is None or not (participant or actor.is_admin):
            raise NotFound(lazy("This order does not exist."), code="order_not_found")
        if not participant:
            raise PermissionDenied(
                lazy("Only the buyer and the seller of an order can review it."),
                code="not_a_participant",
            )
        if order.status != "completed":
            raise Conflict(
                lazy("Only a completed order can be reviewed."),
                code="order_not_completed",
                extra={"status": order.status},
            )
        closes = window_closes_at(order, deps.settings.review_window_seconds)
        if closes is not None and now >= closes:
            raise Conflict(
                lazy("The review window of this order has closed."), code="review_window_closed"
            )
        is_buyer = actor.id == order.buyer_id
        reviewee_id = order.seller_id if is_buyer else order.buyer_id
        review = Review(
            order_id=order.id,
            reviewer_id=actor.id,
            reviewee_id=reviewee_id,
            skill_id=order.skill_id,
            reviewer_role="buyer" if is_buyer else "seller",
            rating=rating,
            comment=comment,
            created_at=now,
        )
        session.add(review)
        try:
            await session.flush()
        except IntegrityError:
            # UNIQUE (order_id, reviewer_id): a second review, perhaps sent at the same moment.
            raise _already_reviewed() from None
        await session.execute(
            update(User)
            .where(User.id == reviewee_id)
            .values(rating_sum=User.rating_sum + rating, rating_count=User.rating_count + 1)
        )
        if is_buyer:
            # The buyer's review rates the skill too; the seller's rates only the buyer.
            await session.execute(
                update(Skill)
                .where(Skill.id == order.skill_id)
                .values(rating_sum=Skill.rating_sum + rating, rating_count=Skill.rating_count + 1)
            )
        await uow.commit()
    return review


def _already_reviewed() -> Conflict:
    return Conflict(lazy("You have already reviewed this order."), code="already_reviewed")


def _public(now: datetime, window_seconds: int) -> ColumnElement[bool]:
    """Reviews readers may see: both sides reviewed, or the window closed (needs Order joined)."""
    other = aliased(Review)
    return or_(
        Order.completed_at <= now - timedelta(seconds=window_seconds),
        exists().where(other.order_id == Review.order_id, other.reviewer_id != Review.reviewer_id),
    )


async def _list(
    deps: Deps, *, condition: ColumnElement[bool], offset: int, limit: int
) -> tuple[int, list[ReviewView]]:
    public = _public(deps.clock(), deps.settings.review_window_seconds)
    reviewer = aliased(User)
    async with deps.db.read() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Review)
            .join(Order, Order.id == Review.order_id)
            .where(condition, public)
        )
        rows = (
            await session.execute(
                select(Review, reviewer, Skill.id, Skill.title_en, Skill.title_ar)
                .join(Order, Order.id == Review.order_id)
                .join(reviewer, reviewer.id == Review.reviewer_id)
                .join(Skill, Skill.id == Review.skill_id)
                .where(condition, public)
                .order_by(Review.id.desc())
                .offset(offset)
                .limit(limit)
            )
        ).all()
    return int(count or 0), [
        ReviewView(review, reviewer_row, skill_id, title_en, title_ar)
        for review, reviewer_row, skill_id, title_en, title_ar in rows
    ]


async def list_user_reviews(
    deps: Deps, *, user_id: int, offset: int, limit: int
) -> tuple[int, list[ReviewView]]:
    """The public reviews written about a user (as seller or as buyer), newest first."""
    async with deps.db.read() as session:
        user = await session.get(User, user_id)
    if user is None or not user.is_active:
        raise NotFound()
    return await _list(deps, condition=Review.reviewee_id == user_id, offset=offset, limit=limit)


async def list_skill_reviews(
    deps: Deps, *, skill_id: int, offset: int, limit: int
) -> tuple[int, list[ReviewView]]:
    """The public reviews buyers wrote about a skill, newest first."""
    async with deps.db.read() as session:
        status = await session.scalar(select(Skill.status).where(Skill.id == skill_id))
    if status is None or status == "deleted":
        raise NotFound(lazy("This skill does not exist."), code="skill_not_found")
    condition: Any = (Review.skill_id == skill_id) & (Review.reviewer_role == "buyer")
    return await _list(deps, condition=condition, offset=offset, limit=limit)


async def review_state(
    session: AsyncSession, order: Order, *, viewer_id: int, now: datetime, window_seconds: int
) -> ReviewState:
    """What a participant sees of an order's reviews: their own, and the other once public."""
    reviews = list((await session.scalars(select(Review).where(Review.order_id == order.id))).all())
    mine = next((r for r in reviews if r.reviewer_id == viewer_id), None)
    theirs = next((r for r in reviews if r.reviewer_id != viewer_id), None)
    closes = window_closes_at(order, window_seconds)
    window_open = closes is not None and now < closes
    public = theirs is not None and (mine is not None or not window_open)
    return ReviewState(
        can_review=order.status == "completed" and window_open and mine is None,
        window_closes_at=closes,
        mine=mine,
        theirs=theirs if public else None,
        theirs_submitted=theirs is not None,
    )
