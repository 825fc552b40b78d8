"""The lesson rules' moments and figures at their edges: when each action opens and closes,
what a cancellation leaves the teacher, the deadlines, and when the time is given back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from skillswap.lessons.cancellation import teacher_share
from skillswap.lessons.rules import LessonMoment, lesson_deadline, not_now, releases_slot
from skillswap.models.orders import OrderStatus
from skillswap.orders.rules import Escrow, Role, allowed_actions, find_rule
from skillswap.orders.settlement import Settlement, settlement_for
from skillswap.settings import Settings

START = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
END = START + timedelta(hours=1)
SETTINGS = Settings(lesson_free_cancel_seconds=86400)
BUYER, SELLER = 1, 2


def code_of(action: str, role: str, at: LessonMoment) -> str | None:
    closed = not_now(action, role, at)
    return None if closed is None else closed.code


def moment(now: datetime, *, viewer: int = BUYER, proposed_by: int | None = None) -> LessonMoment:
    return LessonMoment(
        now=now,
        starts_at=START,
        ends_at=END,
        deadline_at=END + timedelta(days=14),
        proposed_starts_at=START + timedelta(days=1) if proposed_by else None,
        proposed_by=proposed_by,
        viewer_id=viewer,
    )


@pytest.mark.parametrize(
    ("before_start", "share"),
    [
        (timedelta(days=1, seconds=1), 0),  # more than a day ahead: free
        (timedelta(days=1), 12),  # exactly a day ahead: no longer "more than"
        (timedelta(minutes=1), 12),
    ],
)
def test_a_cancellation_is_free_only_more_than_the_period_ahead(
    before_start: timedelta, share: int
) -> None:
    assert (
        teacher_share(
            price=25, starts_at=START, confirmed=True, now=START - before_start, settings=SETTINGS
        )
        == share
    )


@pytest.mark.parametrize("before_start", [timedelta(days=3), timedelta(minutes=1)])
def test_cancelling_a_booking_the_teacher_has_not_confirmed_is_free(
    before_start: timedelta,
) -> None:
    assert (
        teacher_share(
            price=25, starts_at=START, confirmed=False, now=START - before_start, settings=SETTINGS
        )
        == 0
    )


def test_the_cancellation_settles_through_the_hold_as_a_split() -> None:
    rule = find_rule("cancel", frozenset({Role.BUYER}), "accepted", lesson=True)
    assert not isinstance(rule, str) and rule.escrow is Escrow.CANCELLATION

    def settle(share: int, price: int = 25) -> Settlement:
        return settlement_for(
            rule,
            price=price,
            fee_percent=10,
            resolution=None,
            buyer_points=None,
            teacher_share=share,
        )

    assert settle(12) == Settlement(
        Escrow.POST, seller_points=11, fee_points=1, refunded_points=13, resolution=None
    )
    assert settle(0) == Settlement(Escrow.VOID, seller_points=0, fee_points=0, refunded_points=25)
    assert settle(0, price=1).escrow is Escrow.VOID


def test_a_piece_of_work_is_cancelled_by_its_buyer_only_while_pending() -> None:
    assert find_rule("cancel", frozenset({Role.BUYER}), "accepted") == "wrong_status"
    assert find_rule("no_show", frozenset({Role.SELLER}), "accepted") == "not_your_role"
    assert allowed_actions(frozenset({Role.BUYER}), "accepted") == ["dispute"]


def test_the_lesson_actions_open_and_close_with_the_clock() -> None:
    just_before, at_start = START - timedelta(seconds=1), START
    assert not_now("cancel", "buyer", moment(just_before)) is None
    assert code_of("cancel", "buyer", moment(at_start)) == "lesson_started"
    assert not_now("cancel", "seller", moment(at_start)) is None
    assert code_of("accept", "seller", moment(at_start)) == "lesson_started"
    assert code_of("deliver", "seller", moment(END - timedelta(seconds=1))) == "lesson_not_over"
    assert not_now("deliver", "seller", moment(END)) is None
    grace = START + timedelta(minutes=10)
    too_early = moment(grace - timedelta(seconds=1))
    assert code_of("no_show", "seller", too_early) == "no_show_too_early"
    assert not_now("no_show", "seller", moment(grace)) is None
    deadline = END + timedelta(days=14)
    assert code_of("no_show", "seller", moment(deadline)) == "lesson_deadline_passed"
    proposed = moment(just_before, viewer=BUYER, proposed_by=SELLER)
    assert not_now("accept_time", "buyer", proposed) is None
    own = moment(just_before, viewer=SELLER, proposed_by=SELLER)
    assert code_of("accept_time", "seller", own) == "own_proposal"
    assert code_of("accept_time", "buyer", moment(just_before)) == "no_proposal"
    seller = frozenset({Role.SELLER})
    assert allowed_actions(seller, "accepted", lesson=moment(grace, viewer=SELLER)) == [
        "cancel",
        "no_show",
    ]
    assert allowed_actions(seller, "accepted", lesson=moment(END, viewer=SELLER)) == [
        "deliver",
        "cancel",
        "no_show",
    ]


def test_a_lessons_deadlines_follow_its_times() -> None:
    early = START - timedelta(days=10)
    accept = timedelta(seconds=SETTINGS.order_accept_timeout_seconds)
    delivery = timedelta(seconds=SETTINGS.order_delivery_timeout_seconds)
    times = moment(early)
    assert lesson_deadline(OrderStatus.PENDING, early, SETTINGS, times) == early + accept
    late = START - timedelta(hours=2)
    assert lesson_deadline(OrderStatus.PENDING, late, SETTINGS, times) == START
    assert lesson_deadline(OrderStatus.ACCEPTED, late, SETTINGS, times) == END + delivery
    after = END + timedelta(days=2)  # sent back for changes after the lesson
    assert lesson_deadline(OrderStatus.ACCEPTED, after, SETTINGS, times) == after + delivery
    assert lesson_deadline(OrderStatus.DISPUTED, late, SETTINGS, times) is None


@pytest.mark.parametrize(
    ("status", "resolution", "released"),
    [
        ("rejected", None, True),
        ("cancelled", None, True),
        ("expired", None, True),
        ("resolved", "refund", True),
        ("resolved", "release", False),
        ("resolved", "split", False),
        ("completed", None, False),
        ("accepted", None, False),
        ("paused", None, False),
    ],
)
def test_the_time_is_given_back_only_when_the_lesson_will_not_be(
    status: str, resolution: str | None, released: bool
) -> None:
    assert releases_slot(status, resolution) is released
