"""Chat messages are committed in shared batches: one message the database refuses fails alone,
never the other senders' messages written in the same transaction."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import delete, func, select

from skillswap.chat.writer import MessageWriter, SentMessage
from skillswap.errors import NotFound
from skillswap.models import ChatMessage, ChatRoom, User
from tests.factories import order_room


async def _user(deps, user_id: int) -> User:
    async with deps.db.read() as session:
        user = await session.get(User, user_id)
    assert user is not None
    return user


async def _stored(deps, room_id: int) -> list[str]:
    async with deps.db.read() as session:
        return list(
            await session.scalars(
                select(ChatMessage.body)
                .where(ChatMessage.room_id == room_id)
                .order_by(ChatMessage.seq)
            )
        )


@pytest.fixture
async def three_rooms(api, deps, make_user):
    """Three order rooms, each with its own buyer (the sender) and seller."""
    rooms = []
    for _ in range(3):
        buyer, seller = await make_user(), await make_user()
        room = await order_room(api, deps, buyer, seller)
        rooms.append((room, await _user(deps, buyer.id)))
    return rooms


async def test_a_message_to_a_room_deleted_meanwhile_fails_alone(deps, three_rooms, caplog):
    writer = MessageWriter(
        deps.db,
        clock=deps.clock,
        presence=deps.realtime.presence,
        publisher=deps.publisher,
        lanes=1,
    )  # one lane: every message below joins one batch
    try:
        # Each room's members are now remembered by the writer, as on a busy node.
        for room, sender in three_rooms:
            first = await writer.submit(actor=sender, room_id=room, body="first", client_id=None)
            assert first.created
        (kept_a, sender_a), (gone, sender_gone), (kept_b, sender_b) = three_rooms
        async with deps.db.uow() as uow:
            await uow.session.execute(delete(ChatRoom).where(ChatRoom.id == gone))
            await uow.commit()

        with caplog.at_level(logging.WARNING, logger="skillswap.chat.services"):
            # Submitted in one go, without yielding: the lane takes them as one batch.
            futures = [
                writer.submit(actor=sender_a, room_id=kept_a, body="to a", client_id="a-1"),
                writer.submit(actor=sender_gone, room_id=gone, body="lost", client_id="g-1"),
                writer.submit(actor=sender_b, room_id=kept_b, body="to b", client_id="b-1"),
            ]
            outcomes = await asyncio.gather(*futures, return_exceptions=True)
    finally:
        await writer.close()

    sent_a, refused, sent_b = outcomes
    assert isinstance(sent_a, SentMessage) and sent_a.created
    assert isinstance(sent_b, SentMessage) and sent_b.created
    assert (sent_a.message["body"], sent_a.message["seq"]) == ("to a", 2)
    assert (sent_b.message["body"], sent_b.message["seq"]) == ("to b", 2)
    assert isinstance(refused, NotFound) and refused.code == "room_not_found"
    assert await _stored(deps, kept_a) == ["first", "to a"]
    assert await _stored(deps, kept_b) == ["first", "to b"]
    # They were one batch, and it was the batch that failed first.
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "a batch of 3 chat messages failed; writing them one by one"
    ]


async def test_a_message_the_database_refuses_fails_alone(deps, three_rooms):
    if deps.db.is_sqlite:
        pytest.skip("SQLite stores NUL; PostgreSQL is the database that refuses it")
    writer = MessageWriter(
        deps.db,
        clock=deps.clock,
        presence=deps.realtime.presence,
        publisher=deps.publisher,
        lanes=1,
    )
    (room_a, sender_a), (room_b, sender_b), (room_c, sender_c) = three_rooms
    try:
        # Straight to the writer, past chat.queue_message's check: the database is what refuses.
        futures = [
            writer.submit(actor=sender_a, room_id=room_a, body="hello", client_id=None),
            writer.submit(actor=sender_b, room_id=room_b, body="bad\x00text", client_id=None),
            writer.submit(actor=sender_c, room_id=room_c, body="hi there", client_id=None),
        ]
        sent_a, refused, sent_c = await asyncio.gather(*futures, return_exceptions=True)
    finally:
        await writer.close()
    assert isinstance(sent_a, SentMessage) and sent_a.message["body"] == "hello"
    assert isinstance(sent_c, SentMessage) and sent_c.message["body"] == "hi there"
    assert isinstance(refused, Exception) and not isinstance(refused, SentMessage)
    async with deps.db.read() as session:
        in_b = await session.scalar(
            select(func.count()).select_from(ChatMessage).where(ChatMessage.room_id == room_b)
        )
    assert in_b == 0
    assert await _stored(deps, room_a) == ["hello"]
    assert await _stored(deps, room_c) == ["hi there"]
