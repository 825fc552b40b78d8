"""The order state machine, each answer written out here (not read back from RULES)."""

from __future__ import annotations

import pytest

from skillswap.orders.rules import (
    Escrow,
    Refusal,
    Role,
    allowed_actions,
    deadline_rule,
    find_rule,
)

BUYER = frozenset({Role.BUYER})
SELLER = frozenset({Role.SELLER})
ADMIN = frozenset({Role.ADMIN})
NOBODY: frozenset[Role] = frozenset()


@pytest.mark.parametrize(
    ("action", "roles", "status", "to_status", "escrow"),
    [
        ("accept", SELLER, "pending", "accepted", Escrow.KEEP),
        ("reject", SELLER, "pending", "rejected", Escrow.VOID),
        ("deliver", SELLER, "accepted", "delivered", Escrow.KEEP),
        ("cancel", SELLER, "accepted", "cancelled", Escrow.VOID),
        ("cancel", BUYER, "pending", "cancelled", Escrow.VOID),
        ("complete", BUYER, "delivered", "completed", Escrow.POST),
        ("request_changes", BUYER, "delivered", "accepted", Escrow.KEEP),
        ("dispute", BUYER, "accepted", "disputed", Escrow.KEEP),
        ("dispute", BUYER, "delivered", "disputed", Escrow.KEEP),
        ("resolve", ADMIN, "disputed", "resolved", Escrow.RESOLVE),
    ],
)
def test_each_allowed_transition(
    action: str, roles: frozenset[Role], status: str, to_status: str, escrow: Escrow
) -> None:
    rule = find_rule(action, roles, status)
    assert not isinstance(rule, Refusal)
    assert (rule.action, rule.to_status, rule.escrow) == (action, to_status, escrow)


@pytest.mark.parametrize(
    ("action", "roles", "status"),
    [
        ("accept", BUYER, "pending"),
        ("deliver", BUYER, "accepted"),
        ("complete", SELLER, "delivered"),
        ("request_changes", SELLER, "delivered"),
        ("dispute", SELLER, "accepted"),
        ("resolve", BUYER, "disputed"),
        ("resolve", SELLER, "disputed"),
        ("accept", ADMIN, "pending"),
        ("cancel", ADMIN, "pending"),
        ("accept", NOBODY, "pending"),
        ("expire", BUYER, "pending"),  # only the clock expires an order
        ("fly", SELLER, "pending"),
    ],
)
def test_an_action_the_role_never_takes_is_not_your_role(
    action: str, roles: frozenset[Role], status: str
) -> None:
    assert find_rule(action, roles, status) is Refusal.NOT_YOUR_ROLE


@pytest.mark.parametrize(
    ("action", "roles", "status"),
    [
        ("accept", SELLER, "accepted"),
        ("reject", SELLER, "accepted"),
        ("deliver", SELLER, "pending"),
        ("deliver", SELLER, "delivered"),
        ("cancel", SELLER, "pending"),  # the seller rejects a pending order instead
        ("cancel", BUYER, "accepted"),  # the buyer may only dispute once work started
        ("complete", BUYER, "accepted"),
        ("complete", BUYER, "completed"),
        ("dispute", BUYER, "pending"),
        ("dispute", BUYER, "disputed"),
        ("resolve", ADMIN, "resolved"),
        ("resolve", ADMIN, "delivered"),
    ],
)
def test_an_action_from_the_wrong_status_is_wrong_status(
    action: str, roles: frozenset[Role], status: str
) -> None:
    assert find_rule(action, roles, status) is Refusal.WRONG_STATUS


def test_a_buyer_and_seller_at_once_finds_the_rule_of_either_role() -> None:
    both = frozenset({Role.BUYER, Role.SELLER})
    pending_cancel = find_rule("cancel", both, "pending")
    accepted_cancel = find_rule("cancel", both, "accepted")
    assert not isinstance(pending_cancel, Refusal)
    assert not isinstance(accepted_cancel, Refusal)
    assert (pending_cancel.role, accepted_cancel.role) == (Role.BUYER, Role.SELLER)


@pytest.mark.parametrize(
    ("roles", "status", "actions"),
    [
        (SELLER, "pending", ["accept", "reject"]),
        (BUYER, "pending", ["cancel"]),
        (ADMIN, "pending", []),
        (SELLER, "accepted", ["deliver", "cancel"]),
        (BUYER, "accepted", ["dispute"]),
        (SELLER, "delivered", []),
        (BUYER, "delivered", ["complete", "request_changes", "dispute"]),
        (ADMIN, "disputed", ["resolve"]),
        (BUYER, "disputed", []),
        (SELLER, "disputed", []),
        (BUYER, "completed", []),
        (SELLER, "cancelled", []),
        (ADMIN, "resolved", []),
        (frozenset({Role.BUYER, Role.SELLER}), "pending", ["accept", "reject", "cancel"]),
    ],
)
def test_allowed_actions_in_table_order(
    roles: frozenset[Role], status: str, actions: list[str]
) -> None:
    assert allowed_actions(roles, status) == actions


def test_no_change_requests_left_leaves_complete_and_dispute() -> None:
    assert allowed_actions(BUYER, "delivered", changes_left=False) == ["complete", "dispute"]
    assert allowed_actions(SELLER, "accepted", changes_left=False) == ["deliver", "cancel"]


@pytest.mark.parametrize(
    ("status", "change_requests", "action", "to_status", "escrow"),
    [
        ("pending", 0, "expire", "expired", Escrow.VOID),
        ("accepted", 0, "expire", "expired", Escrow.VOID),
        # Delivered once and sent back: the buyer had the work, so an administrator decides.
        ("accepted", 1, "dispute", "disputed", Escrow.KEEP),
        ("accepted", 3, "dispute", "disputed", Escrow.KEEP),
        ("delivered", 0, "complete", "completed", Escrow.POST),
        ("delivered", 2, "complete", "completed", Escrow.POST),
    ],
)
def test_what_the_clock_does_when_a_status_runs_out(
    status: str, change_requests: int, action: str, to_status: str, escrow: Escrow
) -> None:
    rule = deadline_rule(status, change_requests=change_requests)
    assert (rule.action, rule.to_status, rule.escrow) == (action, to_status, escrow)


@pytest.mark.parametrize("status", ["disputed", "completed", "cancelled", "resolved"])
def test_statuses_without_a_deadline_have_no_clock_rule(status: str) -> None:
    with pytest.raises(KeyError):
        deadline_rule(status, change_requests=0)
