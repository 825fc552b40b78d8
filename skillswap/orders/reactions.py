"""What chat and notifications do when an order is placed or moves.

These subscribers run inside the order's own transaction: the room and the notifications
commit with the order change or not at all; the notifications go out live after the commit.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from skillswap.chat import services as chat
from skillswap.db import UnitOfWork
from skillswap.i18n import Message, lazy
from skillswap.models.notifications import NotificationKind
from skillswap.models.orders import OrderAction
from skillswap.notifications import services as notifications
from skillswap.notifications.outgoing import needs_delivery
from skillswap.orders.statements import ROOM_AND_NOTICE_PG

if TYPE_CHECKING:
    from skillswap.deps import Deps

# What each transition tells the other side, by the action that caused it.
_TRANSITIONS: dict[str, tuple[NotificationKind, Message]] = {
    OrderAction.ACCEPT: (NotificationKind.ORDER_ACCEPTED, lazy("Order #{order} was accepted.")),
    OrderAction.REJECT: (NotificationKind.ORDER_REJECTED, lazy("Order #{order} was rejected.")),
    OrderAction.DELIVER: (
        NotificationKind.ORDER_DELIVERED,
        lazy("Order #{order} was delivered. Review the work."),
    ),
    OrderAction.COMPLETE: (NotificationKind.ORDER_COMPLETED, lazy("Order #{order} was completed.")),
    OrderAction.CANCEL: (NotificationKind.ORDER_CANCELLED, lazy("Order #{order} was cancelled.")),
    OrderAction.REQUEST_CHANGES: (
        NotificationKind.ORDER_CHANGES_REQUESTED,
        lazy("Changes were requested on order #{order}."),
    ),
    OrderAction.DISPUTE: (
        NotificationKind.ORDER_DISPUTED,
        lazy("Order #{order} is disputed. An administrator will review it."),
    ),
    OrderAction.RESOLVE: (
        NotificationKind.ORDER_RESOLVED,
        lazy("The dispute on order #{order} was resolved."),
    ),
    OrderAction.EXPIRE: (NotificationKind.ORDER_EXPIRED, lazy("Order #{order} expired.")),
    OrderAction.PAUSE: (
        NotificationKind.ORDER_PAUSED,
        lazy("Order #{order} is paused while an administrator reviews it."),
    ),
    OrderAction.RESUME: (NotificationKind.ORDER_RESUMED, lazy("Order #{order} was resumed.")),
    OrderAction.PROPOSE_TIME: (
        NotificationKind.ORDER_UPDATED,
        lazy("A new time was proposed for the lesson of order #{order}."),
    ),
    OrderAction.ACCEPT_TIME: (
        NotificationKind.ORDER_UPDATED,
        lazy("The lesson of order #{order} was moved to the new time."),
    ),
    OrderAction.NO_SHOW: (
        NotificationKind.ORDER_DELIVERED,
        lazy("The teacher reported that you did not come to the lesson of order #{order}."),
    ),
}
_OTHER = (NotificationKind.ORDER_UPDATED, lazy("Order #{order} was updated."))
_ROOMS_OPENED = "order_chat.rooms_opened"


def room_opened_for(uow: UnitOfWork, order_id: int) -> int | None:
    """The id of the room opened for `order_id` in this unit of work (placing the order
    answers with it without reading it back)."""
    opened: dict[int, int] = uow.session.info.get(_ROOMS_OPENED, {})
    return opened.get(order_id)


async def open_room_and_tell_the_seller(deps: Deps, uow: UnitOfWork, event: Any) -> None:
    """The order gets its chat room; the seller hears of the new order."""
    text = lazy("You have a new order #{order}.", order=event.order_id)
    about = {"order_id": event.order_id, "skill_id": event.skill_id, "buyer_id": event.buyer_id}
    kind = NotificationKind.ORDER_PLACED
    if uow.driver is not None and needs_delivery(kind, pushes=deps.pushes):
        room_id = await _room_and_notice_at_once(deps, uow, event, text, about)
    else:
        room_id = await chat.open_order_room(
            deps, uow, order_id=event.order_id, buyer_id=event.buyer_id, seller_id=event.seller_id
        )
        await notifications.notify(
            deps,
            uow,
            user_id=event.seller_id,
            kind=kind,
            text=text,
            payload={**about, "room": room_id},
        )
    uow.session.info.setdefault(_ROOMS_OPENED, {})[event.order_id] = room_id


async def _room_and_notice_at_once(
    deps: Deps, uow: UnitOfWork, event: Any, text: Message, about: dict[str, Any]
) -> int:
    """PostgreSQL: what `chat.open_order_room` and `notifications.notify` write, in one round
    trip of the order's transaction (`statements.ROOM_AND_NOTICE_PG`); the room's id."""
    assert uow.driver is not None
    values = notifications.notification_values(
        deps, user_id=event.seller_id, kind=NotificationKind.ORDER_PLACED, text=text
    )
    now = values["created_at"]
    room_id, notification_id, _notified = await uow.driver.fetchrow(
        ROOM_AND_NOTICE_PG,
        event.order_id,
        event.buyer_id,
        event.seller_id,
        now,
        values["kind"],
        values["msgid"],
        json.dumps(values["params"]),
        json.dumps(about),
    )
    values["payload"] = {**about, "room": room_id}
    notifications.announce(deps, uow, notification_id, values)
    return int(room_id)


async def tell_the_other_side(deps: Deps, uow: UnitOfWork, event: Any) -> None:
    """Buyer and seller hear of every transition the other (or an admin, or a deadline) made."""
    kind, template = _TRANSITIONS.get(event.action, _OTHER)
    # Whoever acted knows; a deadline (actor None) or an administrator tells both.
    recipients = sorted({event.buyer_id, event.seller_id} - {event.actor_id})
    for user_id in recipients:
        await notifications.notify(
            deps,
            uow,
            user_id=user_id,
            kind=kind,
            text=Message(template.msgid, {"order": event.order_id}),
            payload={
                "order_id": event.order_id,
                "action": event.action,
                "from_status": event.from_status,
                "to_status": event.to_status,
                "actor_id": event.actor_id,
                "note": event.note,
            },
        )
