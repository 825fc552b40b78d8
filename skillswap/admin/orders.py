"""Orders as administrators see them: every order, filtered and searched, and one order's case
(the order, its whole history with who acted, both parties, the skill, and its chat).

Administrators are not members of an order's chat room: they read it here, read-only, newest
messages first with a cursor (`before`, a message's `seq`) to page back. Settling a dispute
stays the order's own `resolve` action (skillswap.orders.services).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, func, or_, select

from skillswap.admin import audit
from skillswap.chat.services import MessageRecord, message_record
from skillswap.errors import ValidationFailed
from skillswap.i18n import lazy, one_of
from skillswap.models import ChatMessage, Order, Skill, User
from skillswap.orders import queries
from skillswap.orders.queries import OrderView, SkillRef
from skillswap.orders.rules import allowed_actions

if TYPE_CHECKING:
    from skillswap.deps import Deps

MAX_MESSAGES = 100
# The columns a list may be sorted by: `column` ascending, `-column` descending; ties (and the
# default, newest first) by id.
ORDER_SORTS: dict[str, Any] = {
    "id": Order.id,
    "created_at": Order.created_at,
    "updated_at": Order.updated_at,
    "status": Order.status,
    "price": Order.price_points,
}
DEFAULT_ORDER_SORT = "-id"
ORDER_SORT_KEYS = tuple(k for name in ORDER_SORTS for k in (name, "-" + name))


@dataclass(frozen=True)
class OrderCase:
    """One order for an administrator: the view with its history, and its chat."""

    view: OrderView
    actors: dict[int, User]  # who acted in its history (deadlines act as nobody)
    messages: list[MessageRecord]  # oldest first: the newest `limit` before the cursor
    senders: dict[int, User]
    has_more: bool  # older messages exist (ask with before = the oldest seq shown)


def _search(term: str) -> ColumnElement[bool]:
    """An order id, a party's username or email, or the skill's title (either language)."""
    like = f"%{term.lower()}%"
    parties = select(User.id).where(or_(User.username_key.like(like), User.email.like(like)))
    matches: list[ColumnElement[bool]] = [
        Order.buyer_id.in_(parties),
        Order.seller_id.in_(parties),
        Order.skill_id.in_(
            select(Skill.id).where(
                or_(func.lower(Skill.title_en).like(like), Skill.title_ar.like(like))
            )
        ),
    ]
    if term.isdecimal() and len(term) < 19:
        matches.append(Order.id == int(term))
    return or_(*matches)


def _order_by(sort: str) -> list[Any]:
    """The ORDER BY of a sort key (400 naming `sort` for any other)."""
    if sort not in ORDER_SORT_KEYS:
        raise ValidationFailed(
            errors={"sort": [lazy("Must be one of: {choices}.", choices=one_of(ORDER_SORT_KEYS))]}
        )
    descending = sort.startswith("-")
    column = ORDER_SORTS[sort.removeprefix("-")]
    tie = Order.id.desc() if descending else Order.id.asc()
    return [column.desc() if descending else column.asc(), tie]


async def list_orders(
    deps: Deps,
    *,
    actor: User,
    status: str | None,
    search: str | None,
    buyer_id: int | None = None,
    seller_id: int | None = None,
    offset: int,
    limit: int,
    sort: str | None = None,
) -> tuple[int, list[OrderView]]:
    """Every order, newest first unless `sort` (one of ORDER_SORT_KEYS) says, by status, party
    and a search (administrators)."""
    audit.require_admin(actor)
    order_by = _order_by(sort or DEFAULT_ORDER_SORT)
    conditions: list[ColumnElement[bool]] = []
    if status is not None:
        conditions.append(Order.status == status)
    if buyer_id is not None:
        conditions.append(Order.buyer_id == buyer_id)
    if seller_id is not None:
        conditions.append(Order.seller_id == seller_id)
    if search:
        conditions.append(_search(search))
    async with deps.db.read() as session:
        count = await session.scalar(select(func.count()).select_from(Order).where(*conditions))
        rows = (
            await session.execute(
                queries.list_page(conditions, order=order_by, offset=offset, limit=limit)
            )
        ).all()
    views = []
    for order, buyer, seller, skill_id, title_en, title_ar, room_id, lesson in rows:
        roles = queries.roles_of(order, actor)
        views.append(
            OrderView(
                order=order,
                buyer=buyer,
                seller=seller,
                skill=SkillRef(skill_id, title_en, title_ar),
                roles=roles,
                allowed_actions=allowed_actions(
                    roles, order.status, changes_left=queries.changes_left(order, deps.settings)
                ),
                room_id=room_id,
                lesson=lesson,
            )
        )
    return int(count or 0), views


async def order_case(
    deps: Deps, *, actor: User, order_id: int, before: int | None = None, limit: int = 50
) -> OrderCase:
    """The order in full, its history's actors, and its chat's newest `limit` messages
    before the message numbered `before` (administrators, read-only)."""
    audit.require_admin(actor)
    limit = max(1, min(limit, MAX_MESSAGES))
    async with deps.db.read() as session:
        order = await session.get(Order, order_id)
        if order is None:
            raise queries.order_not_found()
        view = await queries.order_view(deps, session, order, actor)
        actor_ids = {t.actor_id for t in view.history or [] if t.actor_id is not None}
        messages: list[MessageRecord] = []
        has_more = False
        if view.room_id is not None:
            query = select(ChatMessage).where(ChatMessage.room_id == view.room_id)
            if before is not None:
                query = query.where(ChatMessage.seq < before)
            rows = list(
                await session.scalars(query.order_by(ChatMessage.seq.desc()).limit(limit + 1))
            )
            has_more = len(rows) > limit
            messages = [message_record(m) for m in reversed(rows[:limit])]
        people_ids = actor_ids | {m["sender"] for m in messages}
        people = {
            u.id: u for u in await session.scalars(select(User).where(User.id.in_(people_ids)))
        }
    return OrderCase(
        view=view,
        actors={i: people[i] for i in actor_ids if i in people},
        messages=messages,
        senders={m["sender"]: people[m["sender"]] for m in messages if m["sender"] in people},
        has_more=has_more,
    )
