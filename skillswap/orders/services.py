"""Order use cases: place an order with its price held in escrow, move it through its states.

Each use case is one unit of work. A transition is a conditional
`UPDATE orders ... WHERE id = :id AND status = :from`: of two concurrent actions on one order
exactly one changes the row, and only that one touches escrow, so a hold is resolved once.
Lock order, everywhere: the order row, then the skill row, then ledger accounts by id.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, Update, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from skillswap import events, idempotency, ledger
from skillswap.accounts.verification import require_verified_email
from skillswap.admin import audit
from skillswap.db import CompiledStatement, UnitOfWork
from skillswap.errors import (
    Conflict,
    NotFound,
    PaymentRequired,
    PermissionDenied,
    ValidationFailed,
)
from skillswap.i18n import lazy, lazy_plural
from skillswap.ledger import Payout, SystemAccount, TransferKind
from skillswap.ledger.stores import Outcome, store_for
from skillswap.ledger.transfers import MAX_KEY_LENGTH as LEDGER_KEY_LENGTH
from skillswap.lessons import booking as lesson_booking
from skillswap.lessons import cancellation, rescheduling
from skillswap.lessons.rules import LessonMoment, moment_of, not_now, releases_slot
from skillswap.models import (
    LedgerAccount,
    Lesson,
    Order,
    OrderTransition,
    Skill,
    User,
)
from skillswap.models.admin import AuditTarget
from skillswap.models.orders import OrderAction, OrderStatus
from skillswap.models.skills import SkillStatus
from skillswap.orders import reactions as order_chat
from skillswap.orders.queries import (
    NO_REVIEWS,
    OrderView,
    SkillRef,
    changes_left,
    order_not_found,
    order_view,
    roles_of,
)
from skillswap.orders.rules import (
    OPEN_STATUSES,
    PAUSABLE_STATUSES,
    PAUSE_RULE,
    Escrow,
    Refusal,
    Role,
    Rule,
    action_label,
    allowed_actions,
    find_rule,
    resume_rule,
    status_label,
)
from skillswap.orders.settlement import Settlement, deadline_after, settlement_for
from skillswap.orders.statements import PLACE_ORDER_PG, SELLER_FIELDS

if TYPE_CHECKING:
    from skillswap.deps import Deps

# -- placing an order ----------------------------------------------------------------------------


async def place_order(
    deps: Deps,
    *,
    actor: User,
    skill_id: int,
    requirements: str = "",
    idempotency_key: str | None = None,
    slot_start: datetime | None = None,
) -> OrderView:
    """Hold the skill's price on the actor's wallet and create the order, pending the seller.

    A lesson skill books `slot_start` in the same transaction (skillswap.lessons.booking);
    any other skill refuses one. With an idempotency key, placing again returns the first
    order (or its refusal).
    """
    require_verified_email(deps, actor)
    now = deps.clock()
    hold_key = _hold_key(actor, idempotency_key)
    deadline_at = deadline_after(OrderStatus.PENDING, now, deps.settings)
    async with deps.db.uow() as uow:
        # A booking takes the steps: its slot is checked and claimed between them.
        one_statement = uow.driver is not None and slot_start is None
        place = _place_in_one_statement if one_statement else _place_in_steps
        placed = await place(
            deps,
            uow,
            actor,
            skill_id,
            hold_key=hold_key,
            requirements=requirements,
            deadline_at=deadline_at,
            now=now,
            slot_start=slot_start,
        )
        if isinstance(placed, OrderView):  # a replayed key: nothing was written
            await uow.commit()  # committing keeps the loaded rows usable
            return placed
        found, values, step = placed.skill, placed.values, placed.step
        order_id = step["order_id"]
        await events.emit(
            deps,
            uow,
            events.OrderPlaced(
                order_id=order_id, buyer_id=actor.id, seller_id=found.owner_id, skill_id=skill_id
            ),
        )
        room_id = order_chat.room_opened_for(uow, order_id)
        await uow.commit()
    # The response shows the rows just written, from the values written.
    order = Order(id=order_id, **values)
    roles = roles_of(order, actor)
    return OrderView(
        order=order,
        buyer=actor,
        seller=_seller_as_read(found),
        skill=SkillRef(skill_id, found.title_en, found.title_ar),
        roles=roles,
        allowed_actions=allowed_actions(
            roles,
            OrderStatus.PENDING,
            lesson=moment_of(
                placed.lesson, deadline_at=values["deadline_at"], viewer_id=actor.id, now=now
            ),
        ),
        history=[OrderTransition(id=placed.step_id, **step)],
        reviews=NO_REVIEWS,
        room_id=room_id,
        lesson=placed.lesson,
    )


@dataclass(frozen=True)
class _Placed:
    """What placing wrote: the skill and seller as read, the order's and its first step's
    columns (with their ids), and the lesson booked (if it is one)."""

    skill: Any
    values: dict[str, Any]
    step: dict[str, Any]
    step_id: int
    lesson: Lesson | None = None


async def _place_in_one_statement(
    deps: Deps,
    uow: UnitOfWork,
    actor: User,
    skill_id: int,
    *,
    hold_key: str,
    requirements: str,
    deadline_at: datetime | None,
    now: datetime,
    slot_start: datetime | None = None,
) -> _Placed | OrderView:
    """PostgreSQL: the skill, its hold, the order and its history in one round trip
    (`statements.PLACE_ORDER_PG`); the refusals are read from the row it returns.

    Not for a booking (`slot_start`): a lesson skill found here is refused (`slot_required`)
    and what the statement wrote is rolled back with the unit of work."""
    assert slot_start is None
    assert uow.driver is not None
    args = (skill_id, actor.id, hold_key, now, deadline_at, requirements)
    found = await uow.driver.fetchrow(PLACE_ORDER_PG, *args)
    if found is not None and found["orderable"] and found["wallet"] is None:
        # No wallet yet (nothing was written): open it, then place the order the same way.
        await ledger.ensure_wallet(uow.session, actor.id, now=now)
        found = await uow.driver.fetchrow(PLACE_ORDER_PG, *args)
    skill = _check_orderable(None if found is None else _Row(found), actor)
    lesson_booking.booking_for(skill.lesson_minutes, None)
    price = int(skill.price_points)
    ledger.check_hold(hold_key, price)
    outcome = Outcome(found["found"], found["hold_id"], found["shortfall"])
    store = await store_for(uow.session)
    hold = await _held(
        uow,
        ledger.hold_result(store, outcome, key=hold_key, account_id=skill.wallet, amount=price),
        price,
    )
    if hold.replayed:
        return await _replayed_order(deps, uow.session, hold, skill_id=skill_id, actor=actor)
    values = _order_values(
        actor, skill, skill_id, hold.hold_id, price, requirements, deadline_at, now=now
    )
    step = _placed_step(found["order_id"], actor, now=now)
    return _Placed(skill, values, step, found["step_id"])


async def _place_in_steps(
    deps: Deps,
    uow: UnitOfWork,
    actor: User,
    skill_id: int,
    *,
    hold_key: str,
    requirements: str,
    deadline_at: datetime | None,
    now: datetime,
    slot_start: datetime | None = None,
) -> _Placed | OrderView:
    """Elsewhere (SQLite), and for a booking: the same reads and writes, one statement each;
    a lesson's slot is checked before the hold and claimed after the order."""
    session = uow.session
    conn = await session.connection()
    found = _check_orderable(
        (
            await conn.execute(_SKILL_SELLER_AND_WALLET, {"skill_id": skill_id, "buyer": actor.id})
        ).first(),
        actor,
    )
    booking = lesson_booking.booking_for(found.lesson_minutes, slot_start)
    if booking is not None:
        await lesson_booking.check_slot_offered(
            session, booking, seller_id=found.owner_id, now=now, settings=deps.settings
        )
        deadline_at = lesson_booking.pending_deadline(deadline_at, booking)
    price = int(found.price_points)
    wallet = found.wallet or await ledger.ensure_wallet(session, actor.id, now=now)
    hold = await _held(
        uow,
        ledger.place_hold(session, key=hold_key, account_id=wallet, amount=price, now=now),
        price,
    )
    if hold.replayed:
        return await _replayed_order(deps, session, hold, skill_id=skill_id, actor=actor)
    values = _order_values(
        actor, found, skill_id, hold.hold_id, price, requirements, deadline_at, now=now
    )
    order_id = await _INSERT_ORDER.scalar(conn, values)
    step = _placed_step(order_id, actor, now=now)
    step_id = await _INSERT_TRANSITION.scalar(conn, step)
    lesson = None
    if booking is not None:
        lesson = await lesson_booking.claim_slot(
            session,
            booking,
            order_id=order_id,
            seller_id=found.owner_id,
            buyer_id=actor.id,
            now=now,
        )
    return _Placed(found, values, step, step_id, lesson)


