"""What placing an order writes, and what a refused order leaves unwritten, on either backend.

On PostgreSQL placing is two statements (the skill, the hold, the order and its history; then
the room, its members, the seller's notice and its delivery row); elsewhere one per row. Both
must write the same rows, and a refusal must write nothing but what the ledger keeps of it.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, update

from skillswap.errors import NotFound, PaymentRequired
from skillswap.models import (
    ChatMember,
    ChatRoom,
    LedgerAccount,
    LedgerHold,
    Notification,
    Order,
    OutboxRow,
    User,
)
from skillswap.orders import services as orders
from tests.factories import balance, insert_skill, unique_name


async def signed_in(deps: Any, user_id: int) -> User:
    async with deps.db.read() as session:
        user = await session.get(User, user_id)
    assert user is not None
    return user


async def counts(deps: Any) -> tuple[int, int]:
    """How many holds and orders there are."""
    async with deps.db.read() as session:
        holds = await session.scalar(select(func.count()).select_from(LedgerHold))
        placed = await session.scalar(select(func.count()).select_from(Order))
    return int(holds or 0), int(placed or 0)


async def test_an_order_comes_with_its_room_its_members_and_the_sellers_notice_to_deliver(
    api: Any, deps: Any, make_user: Any
) -> None:
    buyer, seller = await make_user(), await make_user()
    skill_id = await insert_skill(deps, owner_id=seller.id, price=7)

    placed = await api.post("/api/points/orders/", token=buyer.access, json={"skill_id": skill_id})

    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert (order["status"], order["price_points"], order["seller"]["id"]) == (
        "pending",
        7,
        seller.id,
    )
    assert [step["action"] for step in order["history"]] == ["place"]
    async with deps.db.read() as session:
        room = await session.scalar(select(ChatRoom).where(ChatRoom.order_id == order["id"]))
        assert room is not None and room.id == order["room_id"]
        members = await session.scalars(
            select(ChatMember.user_id).where(ChatMember.room_id == room.id)
        )
        assert sorted(members) == sorted([buyer.id, seller.id])
        notice = await session.scalar(
            select(Notification).where(
                Notification.user_id == seller.id, Notification.kind == "order_placed"
            )
        )
        assert notice is not None
        assert (notice.msgid, notice.params) == (
            "You have a new order #{order}.",
            {"order": order["id"]},
        )
        assert notice.payload == {
            "order_id": order["id"],
            "skill_id": skill_id,
            "buyer_id": buyer.id,
            "room": room.id,
        }
        delivery = await session.scalar(
            select(OutboxRow).where(OutboxRow.key == f"notification:{notice.id}")
        )
        assert delivery is not None
        # (A relay may have taken it already: its status is the relay's.)
        assert (delivery.kind, delivery.payload) == (
            "notification.deliver",
            {"notification_id": notice.id},
        )
        hold_id = await session.scalar(select(Order.hold_id).where(Order.id == order["id"]))
        hold = await session.get(LedgerHold, hold_id)
        assert hold is not None
        assert (hold.status, hold.amount) == ("pending", 7)
    assert await balance(deps, buyer.id) == (100, 7)


@pytest.mark.parametrize("refusal", ["hidden", "owner_banned", "deleted"])
async def test_an_order_of_a_skill_buyers_cannot_see_is_not_found_and_writes_nothing(
    deps: Any, make_user: Any, refusal: str
) -> None:
    buyer, seller = await make_user(), await make_user()
    skill_id = await insert_skill(
        deps, owner_id=seller.id, status="active" if refusal == "owner_banned" else refusal
    )
    if refusal == "owner_banned":
        async with deps.db.uow() as uow:
            await uow.session.execute(
                update(User).where(User.id == seller.id).values(is_active=False)
            )
            await uow.commit()
    before = await counts(deps)

    with pytest.raises(NotFound) as refused:
        await orders.place_order(deps, actor=await signed_in(deps, buyer.id), skill_id=skill_id)

    assert refused.value.code == "skill_not_found"
    assert await counts(deps) == before
    assert await balance(deps, buyer.id) == (100, 0)


async def test_a_buyer_without_a_wallet_gets_one_and_the_refusal_is_the_keys_outcome(
    deps: Any, make_user: Any
) -> None:
    seller = await make_user()
    skill_id = await insert_skill(deps, owner_id=seller.id, price=10)
    name = unique_name("nowallet")
    async with deps.db.uow() as uow:
        # An account from before wallets came with every sign-up.
        buyer = User(
            email=f"{name}@example.com",
            username=name,
            username_key=name,
            email_verified=True,
            created_at=deps.clock(),
            updated_at=deps.clock(),
        )
        uow.session.add(buyer)
        await uow.session.flush()
        await uow.commit()
    key = unique_name("key")

    for _attempt in range(2):  # the second is a replay of the first's refusal
        with pytest.raises(PaymentRequired) as refused:
            await orders.place_order(deps, actor=buyer, skill_id=skill_id, idempotency_key=key)
        assert refused.value.extra == {"missing": 10, "price": 10}

    async with deps.db.read() as session:
        wallet = await session.scalar(
            select(LedgerAccount).where(LedgerAccount.user_id == buyer.id)
        )
        assert wallet is not None and (wallet.balance, wallet.held) == (0, 0)
        holds = (
            await session.scalars(select(LedgerHold).where(LedgerHold.account_id == wallet.id))
        ).all()
        assert [(hold.status, hold.shortfall) for hold in holds] == [("rejected", 10)]
        assert (
            await session.scalar(
                select(func.count()).select_from(Order).where(Order.buyer_id == buyer.id)
            )
            == 0
        )
