"""Reading orders: one in detail (for its buyer, its seller and administrators), or a list."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, ScalarSelect, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from skillswap.errors import NotFound, PermissionDenied
from skillswap.i18n import lazy
from skillswap.lessons.rules import moment_of
from skillswap.models import ChatRoom, Lesson, Order, OrderTransition, Skill, User
from skillswap.models.orders import OrderAction, OrderStatus
from skillswap.orders.rules import Role, allowed_actions
from skillswap.reviews.services import ReviewState, review_state
from skillswap.settings import Settings

if TYPE_CHECKING:
    from skillswap.deps import Deps


@dataclass(frozen=True)
class SkillRef:
    id: int
    title_en: str
    title_ar: str


@dataclass(frozen=True)
class OrderView:
    """An order as one viewer sees it: their roles, what they may do, and (detail) its history."""

    order: Order
    buyer: User
    seller: User
    skill: SkillRef
    roles: frozenset[Role]
    allowed_actions: list[OrderAction]
    history: list[OrderTransition] | None = None
    reviews: ReviewState | None = None  # detail, for the two participants
    room_id: int | None = None  # the order's chat room (every order has one)
    lesson: Lesson | None = None  # when the lesson takes place (an order of a lesson skill)


def room_of(order_id: object) -> ScalarSelect[int]:
    """The id of the chat room of `order_id` (a value or a column), as a scalar subquery."""
    return select(ChatRoom.id).where(ChatRoom.order_id == order_id).scalar_subquery()


def roles_of(order: Order, user: User) -> frozenset[Role]:
    """The parts `user` plays in `order` (none: they may not even see it).

    An administrator who is the buyer or the seller plays only that part: nobody may settle a
    dispute over their own order, so the administrator's actions are for others' orders only.
    """
    roles: set[Role] = set()
    if order.buyer_id == user.id:
        roles.add(Role.BUYER)
    if order.seller_id == user.id:
        roles.add(Role.SELLER)
    if user.is_admin and not roles:
        roles.add(Role.ADMIN)
    return frozenset(roles)


def changes_left(order: Order, settings: Settings) -> bool:
    """Whether the buyer may still send the order's delivery back (`request_changes`)."""
    return order.change_requests < settings.order_max_change_requests


NO_REVIEWS = ReviewState(
    can_review=False, window_closes_at=None, mine=None, theirs=None, theirs_submitted=False
)


def order_not_found() -> NotFound:
    """Non-participants get the same answer as for an order that does not exist."""
    return NotFound(lazy("This order does not exist."), code="order_not_found")


async def get_order(deps: Deps, *, actor: User, order_id: int) -> OrderView:
    """One order with its history, for its buyer, its seller or an administrator."""
    async with deps.db.read() as session:
        order = await session.get(Order, order_id)
        if order is None or not roles_of(order, actor):
            raise order_not_found()
        return await order_view(deps, session, order, actor)


# An administrator's `role` filter: every order, whoever its parties are.
EVERY_ROLE = "all"


async def list_orders(
    deps: Deps,
    *,
    actor: User,
    role: str | None,
    statuses: list[str],
    offset: int,
    limit: int,
) -> tuple[int, list[OrderView]]:
    """The actor's orders as buyer, seller or either (administrators: `role='all'`), newest first."""
    conditions = _list_conditions(actor, role, statuses)
    async with deps.db.read() as session:
        count = await session.scalar(select(func.count()).select_from(Order).where(*conditions))
        rows = (await session.execute(list_page(conditions, offset=offset, limit=limit))).all()
    return int(count or 0), [_listed_view(deps, actor, row) for row in rows]


def _list_conditions(
    actor: User, role: str | None, statuses: list[str]
) -> list[ColumnElement[bool]]:
    """Which orders a list shows: the actor's side of their own (every one for `all`)."""
    if role == EVERY_ROLE and not actor.is_admin:
        raise PermissionDenied(lazy("Only administrators can list every order."), code="admin_only")
    conditions: list[ColumnElement[bool]] = []
    if role == Role.BUYER:
        conditions.append(Order.buyer_id == actor.id)
    elif role == Role.SELLER:
        conditions.append(Order.seller_id == actor.id)
    elif role != EVERY_ROLE:
        conditions.append(or_(Order.buyer_id == actor.id, Order.seller_id == actor.id))
    if statuses:
        conditions.append(Order.status.in_(statuses))
    return conditions