class _Row:
    """An asyncpg record read by attribute, as SQLAlchemy's rows are."""

    __slots__ = ("_record",)

    def __init__(self, record: Any) -> None:
        self._record = record

    def __getattr__(self, name: str) -> Any:
        try:
            return self._record[name]
        except KeyError:
            raise AttributeError(name) from None


def _hold_key(actor: User, idempotency_key: str | None) -> str:
    """The escrow hold's ledger key: the client's key (up to idempotency.MAX_KEY_LENGTH) with
    its prefix, fitted to the ledger's column; a fresh one without a client key."""
    if idempotency_key:
        return idempotency.fitted(f"order:{actor.id}:{idempotency_key}", LEDGER_KEY_LENGTH)
    return f"order:{uuid.uuid4().hex}"


_UNORDERABLE = (SkillStatus.DELETED, SkillStatus.HIDDEN)


def _check_orderable(found: Any, actor: User) -> Any:
    """The skill as read (with its seller), if the actor may order it now; else the refusal."""
    # A hidden skill (an administrator's decision) is as unknown to buyers as a deleted one.
    if found is None or found.status in _UNORDERABLE or not found.is_active:
        raise NotFound(lazy("This skill does not exist."), code="skill_not_found")
    if found.owner_id == actor.id:
        raise PermissionDenied(lazy("You cannot order your own skill."), code="own_skill")
    if found.status != SkillStatus.ACTIVE:
        raise Conflict(
            lazy("This skill is paused and takes no orders right now."), code="skill_paused"
        )
    return found


