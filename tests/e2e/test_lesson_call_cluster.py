"""The lesson call's signalling across two real server processes sharing PostgreSQL and a Redis of
this test's own: a signal reaches each of the other participant's sockets once, on whichever node
it is, and none of the sender's; the call's notices are written once."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from skillswap.models import ChatMessage, Lesson
from tests.chat_support import ws_connect
from tests.conftest import node_env
from tests.e2e.test_lesson_calls import OFFER, accepted_lesson
from tests.e2e.test_realtime_cluster import Node, RedisProcess

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


@pytest.fixture(scope="module")
async def nodes(settings) -> AsyncIterator[tuple[Node, Node]]:
    redis = RedisProcess()
    await redis.start()
    env = node_env(settings, redis_url=redis.url)
    one, two = Node(env), Node(env)
    try:
        await asyncio.gather(one.start(), two.start())
        yield one, two
    finally:
        await asyncio.gather(one.stop(), two.stop())
        await redis.stop()


async def test_signals_cross_nodes_to_the_other_participant_only_and_exactly_once(
    nodes, api, deps, make_user
):
    one, two = nodes
    buyer, seller = await make_user(), await make_user()
    order = await accepted_lesson(api, deps, buyer, seller)
    room = order["room_id"]
    caller = await ws_connect(one.url, buyer.access)
    callers_tablet = await ws_connect(two.url, buyer.access)
    laptop = await ws_connect(two.url, seller.access)  # the other node
    phone = await ws_connect(one.url, seller.access)  # the caller's node
    assert (await laptop.subscribe(room))["type"] == "subscribed"
    await asyncio.sleep(0.3)  # every socket's user channel is followed on its node

    candidate = {"kind": "candidate", "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}
    await caller.send(type="call", room=room, signal=OFFER)
    for i in range(3):
        await caller.send(type="call", room=room, signal={**candidate, "n": i})
    for socket in (laptop, phone):
        got = [await socket.of_type("call", within=10) for _ in range(4)]
        assert got[0] == {"type": "call", "room": room, "from": buyer.id, "signal": OFFER}
        assert [g["signal"].get("n") for g in got[1:]] == [0, 1, 2]

    answer = {"kind": "answer", "sdp": "v=0\r\n"}
    await laptop.send(type="call", room=room, signal=answer)
    for socket in (caller, callers_tablet):
        got = await socket.of_type("call", within=10)
        assert got == {"type": "call", "room": room, "from": seller.id, "signal": answer}

    notice = await laptop.of_type("message", within=10, room=room)
    assert (notice["message"]["body"], notice["message"]["sender"]) == ("call_started", buyer.id)

    await laptop.send(type="call", room=room, signal={"kind": "hangup"})
    for socket in (caller, callers_tablet):
        assert (await socket.of_type("call", within=10))["signal"] == {"kind": "hangup"}
    ended = await laptop.of_type("message", within=10, room=room)
    assert (ended["message"]["body"], ended["message"]["sender"]) == ("call_ended", seller.id)

    # Exactly once each, and nothing to the sender's own sockets.
    for socket in (caller, callers_tablet, laptop, phone):
        assert [f for f in await socket.quiet(0.5) if f["type"] in {"call", "error"}] == []
    async with deps.db.read() as session:
        bodies = list(
            await session.scalars(
                select(ChatMessage.body)
                .where(ChatMessage.room_id == room)
                .order_by(ChatMessage.seq)
            )
        )
        lesson = await session.get(Lesson, order["id"])
    assert bodies == ["call_started", "call_ended"]
    assert lesson is not None and lesson.call_started_at is not None
    assert lesson.call_ended_at is not None
    for socket in (caller, callers_tablet, laptop, phone):
        socket.close()


async def test_a_stranger_on_either_node_reaches_no_one(nodes, api, deps, make_user):
    buyer, seller, stranger = await make_user(), await make_user(), await make_user()
    order = await accepted_lesson(api, deps, buyer, seller)
    room = order["room_id"]
    watchers = [
        await ws_connect(node.url, user.access) for node in nodes for user in (buyer, seller)
    ]
    for node in nodes:
        intruder = await ws_connect(node.url, stranger.access)
        await intruder.send(type="call", room=room, signal=OFFER)
        assert (await intruder.of_type("error", within=10))["code"] == "room_not_found"
        intruder.close()
    for watcher in watchers:
        assert [f for f in await watcher.quiet(0.3) if f["type"] == "call"] == []
        watcher.close()
