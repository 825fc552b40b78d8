"""Two real server processes sharing PostgreSQL and a Redis of this test's own: chat across nodes,
moving between nodes, a node killed and restarted, and Redis going away mid-conversation."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.chat_support import WsClient, wait_for, ws_connect
from tests.conftest import free_port, node_env
from tests.factories import order_room

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]

ROOT = Path(__file__).resolve().parents[2]


class RedisProcess:
    """A throwaway redis-server on a port of its own (stopping it disturbs nobody else)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *[
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        async def answers() -> bool:
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return False
            writer.close()
            return True

        await wait_for(answers, within=10)

    async def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            await self.process.wait()
            self.process = None


class Node:
    """`python -m skillswap serve` on its own port, against the test database."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "skillswap", "serve", "--port", str(self.port), "--no-migrate"],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        async with httpx.AsyncClient(timeout=1) as client:

            async def healthy() -> bool:
                assert self.process is not None
                if self.process.returncode is not None:
                    raise RuntimeError(f"node exited with {self.process.returncode}")
                try:
                    return (await client.get(self.url + "/healthz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_for(healthy, within=30, every=0.1)

    async def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            await self.process.wait()
            self.process = None

    async def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(10):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
            self.process = None


class Cluster:
    def __init__(self, redis: RedisProcess, one: Node, two: Node) -> None:
        self.redis, self.one, self.two = redis, one, two


@pytest.fixture(scope="module")
async def cluster(settings) -> AsyncIterator[Cluster]:
    redis = RedisProcess()
    await redis.start()
    env = node_env(settings, redis_url=redis.url)
    one, two = Node(env), Node(env)
    try:
        await asyncio.gather(one.start(), two.start())
        yield Cluster(redis, one, two)
    finally:
        await asyncio.gather(one.stop(), two.stop())
        await redis.stop()


async def send_via(node: Node, user, room: int, body: str) -> dict:
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as client:
        response = await client.post(
            f"/api/chat/rooms/{room}/send/",
            json={"body": body},
            headers={"Authorization": f"Bearer {user.access}"},
        )
    assert response.status_code == 201, response.text
    return response.json()


async def following(node: Node, user, room: int, last_id: int | None = None) -> WsClient:
    client = await ws_connect(node.url, user.access)
    subscribed = await client.subscribe(room, last_id)
    assert subscribed["type"] == "subscribed", subscribed
    return client


async def test_members_on_two_nodes_chat_both_ways_in_one_order(cluster, api, deps, make_user):
    buyer, seller = await make_user(), await make_user()
    room = await order_room(api, deps, buyer, seller)
    a = await following(cluster.one, buyer, room)
    b = await following(cluster.two, seller, room)
    for i in range(10):
        await a.send(type="send", room=room, body=f"a{i}", client_id=f"a{i}")
        await b.send(type="send", room=room, body=f"b{i}", client_id=f"b{i}")
    on_one = await a.messages(room, 20, within=10)
    on_two = await b.messages(room, 20, within=10)
    ids = [m["id"] for m in on_one]
    assert ids == sorted(ids) and len(set(ids)) == 20
    assert on_two == on_one  # the same messages, in the same order, on both nodes
    for prefix in "ab":  # and each sender's in the order sent
        mine = [m["body"] for m in on_one if m["body"].startswith(prefix)]
        assert mine == [f"{prefix}{i}" for i in range(10)]
    a.close()
    b.close()


async def test_a_client_moving_to_the_other_node_gets_exactly_what_it_missed(
    cluster, api, deps, make_user
):
    buyer, seller = await make_user(), await make_user()
    room = await order_room(api, deps, buyer, seller)
    a = await following(cluster.one, buyer, room)
    b = await following(cluster.two, seller, room)
    await a.send(type="send", room=room, body="before", client_id="before")
    last = (await b.messages(room, 1))[0]
    b.close()

    for i in range(5):
        await a.send(type="send", room=room, body=f"missed {i}", client_id=f"m{i}")
    sent = [(await a.of_type("ack", client_id=f"m{i}"))["message"]["id"] for i in range(5)]

    moved = await following(cluster.one, seller, room, last_id=last["id"])
    assert [m["id"] for m in await moved.messages(room, 5)] == sent
    assert [f for f in await moved.quiet(0.5) if f["type"] == "message"] == []
    a.close()
    moved.close()


async def test_a_third_user_cannot_follow_or_write_on_either_node(cluster, api, deps, make_user):
    buyer, seller, stranger = await make_user(), await make_user(), await make_user()
    room = await order_room(api, deps, buyer, seller)
    watcher = await following(cluster.two, seller, room)
    for node in (cluster.one, cluster.two):
        s = await ws_connect(node.url, stranger.access)
        refused = await s.subscribe(room)
        assert refused["type"] == "error" and refused["code"] == "room_not_found"
        await s.send(type="send", room=room, body="sneaky", client_id="x")
        assert (await s.of_type("error", client_id="x"))["code"] == "room_not_found"
        s.close()
    assert [f for f in await watcher.quiet(0.5) if f["type"] == "message"] == []
    watcher.close()


async def test_a_killed_node_comes_back_and_its_clients_resume_without_loss(
    cluster, api, deps, make_user
):
    buyer, seller = await make_user(), await make_user()
    room = await order_room(api, deps, buyer, seller)
    a = await following(cluster.one, buyer, room)
    b = await following(cluster.two, seller, room)
    await a.send(type="send", room=room, body="one", client_id="one")
    last = (await b.messages(room, 1))[0]

    await cluster.two.kill()
    with pytest.raises(ConnectionError):
        await b.until(lambda f: False, within=5)  # b's socket died with its node
    for i in range(3):
        await a.send(type="send", room=room, body=f"while down {i}", client_id=f"d{i}")
    sent = [(await a.of_type("ack", client_id=f"d{i}"))["message"]["id"] for i in range(3)]

    await cluster.two.start()
    back = await following(cluster.two, seller, room, last_id=last["id"])
    assert [m["id"] for m in await back.messages(room, 3)] == sent
    # And the restarted node is part of the conversation again, both ways.
    await back.send(type="send", room=room, body="I am back", client_id="back")
    assert [m["body"] for m in await a.messages(room, 5)][-1] == "I am back"
    await a.send(type="send", room=room, body="welcome", client_id="welcome")
    assert [m["body"] for m in await back.messages(room, 2)] == ["I am back", "welcome"]
    a.close()
    back.close()


async def test_redis_going_away_and_returning_mid_conversation(cluster, api, deps, make_user):
    buyer, seller = await make_user(), await make_user()
    room = await order_room(api, deps, buyer, seller)
    a = await following(cluster.one, buyer, room)
    a_phone = await following(cluster.one, buyer, room)
    b = await following(cluster.two, seller, room)
    await a.send(type="send", room=room, body="all fine", client_id="fine")
    assert [m["body"] for m in await b.messages(room, 1)] == ["all fine"]

    await cluster.redis.stop()
    # Each node keeps serving its own connections...
    await a.send(type="send", room=room, body="redis is gone", client_id="gone")
    assert [m["body"] for m in await a_phone.messages(room, 2)] == ["all fine", "redis is gone"]
    # ...REST keeps working on both nodes, and a node that sees a gap fills it from PostgreSQL.
    await send_via(cluster.two, seller, room, "sent over REST meanwhile")
    assert [m["body"] for m in await b.messages(room, 2)] == [
        "redis is gone",
        "sent over REST meanwhile",
    ]

    await cluster.redis.start()
    # Once Redis is back the other node catches up by itself, in order...
    expected = ["all fine", "redis is gone", "sent over REST meanwhile"]
    for client in (a, a_phone):
        heard = [m["body"] for m in await client.messages(room, 3 if client is a else 1, within=15)]
        assert heard[-1] == "sent over REST meanwhile"
    # ...and cross-node delivery is back, both ways.
    await b.send(type="send", room=room, body="after the storm", client_id="after")
    assert [m["body"] for m in await a.messages(room, 1, within=10)] == ["after the storm"]
    await a.send(type="send", room=room, body="indeed", client_id="indeed")
    assert [m["body"] for m in await b.messages(room, 2, within=10)] == [
        "after the storm",
        "indeed",
    ]
    # Nobody heard anything twice (the late copies that came through Redis were dropped).
    for client in (a, a_phone, b):
        await client.quiet(0.5)
        ids = [f["message"]["id"] for f in client.seen if f["type"] == "message"]
        assert len(ids) == len(set(ids)) and ids == sorted(ids)
    assert [f["message"]["body"] for f in a.seen if f["type"] == "message"] == [
        *expected,
        "after the storm",
        "indeed",
    ]
    a.close()
    a_phone.close()
    b.close()


async def test_members_connected_on_another_node_are_not_notified_of_messages(
    cluster, api, deps, settings, make_user
):
    from redis.asyncio import Redis

    buyer, seller = await make_user(), await make_user()
    room = await order_room(api, deps, buyer, seller)
    presence = Redis.from_url(cluster.redis.url)
    key = f"{settings.redis_prefix}presence:{seller.id}"
    try:
        b = await ws_connect(cluster.two.url, seller.access)  # online, not following the room
        await wait_for(lambda: presence.exists(key))
        await send_via(cluster.one, buyer, room, "you are online elsewhere")
        b.close()
        await wait_for(lambda: _empty(presence, key))  # its node released the claim
        await send_via(cluster.one, buyer, room, "now you are away")
    finally:
        await presence.aclose()
    notes = (await api.get("/api/notifications/", token=seller.access)).json()["results"]
    chat_notes = [n for n in notes if n["kind"] == "chat_message"]
    assert len(chat_notes) == 1 and chat_notes[0]["text"].endswith("sent you a message.")


async def _empty(redis, key: str) -> bool:
    return await redis.zcard(key) == 0