async def _held(
    uow: UnitOfWork, placing: Awaitable[ledger.HoldResult], price: int
) -> ledger.HoldResult:
    """The hold `placing` places on the buyer's wallet (or what the key did the first time)."""
    try:
        return await placing
    except ledger.InsufficientFunds as short:
        if not short.replayed:
            await uow.commit()  # the refusal is this key's outcome from now on
        raise _insufficient(short.shortfall, price) from None
    except ledger.IdempotencyMismatch:
        raise _key_reused() from None


async def _replayed_order(
    deps: Deps, session: AsyncSession, hold: ledger.HoldResult, *, skill_id: int, actor: User
) -> OrderView:
    """The order a replayed hold paid for, if it was an order of this skill."""
    existing = await session.scalar(select(Order).where(Order.hold_id == hold.hold_id))
    if existing is None or existing.skill_id != skill_id:
        raise _key_reused()
    return await order_view(deps, session, existing, actor)


def _order_values(
    actor: User,
    found: Any,
    skill_id: int,
    hold_id: int,
    price: int,
    requirements: str,
    deadline_at: datetime | None,
    *,
    now: datetime,
) -> dict[str, Any]:
    """Every column of the new order (Core inserts: the ORM's flush costs more than the
    statements on this hot path)."""
    return {
        "buyer_id": actor.id,
        "seller_id": found.owner_id,
        "skill_id": skill_id,
        "hold_id": hold_id,
        "status": OrderStatus.PENDING,
        "price_points": price,
        "requirements": requirements,
        "change_requests": 0,
        "deadline_at": deadline_at,
        "resolution": None,
        "seller_points": None,
        "fee_points": None,
        "refunded_points": None,
        "created_at": now,
        "updated_at": now,
        "completed_at": None,
    }


def _placed_step(order_id: int, actor: User, *, now: datetime) -> dict[str, Any]:
    """The first step of the new order's history."""
    return {
        "order_id": order_id,
        "actor_id": actor.id,
        "action": OrderAction.PLACE,
        "from_status": None,
        "to_status": OrderStatus.PENDING,
        "note": "",
        "created_at": now,
    }


def _seller_as_read(found: Any) -> User:
    """The seller as the response shows them, from the row just read (not a session object)."""
    return User(**{name: getattr(found, name) for name in SELLER_FIELDS}, id=found.owner_id)