def list_page(
    conditions: list[ColumnElement[bool]],
    *,
    offset: int,
    limit: int,
    order: Sequence[Any] | None = None,
) -> Select[Order, User, User, int, str, str, int, Lesson]:
    """One page of listed orders, newest first unless `order` says otherwise, with both
    parties, the skill, the room and the lesson if it is one (the participants' lists and the
    administrators')."""
    buyer, seller = aliased(User), aliased(User)
    return (
        select(
            Order,
            buyer,
            seller,
            Skill.id,
            Skill.title_en,
            Skill.title_ar,
            room_of(Order.id),
            Lesson,
        )
        .join(buyer, buyer.id == Order.buyer_id)
        .join(seller, seller.id == Order.seller_id)
        .join(Skill, Skill.id == Order.skill_id)
        .outerjoin(Lesson, Lesson.order_id == Order.id)
        .where(*conditions)
        .order_by(*(order if order is not None else (Order.id.desc(),)))
        .offset(offset)
        .limit(limit)
    )


def _listed_view(deps: Deps, actor: User, row: Sequence[Any]) -> OrderView:
    """A listed order as `actor` sees it (no history: that is the detail's)."""
    order, buyer, seller, skill_id, title_en, title_ar, room_id, lesson = row
    roles = roles_of(order, actor)
    return OrderView(
        order=order,
        buyer=buyer,
        seller=seller,
        skill=SkillRef(skill_id, title_en, title_ar),
        roles=roles,
        allowed_actions=allowed_actions(
            roles,
            order.status,
            changes_left=changes_left(order, deps.settings),
            lesson=moment_of(
                lesson, deadline_at=order.deadline_at, viewer_id=actor.id, now=deps.clock()
            ),
        ),
        room_id=room_id,
        lesson=lesson,
    )


async def order_view(deps: Deps, session: AsyncSession, order: Order, actor: User) -> OrderView:
    """The order in detail: parties, skill, history, the viewer's review state, and its
    lesson (read with the skill)."""
    buyer = await session.get(User, order.buyer_id)
    seller = await session.get(User, order.seller_id)
    skill = (
        await session.execute(
            select(Skill.id, Skill.title_en, Skill.title_ar, room_of(order.id), Lesson)
            .outerjoin(Lesson, Lesson.order_id == order.id)
            .where(Skill.id == order.skill_id)
        )
    ).one()
    history = list(
        (
            await session.scalars(
                select(OrderTransition)
                .where(OrderTransition.order_id == order.id)
                .order_by(OrderTransition.id)
            )
        ).all()
    )
    assert buyer is not None and seller is not None
    roles = roles_of(order, actor)
    reviews = None
    if actor.id in (order.buyer_id, order.seller_id) and order.status != OrderStatus.COMPLETED:
        reviews = NO_REVIEWS  # only completed orders are ever reviewed
    elif actor.id in (order.buyer_id, order.seller_id):
        reviews = await review_state(
            session,
            order,
            viewer_id=actor.id,
            now=deps.clock(),
            window_seconds=deps.settings.review_window_seconds,
        )
    return OrderView(
        order=order,
        buyer=buyer,
        seller=seller,
        skill=SkillRef(skill.id, skill.title_en, skill.title_ar),
        roles=roles,
        allowed_actions=allowed_actions(
            roles,
            order.status,
            changes_left=changes_left(order, deps.settings),
            lesson=moment_of(
                skill[4], deadline_at=order.deadline_at, viewer_id=actor.id, now=deps.clock()
            ),
        ),
        history=history,
        reviews=reviews,
        room_id=skill[3],
        lesson=skill[4],
    )
