"""Chat over REST: rooms come with orders, direct rooms need a shared order, messages and reads."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from skillswap.models import ChatMessage
from tests.factories import order_room, place_order

ROOMS = "/api/chat/rooms/"


async def send(api, user, room, body, **extra):
    return await api.post(f"{ROOMS}{room}/send/", token=user.access, json={"body": body, **extra})


async def test_placing_an_order_opens_its_room_for_buyer_and_seller(api, deps, make_user):
    buyer, seller = await make_user(), await make_user()
    order = await place_order(api, deps, buyer, seller)
    for user in (buyer, seller):
        listing = (await api.get(ROOMS, token=user.access)).json()
        assert set(listing) == {"count", "next", "previous", "results"}
        room = next(r for r in listing["results"] if r["order_id"] == order["id"])
        assert room["kind"] == "order"
        assert sorted(m["id"] for m in room["members"]) == sorted([buyer.id, seller.id])
        assert "email" not in room["members"][0]  # public profiles only
        assert room["last_message"] is None and room["unread_count"] == 0


async def test_rooms_list_newest_activity_first_with_last_message_and_unread(api, deps, make_user):
    me, first, second = await make_user(), await make_user(), await make_user()
    room_one = await order_room(api, deps, me, first)
    room_two = await order_room(api, deps, me, second)
    assert (await send(api, first, room_one, "older")).status_code == 201
    assert (await send(api, second, room_two, "newest")).status_code == 201
    assert (await send(api, second, room_two, "newest, again")).status_code == 201

    listing = (await api.get(ROOMS, token=me.access)).json()
    assert [r["id"] for r in listing["results"]][:2] == [room_two, room_one]
    top = listing["results"][0]
    assert top["last_message"]["body"] == "newest, again"
    assert top["last_message"]["sender"] == second.id
    assert top["unread_count"] == 2
    assert listing["results"][1]["unread_count"] == 1

    # Writing in a room reads it up to one's own message.
    assert (await send(api, me, room_one, "back to you")).status_code == 201
    listing = (await api.get(ROOMS, token=me.access)).json()
    assert listing["results"][0]["id"] == room_one
    assert listing["results"][0]["unread_count"] == 0

    paged = (await api.get(f"{ROOMS}?page_size=1", token=me.access)).json()
    assert paged["count"] == 2 and len(paged["results"]) == 1 and paged["next"]


async def test_a_room_shows_its_latest_messages_and_pages_back_with_before(api, deps, make_user):
    buyer, seller = await make_user(), await make_user()
    room = await order_room(api, deps, buyer, seller)
    ids = []
    for i in range(7):
        ids.append((await send(api, buyer if i % 2 else seller, room, f"m{i}")).json()["id"])
    latest = (await api.get(f"{ROOMS}{room}/?limit=3", token=buyer.access)).json()
    assert [m["body"] for m in latest["messages"]] == ["m4", "m5", "m6"]
    assert latest["has_more"] is True
    assert set(latest["messages"][0]) == {"id", "sender", "body", "created_at", "client_id"}
    older = (await api.get(f"{ROOMS}{room}/?limit=3&before={ids[4]}", token=buyer.access)).json()
    assert [m["id"] for m in older["messages"]] == ids[1:4]
    oldest = (await api.get(f"{ROOMS}{room}/?limit=3&before={ids[1]}", token=buyer.access)).json()
    assert [m["id"] for m in oldest["messages"]] == ids[:1]
    assert oldest["has_more"] is False

    foreign = await api.get(f"{ROOMS}{room}/?before=999999999", token=buyer.access)
    assert foreign.status_code == 400 and "before" in foreign.json()["errors"]
    bad = await api.get(f"{ROOMS}{room}/?limit=0", token=buyer.access)
    assert bad.status_code == 400


async def test_message_bodies_are_limited_and_never_empty(api, deps, settings, make_user):
    buyer, seller = await make_user(), await make_user()
    room = await order_room(api, deps, buyer, seller)
    for body in ("", "   \n\t"):
        refused = await send(api, buyer, room, body)
        assert refused.status_code == 400 and "body" in refused.json()["errors"]
    too_long = await send(api, buyer, room, "x" * (settings.chat_message_max_chars + 1))
    assert too_long.status_code == 400 and "body" in too_long.json()["errors"]
    just_right = await send(api, buyer, room, "  " + "x" * settings.chat_message_max_chars + " ")
    assert just_right.status_code == 201
    assert just_right.json()["body"] == "x" * settings.chat_message_max_chars
    unknown = await api.post(
        f"{ROOMS}{room}/send/", token=buyer.access, json={"body": "hi", "sender": seller.id}
    )
    assert unknown.status_code == 400 and "sender" in unknown.json()["errors"]
    assert (await api.post(f"{ROOMS}{room}/send/", json={"body": "hi"})).status_code == 401
    assert (await send(api, buyer, 999_999_999, "anyone?")).status_code == 404


async def test_concurrent_senders_get_dense_seqs_and_ids_that_rise_with_them(api, deps, make_user):
    buyer, seller = await make_user(), await make_user()
    room = await order_room(api, deps, buyer, seller)
    results = await asyncio.gather(
        *(send(api, buyer if i % 2 else seller, room, f"c{i}") for i in range(30))
    )
    assert all(r.status_code == 201 for r in results)
    async with deps.db.read() as session:
        rows = (
            await session.execute(
                select(ChatMessage.seq, ChatMessage.id)
                .where(ChatMessage.room_id == room)
                .order_by(ChatMessage.seq)
            )
        ).all()
    assert [seq for seq, _ in rows] == list(range(1, 31))
    assert [i for _, i in rows] == sorted(i for _, i in rows)


async def test_read_receipts_move_forward_only_and_only_for_members(api, deps, make_user):
    buyer, seller, stranger = await make_user(), await make_user(), await make_user()
    room = await order_room(api, deps, buyer, seller)
    ids = [(await send(api, seller, room, f"r{i}")).json()["id"] for i in range(3)]
    read = await api.post(f"{ROOMS}{room}/read/", token=buyer.access, json={"message_id": ids[1]})
    assert read.status_code == 200
    assert read.json() == {"room": room, "last_read_id": ids[1], "unread_count": 1}
    back = await api.post(f"{ROOMS}{room}/read/", token=buyer.access, json={"message_id": ids[0]})
    assert back.json() == {"room": room, "last_read_id": ids[1], "unread_count": 1}
    missing = await api.post(
        f"{ROOMS}{room}/read/", token=buyer.access, json={"message_id": 999_999_999}
    )
    assert missing.status_code == 404 and missing.json()["code"] == "message_not_found"
    other = await api.post(f"{ROOMS}{room}/read/", token=stranger.access, json={"message_id": 1})
    assert other.status_code == 404 and other.json()["code"] == "room_not_found"


async def test_direct_rooms_need_a_shared_order_and_are_opened_once(api, deps, make_user):
    buyer, seller, stranger = await make_user(), await make_user(), await make_user()
    await place_order(api, deps, buyer, seller)
    opened = await api.post(ROOMS, token=seller.access, json={"user_id": buyer.id})
    assert opened.status_code == 201, opened.text
    room = opened.json()
    assert room["kind"] == "direct" and room["order_id"] is None
    assert sorted(m["id"] for m in room["members"]) == sorted([buyer.id, seller.id])
    again = await api.post(ROOMS, token=buyer.access, json={"user_id": seller.id})
    assert again.status_code == 200 and again.json()["id"] == room["id"]
    racing = await asyncio.gather(
        *(api.post(ROOMS, token=buyer.access, json={"user_id": seller.id}) for _ in range(4))
    )
    assert {r.json()["id"] for r in racing} == {room["id"]}

    refused = await api.post(ROOMS, token=stranger.access, json={"user_id": buyer.id})
    assert refused.status_code == 403 and refused.json()["code"] == "no_shared_order"
    myself = await api.post(ROOMS, token=buyer.access, json={"user_id": buyer.id})
    assert myself.status_code == 400 and "user_id" in myself.json()["errors"]
    nobody = await api.post(ROOMS, token=buyer.access, json={"user_id": 999_999_999})
    assert nobody.status_code == 404 and nobody.json()["code"] == "user_not_found"
    assert (await send(api, buyer, room["id"], "direct hello")).status_code == 201
    assert (await send(api, stranger, room["id"], "intruder")).status_code == 404


async def test_sends_to_many_rooms_at_once_keep_each_rooms_order_and_retries_store_once(
    api, deps, make_user
):
    from skillswap.chat import services as chat
    from skillswap.models import User

    me = await make_user()
    others = [await make_user() for _ in range(4)]
    rooms = [await order_room(api, deps, me, other) for other in others]
    async with deps.db.read() as session:
        actor = await session.get(User, me.id)
    # Queued back to back, these are written in shared transactions (group commit).
    futures = [
        chat.queue_message(deps, actor=actor, room_id=room, body=f"{room}:{i}", client_id=f"{i}")
        for i in range(5)
        for room in rooms
    ]
    first = await asyncio.gather(*futures)
    assert all(sent.created for sent in first)
    retried = await asyncio.gather(
        *(
            chat.send_message(deps, actor=actor, room_id=room, body="again", client_id="3")
            for room in rooms
        )
    )
    assert [sent.created for sent in retried] == [False] * len(rooms)
    assert [sent.message["body"] for sent in retried] == [f"{room}:3" for room in rooms]
    async with deps.db.read() as session:
        for room in rooms:
            rows = (
                await session.execute(
                    select(ChatMessage.seq, ChatMessage.id, ChatMessage.body)
                    .where(ChatMessage.room_id == room)
                    .order_by(ChatMessage.seq)
                )
            ).all()
            assert [seq for seq, _, _ in rows] == [1, 2, 3, 4, 5]
            assert [i for _, i, _ in rows] == sorted(i for _, i, _ in rows)
            assert [body for _, _, body in rows] == [f"{room}:{i}" for i in range(5)]