# Built once: a statement made per call is re-keyed for SQLAlchemy's compile cache every time.
# The skill and its seller, and the buyer's wallet, in one round trip. FOR KEY SHARE OF the
# skill: see orders.statements.
_SKILL_SELLER_AND_WALLET = (
    select(
        Skill.owner_id,
        Skill.status,
        Skill.price_points,
        Skill.title_en,
        Skill.title_ar,
        Skill.lesson_minutes,
        *(getattr(User, name) for name in SELLER_FIELDS),
        select(LedgerAccount.id)
        .where(LedgerAccount.user_id == bindparam("buyer"))
        .scalar_subquery()
        .label("wallet"),
    )
    .join(User, User.id == Skill.owner_id)
    .where(Skill.id == bindparam("skill_id"))
    .with_for_update(read=True, key_share=True, of=Skill)
)
_orders: Table = Order.__table__  # type: ignore[assignment]
_transitions: Table = OrderTransition.__table__  # type: ignore[assignment]
_INSERT_ORDER = CompiledStatement(insert(_orders).returning(_orders.c.id))
_INSERT_TRANSITION = CompiledStatement(insert(_transitions).returning(_transitions.c.id))


def _insufficient(shortfall: int, price: int) -> PaymentRequired:
    return PaymentRequired(
        lazy_plural(
            "You need {n} more point to order this skill.",
            "You need {n} more points to order this skill.",
            shortfall,
        ),
        extra={"missing": shortfall, "price": price},
    )


def _key_reused() -> Conflict:
    return Conflict(
        lazy("This Idempotency-Key was already used with a different request body."),
        code="idempotency_key_reused",
    )


# -- transitions ---------------------------------------------------------------------------------


async def transition_order(
    deps: Deps,
    *,
    actor: User,
    order_id: int,
    action: str,
    note: str = "",
    resolution: str | None = None,
    buyer_points: int | None = None,
    slot_start: datetime | None = None,
) -> OrderView:
    """Take `action` on an order as `actor`, settling escrow when the action ends the order.

    An administrator's `resolve` writes its audit row ("order.resolve") in the same unit of work.
    A lesson's `propose_time` takes `slot_start`, the proposed start; `accept_time` moves the
    lesson there (skillswap.lessons.rescheduling), both in the order's unit of work.
    """
    now = deps.clock()
    async with deps.db.uow() as uow:
        session = uow.session
        order = await session.get(Order, order_id)
        roles = roles_of(order, actor) if order is not None else frozenset()
        if order is None or not roles:
            raise order_not_found()
        lesson = await session.get(Lesson, order_id)
        if lesson is not None:
            # A lesson's times decide what an action does (a cancellation's price, whether a
            # proposal still stands): read them under the order's lock, so that a move
            # committed meanwhile is seen and one racing this action waits for it.
            await session.refresh(order, with_for_update=True)
            await session.refresh(lesson)
        found = _rule_for(deps, order, action, roles, lesson=lesson, actor=actor, now=now)
        if slot_start is not None and found.action != OrderAction.PROPOSE_TIME:
            raise ValidationFailed(
                errors={"slot_start": [lazy("Only proposing a time takes a slot_start.")]}
            )
        proposed: datetime | None = None
        if lesson is not None and found.action == OrderAction.PROPOSE_TIME:
            proposed = await rescheduling.checked_proposal(
                session, lesson, slot_start, now=now, settings=deps.settings
            )
            note = rescheduling.time_note(proposed, note)
        elif lesson is not None and found.action == OrderAction.ACCEPT_TIME:
            assert lesson.proposed_starts_at is not None  # _rule_for checked it
            # Still a time a booking could take: not too near or past, in the teacher's hours.
            await rescheduling.check_still_offered(session, lesson, now=now, settings=deps.settings)
            note = rescheduling.time_note(lesson.proposed_starts_at, note)
        settlement = settlement_for(
            found,
            price=order.price_points,
            fee_percent=deps.settings.platform_fee_percent,
            resolution=resolution,
            buyer_points=buyer_points,
            teacher_share=(
                cancellation.teacher_share(
                    price=order.price_points,
                    starts_at=lesson.starts_at,
                    confirmed=order.status == OrderStatus.ACCEPTED,
                    now=now,
                    settings=deps.settings,
                )
                if lesson is not None and found.escrow is Escrow.CANCELLATION
                else 0
            ),
        )
        status_before = order.status
        moved = await apply_transition(
            deps,
            uow,
            order,
            found,
            actor_id=actor.id,
            note=note,
            settlement=settlement,
            now=now,
            lesson=lesson,
        )
        if not moved:
            raise await _lost_race(deps, session, order_id, found, roles)
        if lesson is not None and proposed is not None:
            await rescheduling.record_proposal(session, lesson, proposed, by=actor.id)
        elif lesson is not None and found.action == OrderAction.ACCEPT_TIME:
            await rescheduling.move_to_proposal(session, lesson, now=now)
        if found.action == OrderAction.RESOLVE:
            await _audit_resolution(
                session, actor, order, status_before, settlement, note=note, now=now
            )
        view = await order_view(deps, session, order, actor)
        await uow.commit()
    return view


