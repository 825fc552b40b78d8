"""Order endpoints: /api/points/orders/ (place, list), /api/points/orders/{id}/ (read, act)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from skillswap.http.accounts import user_public
from skillswap.http.base import BaseHandler, idempotent, limited, path_id, route, takes_query
from skillswap.http.operations import operation
from skillswap.http.schemas import OrderOut, Page
from skillswap.http.validation import Body, Id, Moment
from skillswap.i18n import N_, Translator, in_language
from skillswap.models import Lesson, OrderTransition, Review
from skillswap.models.orders import ORDER_STATUSES
from skillswap.orders import queries as orders_queries
from skillswap.orders import services as orders
from skillswap.orders.queries import OrderView
from skillswap.orders.rules import ACTIONS

Action = Literal[
    "accept",
    "reject",
    "deliver",
    "complete",
    "cancel",
    "request_changes",
    "dispute",
    "resolve",
    "no_show",
    "propose_time",
    "accept_time",
]
assert set(Action.__args__) == set(ACTIONS)  # type: ignore[attr-defined]


def review_json(review: Review) -> dict[str, Any]:
    """A review as the API shows it to someone allowed to read it."""
    return {
        "id": review.id,
        "rating": review.rating,
        "comment": review.comment,
        "reviewer_id": review.reviewer_id,
        "reviewer_role": review.reviewer_role,
        "created_at": review.created_at,
    }


def transition_json(step: OrderTransition) -> dict[str, Any]:
    """One step of an order's history."""
    return {
        "action": step.action,
        "from_status": step.from_status,
        "to_status": step.to_status,
        "actor_id": step.actor_id,  # None: a deadline moved the order
        "note": step.note,
        "at": step.created_at,
    }


def lesson_json(lesson: Lesson | None) -> dict[str, Any] | None:
    """When an order's lesson takes place (UTC), and a new time proposed if there is one."""
    if lesson is None:
        return None
    return {
        "starts_at": lesson.starts_at,
        "ends_at": lesson.ends_at,
        "minutes": lesson.minutes,
        "proposed_starts_at": lesson.proposed_starts_at,
        "proposed_by": lesson.proposed_by,
    }


def order_json(view: OrderView, translator: Translator) -> dict[str, Any]:
    """An order as its viewer sees it: the parties' public profiles, never anything private."""
    order = view.order
    document: dict[str, Any] = {
        "id": order.id,
        "status": order.status,
        "skill": {
            "id": view.skill.id,
            "title": in_language(view.skill.title_en, view.skill.title_ar, translator.locale)[0],
        },
        "buyer": user_public(view.buyer, translator),
        "seller": user_public(view.seller, translator),
        "roles": sorted(view.roles),
        "price_points": order.price_points,
        "requirements": order.requirements,
        "deadline_at": order.deadline_at,
        "resolution": order.resolution,
        "settlement": (
            None
            if order.refunded_points is None
            else {
                "seller_points": order.seller_points,
                "fee_points": order.fee_points,
                "refunded_points": order.refunded_points,
            }
        ),
        "allowed_actions": view.allowed_actions,
        "room_id": view.room_id,  # its chat room: /api/chat/rooms/{room_id}/ and on /ws/
        "lesson": lesson_json(view.lesson),  # null: not a lesson
        "created_at": order.created_at,
        "updated_at": order.updated_at,
        "completed_at": order.completed_at,
    }
    if view.history is not None:
        document["history"] = [transition_json(step) for step in view.history]
    if view.reviews is not None:
        state = view.reviews
        document["reviews"] = {
            "can_review": state.can_review,
            "window_closes_at": state.window_closes_at,
            "mine": review_json(state.mine) if state.mine else None,
            "theirs": review_json(state.theirs) if state.theirs else None,
            "theirs_submitted": state.theirs_submitted,
        }
    return document


class PlaceOrderBody(Body):
    skill_id: Id
    requirements: str = Field(default="", max_length=5000)
    slot_start: Moment | None = Field(
        default=None,
        description="A lesson skill's start, one of its free slots (ISO 8601; required for a "
        "lesson, refused otherwise)",
    )


class ActionFields(Body):
    note: str = Field(default="", max_length=2000)
    resolution: Literal["refund", "release", "split"] | None = None
    buyer_points: int | None = Field(default=None, ge=1)
    slot_start: Moment | None = Field(
        default=None,
        description="propose_time: the lesson's proposed new start (ISO 8601; without an "
        "offset: UTC)",
    )


