"""`room_activity`: a connected client hears of new messages in rooms it does not follow, on its
own stream (on every node), so an app need not subscribe to every room; and the sender's frames
come in the order docs/realtime.md shows (ack, then the echo)."""

from __future__ import annotations

import pytest

from tests.chat_support import wait_for, ws_connect
from tests.conftest import BACKENDS, extra_server
from tests.factories import order_room


async def send_rest(api, user, room: int, body: str) -> dict:
    response = await api.post(
        f"/api/chat/rooms/{room}/send/", token=user.access, json={"body": body}
    )
    assert response.status_code == 201, response.text
    return response.json()


def activity_of(room: int, last_id: int):  # type: ignore[no-untyped-def]
    return lambda f: (
        f.get("type") == "room_activity" and f["room"] == room and f["last_id"] == last_id
    )


async def test_a_member_hears_of_activity_in_a_room_it_does_not_follow(
    api, server, deps, make_user
):
    buyer, seller = await make_user(), await make_user()
    room = await order_room(api, deps, buyer, seller)
    watcher = await ws_connect(server, seller.access)
    await watcher.send(type="ping")
    await watcher.of_type("pong")  # connected and attached before anything is sent
    try:
        sent = [await send_rest(api, buyer, room, f"news {i}") for i in range(3)]
        last = await watcher.until(activity_of(room, sent[-1]["id"]))
        assert last == {
            "type": "room_activity",
            "room": room,
            "last_id": sent[-1]["id"],
            "unread": 3,
        }
        # A burst may come as fewer frames; each says where the room stood.
        frames = [f for f in watcher.seen if f["type"] == "room_activity"]
        assert 1 <= len(frames) <= 3
        assert all(set(f) == {"type", "room", "last_id", "unread"} for f in frames)
        assert [f["last_id"] for f in frames] == sorted(f["last_id"] for f in frames)
        assert not any(f["type"] == "message" for f in watcher.seen)

        # Reading moves the count: two read, one more sent, two unread.
        read = await api.post(
            f"/api/chat/rooms/{room}/read/", token=seller.access, json={"message_id": sent[1]["id"]}
        )
        assert read.status_code == 200
        more = await send_rest(api, buyer, room, "and one more")
        again = await watcher.until(activity_of(room, more["id"]))
        assert again["unread"] == 2
    finally:
        watcher.close()


async def test_not_sent_to_the_sender_nor_on_a_socket_following_the_room(
    api, server, deps, make_user
):
    buyer, seller = await make_user(), await make_user()
    room = await order_room(api, deps, buyer, seller)
    sender_socket = await ws_connect(server, buyer.access)
    following = await ws_connect(server, seller.access)
    other_device = await ws_connect(server, seller.access)
    try:
        assert (await following.subscribe(room))["type"] == "subscribed"
        for socket in (sender_socket, other_device):
            await socket.send(type="ping")
            await socket.of_type("pong")
        message = await send_rest(api, buyer, room, "hello")
        await following.of_type("message", room=room)
        heard = await other_device.until(activity_of(room, message["id"]))
        assert heard["unread"] == 1
        # The sender's own sockets hear nothing of it; the following one only the message.
        assert [f["type"] for f in await sender_socket.quiet(0.5)] == []
        await following.quiet(0.3)
        assert not any(f["type"] == "room_activity" for f in following.seen)
        assert [f["type"] for f in following.seen if f["type"] != "presence"] == [
            "subscribed",
            "message",
        ]
    finally:
        for socket in (sender_socket, following, other_device):
            socket.close()


async def test_the_sending_socket_gets_each_ack_before_the_echo_of_its_message(
    api, server, deps, make_user
):
    buyer, seller = await make_user(), await make_user()
    room = await order_room(api, deps, buyer, seller)
    sender = await ws_connect(server, buyer.access)
    try:
        assert (await sender.subscribe(room))["type"] == "subscribed"
        await sender.quiet(0.2)  # presence frames of the subscribe
        for i in range(20):
            await sender.send(type="send", room=room, body=f"m{i}", client_id=f"c{i}")
        echoes = await sender.messages(room, 20, within=10)
        assert [m["client_id"] for m in echoes] == [f"c{i}" for i in range(20)]
        order = [
            (f["type"], (f.get("message") or {}).get("client_id"))
            for f in sender.seen
            if f["type"] in {"ack", "message"}
        ]
        for i in range(20):
            assert order.index(("ack", f"c{i}")) < order.index(("message", f"c{i}")), order
    finally:
        sender.close()


@pytest.mark.redis
@pytest.mark.skipif(BACKENDS.database != "postgresql", reason="two nodes share PostgreSQL")
async def test_activity_reaches_a_member_connected_to_another_node(
    api, server, settings, deps, make_user
):
    buyer, seller = await make_user(), await make_user()
    room = await order_room(api, deps, buyer, seller)
    async with extra_server(settings) as (other_node, other_deps):
        watcher = await ws_connect(other_node, seller.access)
        try:
            bridge = other_deps.realtime.bridge
            # The other node reads the seller's channel (from where it stood on connecting).
            await wait_for(lambda: bridge.key(f"user:{seller.id}") in bridge._listeners)
            message = await send_rest(api, buyer, room, "across nodes")  # sent on this node
            heard = await watcher.until(activity_of(room, message["id"]), within=10)
            assert heard == {
                "type": "room_activity",
                "room": room,
                "last_id": message["id"],
                "unread": 1,
            }
        finally:
            watcher.close()
