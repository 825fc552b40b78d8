"""The order state machine: who may do what from which status, and what it does to escrow.

| action          | who    | from                | to        | escrow                         |
|-----------------|--------|---------------------|-----------|--------------------------------|
| accept          | seller | pending             | accepted  | -                              |
| reject          | seller | pending             | rejected  | void (buyer refunded)          |
| deliver         | seller | accepted            | delivered | -                              |
| cancel          | seller | accepted            | cancelled | void (buyer refunded)          |
| cancel          | buyer  | pending             | cancelled | void (buyer refunded)          |
| complete        | buyer  | delivered           | completed | post (seller paid, minus fee)  |
| request_changes | buyer  | delivered           | accepted  | -                              |
| dispute         | buyer  | accepted, delivered | disputed  | -                              |
| resolve         | admin  | disputed            | resolved  | refund: void; release: post;   |
|                 |        |                     |           | split: post the seller's part  |
| expire          | clock  | pending, accepted*  | expired   | void (buyer refunded)          |
| dispute         | clock  | accepted**          | disputed  | - (an administrator decides)   |
| complete        | clock  | delivered           | completed | post (seller paid, minus fee)  |

 * an accepted order that was never delivered.
** an accepted order that was delivered before and sent back with `request_changes`: the buyer
   has had the work, so running out the clock must not refund them; an administrator decides.

`request_changes` is allowed at most ORDER_MAX_CHANGE_REQUESTS times per order (default 3);
after that the buyer may only complete or dispute the delivery (409 `change_requests_exhausted`).
Every other combination is refused: 403 when the actor's role never may, 409 (naming the status
and what the actor may do now) when the role may but not from this status. An administrator
who is the buyer or the seller of an order has only that role in it (never resolves it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from skillswap.i18n import Message, lazy


class Role(StrEnum):
    BUYER = "buyer"
    SELLER = "seller"
    ADMIN = "admin"


class Escrow(StrEnum):
    KEEP = "keep"  # the hold stays pending
    VOID = "void"  # refund the buyer
    POST = "post"  # pay the seller (and the fee)
    RESOLVE = "resolve"  # an administrator's decision: refund, release or split


@dataclass(frozen=True)
class Rule:
    action: str
    role: Role
    from_statuses: tuple[str, ...]
    to_status: str
    escrow: Escrow


RULES: tuple[Rule, ...] = (
    Rule("accept", Role.SELLER, ("pending",), "accepted", Escrow.KEEP),
    Rule("reject", Role.SELLER, ("pending",), "rejected", Escrow.VOID),
    Rule("deliver", Role.SELLER, ("accepted",), "delivered", Escrow.KEEP),
    Rule("cancel", Role.SELLER, ("accepted",), "cancelled", Escrow.VOID),
    Rule("cancel", Role.BUYER, ("pending",), "cancelled", Escrow.VOID),
    Rule("complete", Role.BUYER, ("delivered",), "completed", Escrow.POST),
    Rule("request_changes", Role.BUYER, ("delivered",), "accepted", Escrow.KEEP),
    Rule("dispute", Role.BUYER, ("accepted", "delivered"), "disputed", Escrow.KEEP),
    Rule("resolve", Role.ADMIN, ("disputed",), "resolved", Escrow.RESOLVE),
)

# What a deadline does when a status runs out (the actor is the clock: actor_id NULL).
DEADLINE_RULES: dict[str, Rule] = {
    "pending": Rule("expire", Role.ADMIN, ("pending",), "expired", Escrow.VOID),
    "accepted": Rule("expire", Role.ADMIN, ("accepted",), "expired", Escrow.VOID),
    "delivered": Rule("complete", Role.ADMIN, ("delivered",), "completed", Escrow.POST),
}
# An accepted order that had been delivered (then sent back) is disputed instead of refunded:
# otherwise a buyer could keep the work, ask for changes, and wait for the clock to refund them.
REDELIVERY_DEADLINE_RULE = Rule("dispute", Role.ADMIN, ("accepted",), "disputed", Escrow.KEEP)


def deadline_rule(status: str, *, change_requests: int) -> Rule:
    """What the clock does to an order whose `status` ran out (`change_requests` so far)."""
    if status == "accepted" and change_requests > 0:
        # Only request_changes leads from delivered back to accepted.
        return REDELIVERY_DEADLINE_RULE
    return DEADLINE_RULES[status]


ACTIONS: tuple[str, ...] = tuple(dict.fromkeys(rule.action for rule in RULES))
TERMINAL_STATUSES = ("completed", "rejected", "cancelled", "expired", "resolved")
OPEN_STATUSES = ("pending", "accepted", "delivered", "disputed")


def allowed_actions(roles: frozenset[Role], status: str, *, changes_left: bool = True) -> list[str]:
    """The actions someone with `roles` may take on an order in `status`, in table order.

    `changes_left` is False once the order's change requests are used up.
    """
    return list(
        dict.fromkeys(
            rule.action
            for rule in RULES
            if rule.role in roles
            and status in rule.from_statuses
            and (changes_left or rule.action != "request_changes")
        )
    )


# What a message calls a status or an action in the reader's language (the codes stay in the
# machine-readable fields: `order_status`, `action`, `allowed_actions`).
STATUS_LABELS: dict[str, Message] = {
    "pending": lazy("pending"),
    "accepted": lazy("accepted"),
    "delivered": lazy("delivered"),
    "completed": lazy("completed"),
    "rejected": lazy("rejected"),
    "cancelled": lazy("cancelled"),
    "expired": lazy("expired"),
    "disputed": lazy("disputed"),
    "resolved": lazy("resolved"),
}
ACTION_LABELS: dict[str, Message] = {
    "accept": lazy("accept"),
    "reject": lazy("reject"),
    "deliver": lazy("deliver"),
    "cancel": lazy("cancel"),
    "complete": lazy("complete"),
    "request_changes": lazy("request changes"),
    "dispute": lazy("dispute"),
    "resolve": lazy("resolve"),
    "expire": lazy("expire"),
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


def find_rule(action: str, roles: frozenset[Role], status: str) -> Rule | Refusal:
    """The rule that lets `roles` take `action` from `status`, or why there is none."""
    for_role = [rule for rule in RULES if rule.action == action and rule.role in roles]
    if not for_role:
        return Refusal.NOT_YOUR_ROLE
    for rule in for_role:
        if status in rule.from_statuses:
            return rule
    return Refusal.WRONG_STATUS
