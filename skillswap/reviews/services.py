"""Review use cases: the two participants of a completed order review each other, double-blind.

A review is hidden until the other side has reviewed too or the review window (counted from
completion) has closed; who may read it is decided whenever reviews are read, from the
timestamps.

The public rating aggregates (the reviewed user's, and for a buyer's review the skill's) only
ever include public reviews: a hidden rating added at once could be read off the change in the
reviewee's average and count, which would undo the double-blind. So a review is *counted* when
it becomes public - both reviews in the transaction of the second one, or a lone review by
`publish_due_reviews` once its window has closed - with `SET x = x + n` (exact under
concurrency), and `counted_at` is set by a conditional update so that each rating is counted
exactly once however many sweeps run.

Reviews between the same two people count once per period (REVIEW_PAIR_PERIOD_DAYS, fixed
periods from 1970-01-01 by the time a review was written): a review from A about B is added to
the aggregates only if it is the first counted one from A about B in its period, which a row in
`review_pair_periods` records under a primary key. The others are stored and shown as any
review; they only leave the averages alone, so that puppet orders cannot make a rating.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from skillswap.accounts.verification import require_verified_email
from skillswap.errors import Conflict, NotFound, PermissionDenied
from skillswap.i18n import lazy
from skillswap.models import Order, Review, Skill, User
from skillswap.models.notifications import NotificationKind
from skillswap.models.orders import OrderStatus
from skillswap.models.reviews import ReviewerRole, ReviewPairPeriod
from skillswap.models.skills import SkillStatus
from skillswap.notifications import services as notifications

if TYPE_CHECKING:
    from skillswap.deps import Deps


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
    """Review the other participant of a completed order, once, within the review window.

    The second review of an order makes both public, and both are counted in the ratings then.
    """
    require_verified_email(deps, actor)
    now = deps.clock()
    async with deps.db.uow() as uow:
        session = uow.session
        # The order row is locked first (the lock order of the order use cases): the two
        # participants' reviews of one order then run one after the other, so the second always
        # sees the first and counts both.
        order = await session.get(Order, order_id, with_for_update={"key_share": True})
        order = _reviewable_order(deps, order, actor, now=now)
        existing = list(
            (await session.scalars(select(Review).where(Review.order_id == order.id))).all()
        )
        if any(r.reviewer_id == actor.id for r in existing):
            raise _already_reviewed()
        theirs = next((r for r in existing if r.reviewer_id != actor.id), None)
        is_buyer = actor.id == order.buyer_id
        review = Review(
            order_id=order.id,
            reviewer_id=actor.id,
            reviewee_id=order.seller_id if is_buyer else order.buyer_id,
            skill_id=order.skill_id,
            reviewer_role=ReviewerRole.BUYER if is_buyer else ReviewerRole.SELLER,
            rating=rating,
            comment=comment,
            created_at=now,
            # Public at once when the other side has reviewed: counted now, with theirs.
            counted_at=now if theirs is not None else None,
        )
        session.add(review)
        try:
            await session.flush()
        except IntegrityError:
            # UNIQUE (order_id, reviewer_id): the lock above makes this a last line of defence.
            raise _already_reviewed() from None
        if theirs is not None:
            newly_public = [_Rating.of(review)]
            # Theirs may have been counted already by a sweep that found its window closed.
            if await _mark_counted(session, theirs.id, now=now):
                newly_public.append(_Rating.of(theirs))
            await _count_ratings(deps, session, newly_public)
        await notifications.notify(
            deps,
            uow,
            user_id=review.reviewee_id,
            kind=NotificationKind.REVIEW_RECEIVED,
            text=lazy(
                "{reviewer} reviewed you on order #{order}.",
                reviewer=actor.display_name or actor.username,
                order=order.id,
            ),
            payload={"order_id": order.id, "review_id": review.id},
        )
        await uow.commit()
    return review


def _reviewable_order(deps: Deps, order: Order | None, actor: User, *, now: datetime) -> Order:
    """The order, if `actor` took part in it, it is completed, and its window is still open."""
    participant = order is not None and actor.id in (order.buyer_id, order.seller_id)
    if order is None or not (participant or actor.is_admin):
        raise NotFound(lazy("This order does not exist."), code="order_not_found")
    if not participant:
        raise PermissionDenied(
            lazy("Only the buyer and the seller of an order can review it."),
            code="not_a_participant",
        )
    if order.status != OrderStatus.COMPLETED:
        raise Conflict(
            lazy("Only a completed order can be reviewed."),
            code="order_not_completed",
            extra={"order_status": order.status},
        )
    closes = window_closes_at(order, deps.settings.review_window_seconds)
    if closes is not None and now >= closes:
        raise Conflict(
            lazy("The review window of this order has closed."), code="review_window_closed"
        )
    return order


async def publish_due_reviews(deps: Deps, *, now: datetime, limit: int = 500) -> int:
    """Count the lone reviews whose window closed by `now` in the public ratings, each once.

    Returns how many this call counted; a review another sweep counted first is skipped.
    """
    cutoff = now - timedelta(seconds=deps.settings.review_window_seconds)
    async with deps.db.read() as session:
        due = (
            await session.execute(
                select(
                    Review.id,
                    Review.reviewer_id,
                    Review.reviewee_id,
                    Review.skill_id,
                    Review.reviewer_role,
                    Review.rating,
                    Review.created_at,
                )
                .join(Order, Order.id == Review.order_id)
                .where(Review.counted_at.is_(None), Order.completed_at <= cutoff)
                .order_by(Review.id)
                .limit(limit)
            )
        ).all()
    counted = 0
    for row in due:
        # One unit of work per review, like the order deadlines: none waits on another.
        async with deps.db.uow() as uow:
            if not await _mark_counted(uow.session, row.id, now=now):
                continue  # counted meanwhile, by another sweep or with the second review
            lone = _Rating(
                row.id,
                row.reviewer_id,
                row.reviewee_id,
                row.skill_id,
                row.reviewer_role,
                row.rating,
                row.created_at,
            )
            await _count_ratings(deps, uow.session, [lone])
            await uow.commit()
            counted += 1
    return counted


async def _mark_counted(session: AsyncSession, review_id: int, *, now: datetime) -> bool:
    """Claim a review for counting: True for exactly one caller, however many race."""
    claimed = await session.execute(
        update(Review)
        .where(Review.id == review_id, Review.counted_at.is_(None))
        .values(counted_at=now)
    )
    return claimed.rowcount == 1  # type: ignore[attr-defined]


@dataclass(frozen=True)
class _Rating:
    """What counting a review needs of it."""

    review_id: int
    reviewer_id: int
    reviewee_id: int
    skill_id: int
    reviewer_role: str
    rating: int
    created_at: datetime

    @classmethod
    def of(cls, review: Review) -> _Rating:
        return cls(
            review.id,
            review.reviewer_id,
            review.reviewee_id,
            review.skill_id,
            review.reviewer_role,
            review.rating,
            review.created_at,
        )


def pair_period_start(written_at: datetime, period_days: int) -> int:
    """The first day (days since 1970-01-01, UTC) of the pair period a review written at
    `written_at` falls in: fixed periods of `period_days` days from that epoch."""
    day = (written_at - _EPOCH).days
    return day - day % period_days


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def _claim_pair_periods(
    deps: Deps, session: AsyncSession, reviews: Sequence[_Rating]
) -> list[_Rating]:
    """The reviews that are the first of their (reviewer, reviewee, period) to be counted.

    A review that is not is stored and shown but left out of the ratings: ten orders between
    the same two people in a month weigh what one does. ON CONFLICT DO NOTHING on the primary
    key keeps it exact when two count at once (PostgreSQL makes the second wait for the
    first's commit, then inserts nothing); claims are made in key order so that two
    transactions claiming the same pairs never wait for each other in a cycle.
    """
    days = deps.settings.review_pair_period_days
    insert = sqlite.insert if deps.db.is_sqlite else postgresql.insert
    keyed = sorted(
        reviews,
        key=lambda r: (r.reviewer_id, r.reviewee_id, pair_period_start(r.created_at, days)),
    )
    counted = []
    for review in keyed:
        claimed = await session.execute(
            insert(ReviewPairPeriod)
            .values(
                reviewer_id=review.reviewer_id,
                reviewee_id=review.reviewee_id,
                period_start=pair_period_start(review.created_at, days),
                review_id=review.review_id,
            )
            .on_conflict_do_nothing()
        )
        if claimed.rowcount == 1:  # type: ignore[attr-defined]
            counted.append(review)
    return counted


async def _count_ratings(deps: Deps, session: AsyncSession, reviews: Sequence[_Rating]) -> None:
    """Add the ratings of newly public reviews to the users' and skills' aggregates, each
    review the first of its pair and period only.

    `SET x = x + n` keeps concurrent additions exact. Users are updated in id order and before
    skills, so two transactions counting reviews about the same people never wait in a cycle.
    """
    users: Counter[int] = Counter()
    user_counts: Counter[int] = Counter()
    skills: Counter[int] = Counter()
    skill_counts: Counter[int] = Counter()
    for review in await _claim_pair_periods(deps, session, reviews):
        users[review.reviewee_id] += review.rating
        user_counts[review.reviewee_id] += 1
        if review.reviewer_role == ReviewerRole.BUYER:
            # The buyer's review rates the skill too; the seller's rates only the buyer.
            skills[review.skill_id] += review.rating
            skill_counts[review.skill_id] += 1
    for user_id in sorted(user_counts):
        await session.execute(
            update(User)
            .where(User.id == user_id)
            .values(
                rating_sum=User.rating_sum + users[user_id],
                rating_count=User.rating_count + user_counts[user_id],
            )
        )
    for skill_id in sorted(skill_counts):
        await session.execute(
            update(Skill)
            .where(Skill.id == skill_id)
            .values(
                rating_sum=Skill.rating_sum + skills[skill_id],
                rating_count=Skill.rating_count + skill_counts[skill_id],
            )
        )


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
    if status is None or status == SkillStatus.DELETED:
        raise NotFound(lazy("This skill does not exist."), code="skill_not_found")
    condition: Any = (Review.skill_id == skill_id) & (Review.reviewer_role == ReviewerRole.BUYER)
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
        can_review=order.status == OrderStatus.COMPLETED and window_open and mine is None,
        window_closes_at=closes,
        mine=mine,
        theirs=theirs if public else None,
        theirs_submitted=theirs is not None,
    )