async def _audit_resolution(
    session: AsyncSession,
    actor: User,
    order: Order,
    status_before: str,
    settlement: Settlement,
    *,
    note: str,
    now: datetime,
) -> None:
    """The audit row of an administrator's resolution: the status it had, where the points went."""
    await audit.record(
        session,
        actor,
        "order.resolve",
        AuditTarget.ORDER,
        order.id,
        before={"status": status_before},
        after={
            "status": order.status,
            "resolution": settlement.resolution,
            "seller_points": settlement.seller_points,
            "fee_points": settlement.fee_points,
            "refunded_points": settlement.refunded_points,
        },
        reason=note,
        now=now,
    )


def _rule_for(
    deps: Deps,
    order: Order,
    action: str,
    roles: frozenset[Role],
    *,
    lesson: Lesson | None = None,
    actor: User | None = None,
    now: datetime | None = None,
) -> Rule:
    """The rule that lets `roles` take `action` on the order as it was read, or the refusal.

    On a lesson (`lesson`, seen by `actor` at `now`) its actions also have to be open now.
    """
    if order.status == OrderStatus.PAUSED and Role.ADMIN not in roles:
        raise _order_paused()
    left = changes_left(order, deps.settings)
    moment = (
        moment_of(lesson, deadline_at=order.deadline_at, viewer_id=actor.id, now=now)
        if actor is not None and now is not None
        else None
    )
    found = find_rule(action, roles, order.status, lesson=lesson is not None)
    if found is Refusal.NOT_YOUR_ROLE:
        raise PermissionDenied(
            lazy('You are not allowed to "{action}" this order.', action=action_label(action)),
            code="action_not_permitted",
            extra={
                "action": action,
                "order_status": order.status,
                "allowed_actions": allowed_actions(roles, order.status, lesson=moment),
            },
        )
    if isinstance(found, Refusal):
        raise _invalid_transition(order.status, action, roles, left, lesson=moment)
    if found.action == OrderAction.REQUEST_CHANGES and not left:
        raise _changes_exhausted(order.status, roles, deps.settings.order_max_change_requests)
    closed = not_now(found.action, found.role, moment) if moment is not None else None
    if closed is not None:
        raise closed.conflict(
            order_status=order.status,
            action=found.action,
            allowed=list(allowed_actions(roles, order.status, changes_left=left, lesson=moment)),
        )
    return found


async def _lost_race(
    deps: Deps, session: AsyncSession, order_id: int, rule: Rule, roles: frozenset[Role]
) -> Conflict:
    """Someone else moved the order first (or used up the last change request): the refusal,
    reported from the order as it is now."""
    now_status, now_changes = (
        await session.execute(
            select(Order.status, Order.change_requests).where(Order.id == order_id)
        )
    ).one()
    left = now_changes < deps.settings.order_max_change_requests
    if now_status == OrderStatus.PAUSED and Role.ADMIN not in roles:
        return _order_paused()
    if (
        rule.action == OrderAction.REQUEST_CHANGES
        and now_status == OrderStatus.DELIVERED
        and not left
    ):
        return _changes_exhausted(now_status, roles, deps.settings.order_max_change_requests)
    return _invalid_transition(now_status, rule.action, roles, left)


def _invalid_transition(
    status: str,
    action: str,
    roles: frozenset[Role],
    changes_left: bool,
    *,
    lesson: LessonMoment | None = None,
) -> Conflict:
    allowed = allowed_actions(roles, status, changes_left=changes_left, lesson=lesson)
    return Conflict(
        lazy(
            'This order is "{status}": "{action}" is not possible now.',
            status=status_label(status),
            action=action_label(action),
        ),
        code="invalid_transition",
        extra={"order_status": status, "action": action, "allowed_actions": allowed},
    )


def _order_paused() -> Conflict:
    return Conflict(
        lazy(
            "This order is paused while an administrator reviews an account in it: "
            "nothing can be done to it for now."
        ),
        code="order_paused",
        extra={"order_status": OrderStatus.PAUSED, "allowed_actions": []},
    )


