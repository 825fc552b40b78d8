"""The embedded default (SQLite, no Redis) chats in one process through the in-process bridge."""

from __future__ import annotations

import httpx

from skillswap.deps import Deps
from skillswap.migrate import upgrade_to_head
from skillswap.realtime.bridge import LocalBridge
from tests import conftest
from tests.chat_support import ws_connect
from tests.conftest import Api, extra_server, make_settings
from tests.factories import insert_skill, unique_name, verify_email


async def register(api: Api, deps: Deps) -> conftest.TestUser:
    """A user signed up and verified with the emailed code (so they may order)."""
    name = unique_name("emb")
    body = {"email": f"{name}@example.com", "username": name, "password": "correct horse battery"}
    response = await api.post("/api/auth/register/", json=body)
    assert response.status_code == 201, response.text
    data = response.json()
    await verify_email(api, deps, data["user"]["id"])
    return conftest.TestUser(
        data["user"]["id"],
        body["email"],
        name,
        body["password"],
        data["access"],
        data["refresh"],
        data,
    )


async def test_the_embedded_default_chats_resumes_and_notifies_in_one_process(tmp_path):
    settings = make_settings(
        database_url=f"sqlite:///{tmp_path / 'embedded.sqlite3'}", redis_url=""
    )
    await upgrade_to_head(settings)
    async with extra_server(settings) as (url, deps), httpx.AsyncClient(base_url=url) as client:
        assert deps.realtime is not None and isinstance(deps.realtime.bridge, LocalBridge)
        api = Api(client)
        buyer, seller = await register(api, deps), await register(api, deps)
        seller_socket = await ws_connect(url, seller.access)
        skill_id = await insert_skill(deps, owner_id=seller.id, price=1)
        order = await api.post(
            "/api/points/orders/", token=buyer.access, json={"skill_id": skill_id}
        )
        assert order.status_code == 201, order.text
        note = (await seller_socket.of_type("notification"))["notification"]
        assert note["kind"] == "order_placed" and note["payload"]["order_id"] == order.json()["id"]
        room = note["payload"]["room"]

        buyer_socket = await ws_connect(url, buyer.access)
        await buyer_socket.subscribe(room)
        await seller_socket.subscribe(room)
        await buyer_socket.send(type="send", room=room, body="مرحبا", client_id="b1")
        await seller_socket.send(type="send", room=room, body="hello back", client_id="s1")
        assert [m["body"] for m in await seller_socket.messages(room, 2)] == ["مرحبا", "hello back"]
        heard = await buyer_socket.messages(room, 2)
        assert [m["body"] for m in heard] == ["مرحبا", "hello back"]

        seller_socket.close()
        for i in range(3):
            await buyer_socket.send(
                type="send", room=room, body=f"while away {i}", client_id=f"w{i}"
            )
            await buyer_socket.of_type("ack", client_id=f"w{i}")
        again = await ws_connect(url, seller.access)
        subscribed = await again.subscribe(room, last_id=heard[-1]["id"])
        assert subscribed["recovered"] is True  # from the in-process stream
        assert [m["body"] for m in await again.messages(room, 3)] == [
            f"while away {i}" for i in range(3)
        ]
        again.close()
        buyer_socket.close()
