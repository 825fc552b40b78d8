"""The order state machine: who may do what from which status, and what it does to escrow.

| action          | who    | from                | to        | escrow                         |
|-----------------|--------|---------------------|-----------|--------------------------------|
| accept          | seller | pending             | accepted  | -                              |
| reject          | seller | pending             | rejected  | void (buyer refunded)          |
| deliver         | seller | accepted            | delivered | -                              |
| cancel          | seller | accepted            | cancelled | void (buyer refunded)          |
| cancel          | buyer  | pending W           | cancelled | void (buyer refunded)          |
| cancel          | buyer  | pending, accepted L | cancelled | the cancellation rule: void, or|
|                 |        |                     |           | post half to the teacher       |
| no_show         | seller | accepted L          | delivered | - (disputable; the clock pays) |
| propose_time    | either | pending, accepted L | unchanged | -                              |
| accept_time     | other  | pending, accepted L | unchanged | - (the quarters claimed move)  |
| complete        | buyer  | delivered           | completed | post (seller paid, minus fee)  |
| request_changes | buyer  | delivered W         | accepted  | -                              |
| dispute         | buyer  | accepted, delivered | disputed  | -                              |
| resolve         | admin  | disputed, paused    | resolved  | refund: void; release: post;   |
|                 |        |                     |           | split: post the seller's part  |
| pause           | ban    | pending, accepted,  | paused    | - (an administrator decides)   |
|                 |        | delivered           |           |                                |
| resume          | unban  | paused              | the status before the pause, with a fresh deadline |
| expire          | clock  | pending, accepted*  | expired   | void (buyer refunded)          |
| dispute         | clock  | accepted**          | disputed  | - (an administrator decides)   |
| complete        | clock  | delivered           | completed | post (seller paid, minus fee)  |

 * an accepted order that was never delivered.
** an accepted order that was delivered before and sent back with `request_changes`: the buyer
   has had the work, so running out the clock must not refund them; an administrator decides.
 W orders of a piece of work only; L lesson orders only (an order with a `Lesson` row). A
   lesson's buyer cancels from accepted too; the other side accepts a proposed time; every
   lesson action opens and closes with the lesson's times and the clock, and a lesson's
   deadlines follow its times (skillswap.lessons.rules).

`request_changes` is allowed at most ORDER_MAX_CHANGE_REQUESTS times per order (default 3);
after that the buyer may only complete or dispute the delivery (409 `change_requests_exhausted`).
Every other combination is refused: 403 when the actor's role never may, 409 (naming the status
and what the actor may do now) when the role may but not from this status. An administrator
who is the buyer or the seller of an order has only that role in it (never resolves it).

`pause` and `resume` are no person's actions: banning a party pauses the order (its deadline
cleared, the escrow kept) and lifting the ban resumes it (skillswap.orders.services
`pause_orders_of`, `resume_orders_of`). While it is paused the buyer and the seller may do
nothing (409 `order_paused`); an administrator may resolve it as they would a dispute.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from skillswap.i18n import Message, lazy
from skillswap.lessons.rules import LessonMoment, not_now
from skillswap.models.orders import OrderAction, OrderStatus


class Role(StrEnum):
    BUYER = "buyer"
    SELLER = "seller"
    ADMIN = "admin"


class Escrow(StrEnum):
    KEEP = "keep"  # the hold stays pending
    VOID = "void"  # refund the buyer
    POST = "post"  # pay the seller (and the fee)
    RESOLVE = "resolve"  # an administrator's decision: refund, release or split
    CANCELLATION = "cancellation"  # a lesson's buyer cancelling: free, or half to the teacher


class Applies(StrEnum):
    """Which orders a rule is for: any, pieces of work only, or lessons only."""

    ANY = "any"
    WORK = "work"
    LESSON = "lesson"


@dataclass(frozen=True)
class Rule:
    action: OrderAction
    role: Role
    from_statuses: tuple[OrderStatus, ...]
    to_status: OrderStatus
    escrow: Escrow
    applies: Applies = Applies.ANY

    def applies_to(self, *, lesson: bool) -> bool:
        if self.applies is Applies.ANY:
            return True
        return self.applies is (Applies.LESSON if lesson else Applies.WORK)


S = OrderStatus
A = OrderAction
RULES: tuple[Rule, ...] = (
    Rule(A.ACCEPT, Role.SELLER, (S.PENDING,), S.ACCEPTED, Escrow.KEEP),
    Rule(A.REJECT, Role.SELLER, (S.PENDING,), S.REJECTED, Escrow.VOID),
    Rule(A.DELIVER, Role.SELLER, (S.ACCEPTED,), S.DELIVERED, Escrow.KEEP),
    Rule(A.CANCEL, Role.SELLER, (S.ACCEPTED,), S.CANCELLED, Escrow.VOID),
    Rule(A.CANCEL, Role.BUYER, (S.PENDING,), S.CANCELLED, Escrow.VOID, Applies.WORK),
    Rule(
        A.CANCEL,
        Role.BUYER,
        (S.PENDING, S.ACCEPTED),
        S.CANCELLED,
        Escrow.CANCELLATION,
        Applies.LESSON,
    ),
    Rule(A.COMPLETE, Role.BUYER, (S.DELIVERED,), S.COMPLETED, Escrow.POST),
    # A lesson is not redone on request: its learner completes or disputes it.
    Rule(A.REQUEST_CHANGES, Role.BUYER, (S.DELIVERED,), S.ACCEPTED, Escrow.KEEP, Applies.WORK),
    Rule(A.DISPUTE, Role.BUYER, (S.ACCEPTED, S.DELIVERED), S.DISPUTED, Escrow.KEEP),
    Rule(A.RESOLVE, Role.ADMIN, (S.DISPUTED, S.PAUSED), S.RESOLVED, Escrow.RESOLVE),
    # The learner did not come: delivered as if taught, so they may still dispute it, and the
    # clock completes it (the teacher paid in full) as any delivery.
    Rule(A.NO_SHOW, Role.SELLER, (S.ACCEPTED,), S.DELIVERED, Escrow.KEEP, Applies.LESSON),
    # A new time for a lesson, proposed by one side and accepted by the other: the status stays.
    *(
        Rule(action, role, (status,), status, Escrow.KEEP, Applies.LESSON)
        for action in (A.PROPOSE_TIME, A.ACCEPT_TIME)
        for role in (Role.BUYER, Role.SELLER)
        for status in (S.PENDING, S.ACCEPTED)
    ),
)

# A ban pauses its user's orders that are still running (a dispute already waits for an
# administrator, so it stays as it is); lifting the ban resumes them where they were.
PAUSABLE_STATUSES: tuple[OrderStatus, ...] = (S.PENDING, S.ACCEPTED, S.DELIVERED)
PAUSE_RULE = Rule(A.PAUSE, Role.ADMIN, PAUSABLE_STATUSES, S.PAUSED, Escrow.KEEP)

# What a deadline does when a status runs out (the actor is the clock: actor_id NULL).
DEADLINE_RULES: dict[str, Rule] = {
    S.PENDING: Rule(A.EXPIRE, Role.ADMIN, (S.PENDING,), S.EXPIRED, Escrow.VOID),
    S.ACCEPTED: Rule(A.EXPIRE, Role.ADMIN, (S.ACCEPTED,), S.EXPIRED, Escrow.VOID),
    S.DELIVERED: Rule(A.COMPLETE, Role.ADMIN, (S.DELIVERED,), S.COMPLETED, Escrow.POST),
}
# An accepted order that had been delivered (then sent back) is disputed instead of refunded:
# otherwise a buyer could keep the work, ask for changes, and wait for the clock to refund them.
REDELIVERY_DEADLINE_RULE = Rule(A.DISPUTE, Role.ADMIN, (S.ACCEPTED,), S.DISPUTED, Escrow.KEEP)
del S, A


def resume_rule(status_before: str) -> Rule:
    """The rule that moves a paused order back to `status_before`, the status it was paused in."""
    return Rule(
        OrderAction.RESUME,
        Role.ADMIN,
        (OrderStatus.PAUSED,),
        OrderStatus(status_before),
        Escrow.KEEP,
    )


def deadline_rule(status: str, *, change_requests: int) -> Rule:
    """What the clock does to an order whose `status` ran out (`change_requests` so far)."""
    if status == OrderStatus.ACCEPTED and change_requests > 0:
        # Only request_changes leads from delivered back to accepted.
        return REDELIVERY_DEADLINE_RULE
    return DEADLINE_RULES[status]


# The actions a person takes (the URL's and the body's `action`), in table order.
ACTIONS: tuple[OrderAction, ...] = tuple(dict.fromkeys(rule.action for rule in RULES))
TERMINAL_STATUSES: tuple[OrderStatus, ...] = (
    OrderStatus.COMPLETED,
    OrderStatus.REJECTED,
    OrderStatus.CANCELLED,
    OrderStatus.EXPIRED,
    OrderStatus.RESOLVED,
)
OPEN_STATUSES: tuple[OrderStatus, ...] = (
    OrderStatus.PENDING,
    OrderStatus.ACCEPTED,
    OrderStatus.DELIVERED,
    OrderStatus.DISPUTED,
    OrderStatus.PAUSED,  # its price stays held until it resumes or is resolved
)


def allowed_actions(
    roles: frozenset[Role],
    status: str,
    *,
    changes_left: bool = True,
    lesson: LessonMoment | None = None,
) -> list[OrderAction]:
    """The actions someone with `roles` may take on an order in `status`, in table order.

    `changes_left` is False once the order's change requests are used up. `lesson` is the
    order's lesson as the viewer sees it now (None: not a lesson): its actions are listed while
    they are open.
    """
    return list(
        dict.fromkeys(
            rule.action
            for rule in RULES
            if rule.role in roles
            and status in rule.from_statuses
            and rule.applies_to(lesson=lesson is not None)
            and (changes_left or rule.action != OrderAction.REQUEST_CHANGES)
            and (lesson is None or not_now(rule.action, rule.role, lesson) is None)
        )
    )


# What a message calls a status or an action in the reader's language (the codes stay in the
# machine-readable fields: `order_status`, `action`, `allowed_actions`).
STATUS_LABELS: dict[str, Message] = {
    OrderStatus.PENDING: lazy("pending"),
    OrderStatus.ACCEPTED: lazy("accepted"),
    OrderStatus.DELIVERED: lazy("delivered"),
    OrderStatus.COMPLETED: lazy("completed"),
    OrderStatus.REJECTED: lazy("rejected"),
    OrderStatus.CANCELLED: lazy("cancelled"),
    OrderStatus.EXPIRED: lazy("expired"),
    OrderStatus.DISPUTED: lazy("disputed"),
    OrderStatus.RESOLVED: lazy("resolved"),
    OrderStatus.PAUSED: lazy("paused"),
}
ACTION_LABELS: dict[str, Message] = {
    OrderAction.ACCEPT: lazy("accept"),
    OrderAction.REJECT: lazy("reject"),
    OrderAction.DELIVER: lazy("deliver"),
    OrderAction.CANCEL: lazy("cancel"),
    OrderAction.COMPLETE: lazy("complete"),
    OrderAction.REQUEST_CHANGES: lazy("request changes"),
    OrderAction.DISPUTE: lazy("dispute"),
    OrderAction.RESOLVE: lazy("resolve"),
    OrderAction.EXPIRE: lazy("expire"),
    OrderAction.PAUSE: lazy("pause"),
    OrderAction.RESUME: lazy("resume"),
    OrderAction.PROPOSE_TIME: lazy("propose a time"),
    OrderAction.ACCEPT_TIME: lazy("accept the time"),
    OrderAction.NO_SHOW: lazy("report a no-show"),
}


def status_label(status: str) -> Message | str:
    """A status as a message names it (an unknown one as its code)."""
    return STATUS_LABELS.get(status, status)


def action_label(action: str) -> Message | str:
    """An action as a message names it (an unknown one as its code)."""
    return ACTION_LABELS.get(action, action)


class Refusal(StrEnum):
    NOT_YOUR_ROLE = "not_your_role"  # the actor's roles never allow this action
    WRONG_STATUS = "wrong_status"  # allowed for the role, not from the current status


def find_rule(
    action: str, roles: frozenset[Role], status: str, *, lesson: bool = False
) -> Rule | Refusal:
    """The rule that lets `roles` take `action` from `status` (on a lesson order when
    `lesson`), or why there is none."""
    for_role = [
        rule
        for rule in RULES
        if rule.action == action and rule.role in roles and rule.applies_to(lesson=lesson)
    ]
    if not for_role:
        return Refusal.NOT_YOUR_ROLE
    for rule in for_role:
        if status in rule.from_statuses:
            return rule
    return Refusal.WRONG_STATUS