class TransitionBody(ActionFields):
    action: Action


class OrderListQuery(Body):
    role: Literal["buyer", "seller", "all"] | None = None
    status: list[str] = Field(default_factory=list)
    page: SkipJsonSchema[str | None] = None  # read by page_params()
    page_size: SkipJsonSchema[str | None] = None

    @field_validator("status")
    @classmethod
    def _known_statuses(cls, value: list[str]) -> list[str]:
        # Accept both ?status=a&status=b and ?status=a,b.
        statuses = [part.strip() for item in value for part in item.split(",") if part.strip()]
        if any(status not in ORDER_STATUSES for status in statuses):
            raise ValueError(N_("Unknown order status."))
        return statuses


class OrdersHandler(BaseHandler):
    @operation("listOrders", tag="Orders", response=Page[OrderOut], paged=True, problems=(403,))
    @takes_query(OrderListQuery)
    async def get(self) -> None:
        """The signed-in user's orders (role=buyer|seller; admins role=all), filterable by status."""
        page = self.page_params()
        query = self.query(OrderListQuery)
        count, views = await orders_queries.list_orders(
            self.deps,
            actor=self.user,
            role=query.role,
            statuses=query.status,
            offset=page.offset,
            limit=page.page_size,
        )
        self.send_page(
            page, count=count, results=[order_json(view, self.translator) for view in views]
        )

    @operation(
        "placeOrder",
        tag="Orders",
        body=PlaceOrderBody,
        response=OrderOut,
        status=201,
        problems=(402, 403, 404, 409),
    )
    @limited("order")
    @idempotent
    async def post(self) -> None:
        """Order a skill: its price is held in escrow and the order waits for the seller.

        A lesson skill books a time in the same transaction: `slot_start` is one of its free
        slots (409 `slot_unavailable` if not offered, `slot_taken` if someone booked it first).
        """
        body = self.parse_body(PlaceOrderBody)
        view = await orders.place_order(
            self.deps,
            actor=self.user,
            skill_id=body.skill_id,
            requirements=body.requirements,
            idempotency_key=self.request.headers.get("Idempotency-Key"),
            slot_start=body.slot_start,
        )
        self.send(order_json(view, self.translator), status=201)

    def location_of(self, created: Any) -> str:
        return f"/api/points/orders/{created['id']}/"


async def _act(handler: BaseHandler, order_id: int, action: str, body: ActionFields) -> None:
    view = await orders.transition_order(
        handler.deps,
        actor=handler.user,
        order_id=order_id,
        action=action,
        note=body.note,
        resolution=body.resolution,
        buyer_points=body.buyer_points,
        slot_start=body.slot_start,
    )
    handler.send(order_json(view, handler.translator))


class OrderHandler(BaseHandler):
    @operation("getOrder", tag="Orders", response=OrderOut, problems=(404,))
    async def get(self, order_id: str) -> None:
        """One order with its history (its buyer, its seller and administrators only)."""
        view = await orders_queries.get_order(
            self.deps, actor=self.user, order_id=path_id(order_id)
        )
        self.send(order_json(view, self.translator))

    @operation(
        "actOnOrder", tag="Orders", body=TransitionBody, response=OrderOut, problems=(403, 404, 409)
    )
    @idempotent
    async def put(self, order_id: str) -> None:
        """Take an action on the order: {action, note?}; resolve also takes a resolution,
        a lesson's propose_time a slot_start."""
        body = self.parse_body(TransitionBody)
        await _act(self, path_id(order_id), body.action, body)


class OrderActionHandler(BaseHandler):
    @operation(
        "takeOrderAction",
        tag="Orders",
        body=ActionFields,
        response=OrderOut,
        problems=(403, 404, 409),
    )
    @idempotent
    async def post(self, order_id: str, action: str) -> None:
        """Take `action` on the order: the same as PUT /api/points/orders/{id}/ {action}."""
        body = self.parse_body(ActionFields)
        await _act(self, path_id(order_id), action, body)


routes = [
    route("/api/points/orders/", OrdersHandler),
    route(r"/api/points/orders/(?P<order_id>\d+)/", OrderHandler),
    route(
        rf"/api/points/orders/(?P<order_id>\d+)/(?P<action>{'|'.join(ACTIONS)})/",
        OrderActionHandler,
    ),
]