def _changes_exhausted(status: str, roles: frozenset[Role], limit: int) -> Conflict:
    return Conflict(
        lazy_plural(
            "Changes were requested {n} time already: complete the order or open a dispute.",
            "Changes were requested {n} times already: complete the order or open a dispute.",
            limit,
        ),
        code="change_requests_exhausted",
        extra={
            "order_status": status,
            "action": OrderAction.REQUEST_CHANGES,
            "max_change_requests": limit,
            "allowed_actions": allowed_actions(roles, status, changes_left=False),
        },
    )


class _Unread(Enum):
    """An argument the caller has not read, as opposed to one it found to be None."""

    UNREAD = "unread"


async def apply_transition(
    deps: Deps,
    uow: UnitOfWork,
    order: Order,
    rule: Rule,
    *,
    actor_id: int | None,
    note: str,
    settlement: Settlement,
    now: datetime,
    due_by: datetime | None = None,
    lesson: Lesson | _Unread | None = _Unread.UNREAD,
) -> bool:
    """Move `order` by `rule` if it is still in the status it was read in; False if not.

    `due_by` (deadlines) also requires the order's deadline to have passed by then. `lesson`
    is the order's lesson (None: it is not one) when the caller has read it already.
    """
    session = uow.session
    from_status = order.status
    if lesson is _Unread.UNREAD:
        lesson = await session.get(Lesson, order.id)
    moved = await session.execute(
        _conditional_update(deps, order, rule, settlement, lesson, now=now, due_by=due_by)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        return False
    if lesson is not None and releases_slot(rule.to_status, settlement.resolution):
        # It ends without its lesson: the time is the teacher's to give again.
        await rescheduling.release_claims(session, order.id)
    if rule.to_status == OrderStatus.COMPLETED:
        await session.execute(
            update(Skill)
            .where(Skill.id == order.skill_id)
            .values(orders_completed=Skill.orders_completed + 1)
        )
    await _settle_escrow(session, order, settlement, now=now)
    session.add(
        OrderTransition(
            order_id=order.id,
            actor_id=actor_id,
            action=rule.action,
            from_status=from_status,
            to_status=rule.to_status,
            note=note,
            created_at=now,
        )
    )
    await session.flush()
    await events.emit(
        deps,
        uow,
        events.OrderTransitioned(
            order_id=order.id,
            buyer_id=order.buyer_id,
            seller_id=order.seller_id,
            actor_id=actor_id,
            action=rule.action,
            from_status=from_status,
            to_status=rule.to_status,
            note=note,
        ),
    )
    await session.refresh(order)
    return True


def _conditional_update(
    deps: Deps,
    order: Order,
    rule: Rule,
    settlement: Settlement,
    lesson: Lesson | None,
    *,
    now: datetime,
    due_by: datetime | None,
) -> Update:
    """`UPDATE orders` to the rule's status, only while the order is in the status it was read
    in (and, for a deadline, only if it has passed by `due_by`).

    A lesson's deadline follows its times (the proposed ones once `accept_time` moves it); a
    proposal leaves the deadline as it was.
    """
    values: dict[str, object] = {"status": rule.to_status, "updated_at": now, **settlement.columns}
    if rule.action != OrderAction.PROPOSE_TIME:
        times = _times_after(rule, lesson)
        values["deadline_at"] = deadline_after(rule.to_status, now, deps.settings, times)
    if rule.to_status == OrderStatus.COMPLETED:
        values["completed_at"] = now
    conditions = [Order.id == order.id, Order.status == order.status]
    if rule.action == OrderAction.REQUEST_CHANGES:
        # In the same conditional update, so that requests racing a redelivery stay capped.
        values["change_requests"] = Order.change_requests + 1
        conditions.append(Order.change_requests < deps.settings.order_max_change_requests)
    if due_by is not None:
        conditions.append(Order.deadline_at <= due_by)
    return update(Order).where(*conditions).values(values)


@dataclass(frozen=True)
class _Times:
    starts_at: datetime
    ends_at: datetime


def _times_after(rule: Rule, lesson: Lesson | None) -> _Times | Lesson | None:
    """The lesson's times once `rule` has moved the order (None: not a lesson)."""
    if lesson is None or rule.action != OrderAction.ACCEPT_TIME:
        return lesson
    assert lesson.proposed_starts_at is not None
    start = lesson.proposed_starts_at
    return _Times(start, start + timedelta(minutes=lesson.minutes))


async def _settle_escrow(
    session: AsyncSession, order: Order, settlement: Settlement, *, now: datetime
) -> None:
    if settlement.escrow is Escrow.VOID:
        await ledger.void_hold(session, hold_id=order.hold_id, now=now)
    elif settlement.escrow is Escrow.POST:
        payouts: list[Payout] = []
        if settlement.seller_points:
            seller_wallet = await ledger.ensure_wallet(session, order.seller_id, now=now)
            payouts.append(
                Payout(seller_wallet, settlement.seller_points, TransferKind.ORDER_EARNINGS)
            )
        if settlement.fee_points:
            payouts.append(
                Payout(
                    SystemAccount.PLATFORM_FEES, settlement.fee_points, TransferKind.PLATFORM_FEE
                )
            )
        await ledger.post_hold(
            session, hold_id=order.hold_id, payouts=payouts, order_id=order.id, now=now
        )


# -- pausing and resuming (a ban and its lifting) -----------------------------------------------


async def pause_orders_of(
    deps: Deps, uow: UnitOfWork, *, actor: User, user_id: int, now: datetime
) -> list[int]:
    """Pause every running order `user_id` is the buyer or the seller of (the ban's part).

    Each gets a `pause` step (from the status it had, which `resume_orders_of` returns it to)
    with `actor` as its actor and its deadline cleared; the escrow stays held. Both sides are
    told (the banned one's notification is stored, never mailed: delivery skips inactive users).
    A dispute is left as it is (it already waits for an administrator), and so is an order
    already paused by the other side's ban: an order is paused once. The ids paused.
    """
    found = await uow.session.scalars(
        select(Order)
        .where(
            or_(Order.buyer_id == user_id, Order.seller_id == user_id),
            Order.status.in_(PAUSABLE_STATUSES),
        )
        .order_by(Order.id)
    )
    paused: list[int] = []
    for order in list(found):
        if await apply_transition(
            deps,
            uow,
            order,
            PAUSE_RULE,
            actor_id=actor.id,
            note="",
            settlement=Settlement(Escrow.KEEP),
            now=now,
        ):
            paused.append(order.id)
    return paused


async def resume_orders_of(
    deps: Deps, uow: UnitOfWork, *, actor: User, user_id: int, now: datetime
) -> list[int]:
    """Resume the paused orders of `user_id` whose other side is active (the unban's part).

    Each goes back to the status it was paused in, with a fresh deadline for that status (as
    any transition into it sets). One an administrator resolved meanwhile is no longer paused
    and stays as it is; one whose other side is still banned stays paused. The ids resumed.
    """
    session = uow.session
    found = await session.scalars(
        select(Order)
        .where(
            or_(Order.buyer_id == user_id, Order.seller_id == user_id),
            Order.status == OrderStatus.PAUSED,
        )
        .order_by(Order.id)
    )
    resumed: list[int] = []
    for order in list(found):
        other_id = order.seller_id if order.buyer_id == user_id else order.buyer_id
        if not await session.scalar(select(User.is_active).where(User.id == other_id)):
            continue
        status_before = await session.scalar(
            select(OrderTransition.from_status)
            .where(
                OrderTransition.order_id == order.id,
                OrderTransition.action == OrderAction.PAUSE,
            )
            .order_by(OrderTransition.id.desc())
            .limit(1)
        )
        if status_before is None:
            continue  # never paused by a ban: not the unban's to resume
        if await apply_transition(
            deps,
            uow,
            order,
            resume_rule(status_before),
            actor_id=actor.id,
            note="",
            settlement=Settlement(Escrow.KEEP),
            now=now,
        ):
            resumed.append(order.id)
    return resumed


async def has_open_orders(session: AsyncSession, skill_id: int) -> bool:
    """Whether any order of the skill is still open (deleting it then only pauses it)."""
    found = await session.scalar(
        select(Order.id).where(Order.skill_id == skill_id, Order.status.in_(OPEN_STATUSES)).limit(1)
    )
    return found is not None


class OpenOrdersOfSkills:
    """What deleting a skill asks (`Deps.open_orders`): a skill with open orders is only paused."""

    async def skill_has_open_orders(self, session: AsyncSession, skill_id: int) -> bool:
        return await has_open_orders(session, skill_id)
