"""The WebSocket at /ws/ on one node: the protocol, its guarantees, and every way to misuse it."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import socket
import time
from base64 import b64encode
from urllib.parse import urlsplit

import pytest
import tornado.httpclient

from tests.chat_support import client_frame, server_frames, wait_for, ws_connect
from tests.conftest import extra_server
from tests.factories import order_room


@pytest.fixture
def pair(api, deps, make_user):
    """A buyer and a seller with their order's chat room."""

    async def build():
        buyer, seller = await make_user(), await make_user()
        room = await order_room(api, deps, buyer, seller)
        return buyer, seller, room

    return build


async def send_rest(api, user, room, body, **extra):
    response = await api.post(
        f"/api/chat/rooms/{room}/send/", token=user.access, json={"body": body, **extra}
    )
    assert response.status_code == 201, response.text
    return response.json()


# -- chatting ------------------------------------------------------------------------------------


async def test_members_chat_both_ways_in_order_and_the_sender_gets_an_ack(api, server, pair):
    buyer, seller, room = await pair()
    a = await ws_connect(server, buyer.access)
    b = await ws_connect(server, seller.access)
    assert (await a.subscribe(room)) == {"type": "subscribed", "room": room, "recovered": False}
    assert (await b.subscribe(room))["type"] == "subscribed"

    for i in range(5):
        await a.send(type="send", room=room, body=f"from a {i}", client_id=f"a{i}")
    ack = await a.of_type("ack", client_id="a0")
    assert ack["room"] == room and ack["message"]["body"] == "from a 0"
    assert ack["message"]["sender"] == buyer.id
    got = await b.messages(room, 5)
    assert [m["body"] for m in got] == [f"from a {i}" for i in range(5)]
    assert [m["client_id"] for m in got] == [f"a{i}" for i in range(5)]
    ids = [m["id"] for m in got]
    assert ids == sorted(ids) and len(set(ids)) == 5

    await send_rest(api, seller, room, "from b over REST")
    back = await a.messages(room, 6)  # a also hears its own messages, in the same order
    assert [m["body"] for m in back] == [*(f"from a {i}" for i in range(5)), "from b over REST"]
    a.close()
    b.close()


async def test_a_retried_send_with_the_same_client_id_stores_one_message(api, server, pair):
    buyer, seller, room = await pair()
    a = await ws_connect(server, buyer.access)
    await a.send(type="send", room=room, body="once", client_id="retry-1")
    await a.send(type="send", room=room, body="once", client_id="retry-1")
    first = await a.of_type("ack", client_id="retry-1")
    second = await a.of_type("ack", client_id="retry-1")
    assert first["message"]["id"] == second["message"]["id"]

    rest = await api.post(
        f"/api/chat/rooms/{room}/send/",
        token=buyer.access,
        json={"body": "once", "client_id": "retry-1"},
    )
    assert rest.status_code == 200  # not 201: nothing new was stored
    assert rest.json()["id"] == first["message"]["id"]

    # Concurrent retries over REST store one message too.
    answers = await asyncio.gather(
        *(
            api.post(
                f"/api/chat/rooms/{room}/send/",
                token=seller.access,
                json={"body": "race", "client_id": "race-1"},
            )
            for _ in range(6)
        )
    )
    assert sorted(r.status_code for r in answers) == [200] * 5 + [201]
    assert len({r.json()["id"] for r in answers}) == 1

    detail = (await api.get(f"/api/chat/rooms/{room}/", token=buyer.access)).json()
    assert [m["body"] for m in detail["messages"]] == ["once", "race"]
    a.close()


async def test_unsubscribing_stops_delivery(api, server, pair):
    buyer, seller, room = await pair()
    b = await ws_connect(server, seller.access)
    await b.subscribe(room)
    await send_rest(api, buyer, room, "heard")
    assert [m["body"] for m in await b.messages(room, 1)] == ["heard"]
    await b.send(type="unsubscribe", room=room)
    await b.send(type="ping")
    await b.of_type("pong")
    await send_rest(api, buyer, room, "not heard")
    assert [f for f in await b.quiet(0.4) if f["type"] == "message"] == []
    b.close()


# -- resuming ------------------------------------------------------------------------------------


async def test_reconnecting_with_last_id_replays_exactly_what_was_missed(api, server, pair):
    buyer, seller, room = await pair()
    b = await ws_connect(server, seller.access)
    await b.subscribe(room)
    await send_rest(api, buyer, room, "seen")
    seen = (await b.messages(room, 1))[0]
    b.close()

    missed = [(await send_rest(api, buyer, room, f"missed {i}"))["id"] for i in range(5)]
    again = await ws_connect(server, seller.access)
    subscribed = await again.subscribe(room, last_id=seen["id"])
    assert subscribed == {"type": "subscribed", "room": room, "recovered": True}
    replayed = await again.messages(room, 5)
    assert [m["id"] for m in replayed] == missed
    assert [m["body"] for m in replayed] == [f"missed {i}" for i in range(5)]
    # Exactly once: nothing is repeated after the replay, and live delivery goes on.
    await send_rest(api, buyer, room, "live")
    assert [m["body"] for m in await again.messages(room, 1)] == ["live"]
    assert [f for f in await again.quiet(0.3) if f["type"] == "message"] == []
    again.close()


async def test_a_resume_the_stream_cannot_cover_is_served_from_the_database(api, server, pair):
    buyer, seller, room = await pair()
    ids = [(await send_rest(api, buyer, room, f"m{i}"))["id"] for i in range(3)]
    b = await ws_connect(server, seller.access)
    # last_id 0: the client has nothing, and no stream entry marks where it stands.
    subscribed = await b.subscribe(room, last_id=0)
    assert subscribed["recovered"] is False
    assert [m["id"] for m in await b.messages(room, 3)] == ids
    b.close()


@pytest.mark.redis
async def test_a_trimmed_stream_falls_back_to_the_database(api, deps, server, pair, settings):
    buyer, seller, room = await pair()
    first = await send_rest(api, buyer, room, "first")
    later = [(await send_rest(api, buyer, room, f"later {i}"))["id"] for i in range(3)]
    await wait_for(lambda: deps.redis.exists(f"{settings.redis_prefix}rt:room:{room}"))
    await deps.redis.delete(f"{settings.redis_prefix}rt:room:{room}")
    b = await ws_connect(server, seller.access)
    subscribed = await b.subscribe(room, last_id=first["id"])
    assert subscribed["recovered"] is False
    assert [m["id"] for m in await b.messages(room, 3)] == later
    b.close()


# -- who may do what -------------------------------------------------------------------------------


async def test_a_third_user_can_neither_follow_nor_write_nor_type(api, server, pair, make_user):
    buyer, _seller, room = await pair()
    stranger = await make_user()
    s = await ws_connect(server, stranger.access)
    refused = await s.subscribe(room)
    assert refused["type"] == "error" and refused["code"] == "room_not_found"
    await s.send(type="send", room=room, body="let me in", client_id="x")
    error = await s.of_type("error", client_id="x")
    assert error["code"] == "room_not_found"
    await s.send(type="typing", room=room)
    assert (await s.of_type("error"))["code"] == "room_not_found"
    await s.send(type="read", room=room, message_id=1)
    assert (await s.of_type("error"))["code"] == "room_not_found"
    # Still open: the refusals were answers, not abuse.
    await s.send(type="ping")
    await s.of_type("pong")

    assert (await api.get(f"/api/chat/rooms/{room}/", token=stranger.access)).status_code == 404
    sent = await api.post(
        f"/api/chat/rooms/{room}/send/", token=stranger.access, json={"body": "hi"}
    )
    assert sent.status_code == 404 and sent.json()["code"] == "room_not_found"
    detail = (await api.get(f"/api/chat/rooms/{room}/", token=buyer.access)).json()
    assert detail["messages"] == []
    s.close()


async def test_an_administrator_reads_any_room_but_cannot_write(api, server, pair, make_user):
    buyer, _seller, room = await pair()
    admin = await make_user(admin=True)
    w = await ws_connect(server, admin.access)
    assert (await w.subscribe(room))["type"] == "subscribed"
    await send_rest(api, buyer, room, "for the record")
    assert [m["body"] for m in await w.messages(room, 1)] == ["for the record"]
    await w.send(type="send", room=room, body="admin here", client_id="adm")
    assert (await w.of_type("error", client_id="adm"))["code"] == "read_only"
    await w.send(type="typing", room=room)
    assert (await w.of_type("error"))["code"] == "read_only"

    assert (await api.get(f"/api/chat/rooms/{room}/", token=admin.access)).status_code == 200
    sent = await api.post(f"/api/chat/rooms/{room}/send/", token=admin.access, json={"body": "x"})
    assert sent.status_code == 403 and sent.json()["code"] == "read_only"
    w.close()


# -- the handshake -------------------------------------------------------------------------------


async def test_the_handshake_refuses_missing_forged_and_revoked_tokens(api, server, make_user):
    user = await make_user()
    for token in (None, "not-a-jwt", user.access[:-4] + "AAAA"):
        with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
            await ws_connect(server, token)
        assert refused.value.code == 401
    out = await api.post("/api/auth/logout/", token=user.access, json={"refresh": user.refresh})
    assert out.status_code == 204
    with pytest.raises(tornado.httpclient.HTTPClientError) as revoked:
        await ws_connect(server, user.access)
    assert revoked.value.code == 401


async def test_a_token_in_the_query_string_works_and_stays_out_of_the_log(
    server, make_user, caplog
):
    user = await make_user()
    with caplog.at_level(logging.INFO, logger="tornado.access"):
        w = await ws_connect(server, user.access, via_query=True)
        await w.send(type="ping")
        assert (await w.next()) == {"type": "pong"}
        w.close()
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert user.access not in logged


async def test_browsers_must_come_from_this_host_or_a_configured_origin(
    server, settings, make_user
):
    user = await make_user()
    host = urlsplit(server).netloc
    same = await ws_connect(server, user.access, origin=f"http://{host}")
    same.close()
    with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
        await ws_connect(server, user.access, origin="https://evil.example")
    assert refused.value.code == 403

    configured = settings.with_overrides(ws_allowed_origins=("https://app.example",))
    async with extra_server(configured) as (url, _deps):
        for origin in ("https://app.example", f"http://{urlsplit(url).netloc}"):
            allowed = await ws_connect(url, user.access, origin=origin)
            allowed.close()
        with pytest.raises(tornado.httpclient.HTTPClientError) as other:
            await ws_connect(url, user.access, origin="https://evil.example")
        assert other.value.code == 403


# -- bad frames and abuse -------------------------------------------------------------------------


async def test_bad_frames_are_answered_with_errors_and_the_socket_stays_open(server, pair):
    buyer, _seller, room = await pair()
    w = await ws_connect(server, buyer.access)
    cases = [
        ("{not json", "malformed_frame"),
        ("[1, 2]", "malformed_frame"),
        (json.dumps({"type": "dance"}), "unknown_type"),
        (json.dumps({"type": "subscribe"}), "invalid_frame"),
        (json.dumps({"type": "subscribe", "room": True}), "invalid_frame"),
        (json.dumps({"type": "subscribe", "room": room, "last_id": -1}), "invalid_frame"),
        (json.dumps({"type": "send", "room": room, "body": 5}), "invalid_frame"),
        (json.dumps({"type": "send", "room": room, "body": "x", "client_id": ""}), "invalid_frame"),
        (json.dumps({"type": "send", "room": room, "body": "   "}), "validation_error"),
        (json.dumps({"type": "send", "room": room, "body": "x" * 4001}), "validation_error"),
        (json.dumps({"type": "read", "room": room, "message_id": "7"}), "invalid_frame"),
    ]
    for raw, code in cases:
        await w.conn.write_message(raw)
        error = await w.of_type("error")
        assert error["code"] == code, raw
        assert error["detail"]
    await w.send(type="ping")
    assert (await w.of_type("pong")) == {"type": "pong"}
    w.close()


async def test_errors_speak_the_users_language(server, make_user):
    user = await make_user(locale="ar")
    w = await ws_connect(server, user.access)
    await w.conn.write_message("{nope")
    error = await w.of_type("error")
    assert error["code"] == "malformed_frame"
    assert error["detail"] != "The frame is not valid JSON."
    w.close()


async def test_an_oversized_frame_closes_the_socket_with_1009(server, settings, make_user):
    user = await make_user()
    w = await ws_connect(server, user.access)
    await w.conn.write_message("x" * (settings.ws_max_frame_bytes + 1))
    assert await w.closed() == 1009


async def test_sending_frames_too_fast_closes_the_socket_with_4029(server, settings, make_user):
    user = await make_user()
    w = await ws_connect(server, user.access)
    for _ in range(settings.ws_rate_burst + 20):
        w.conn.write_message(json.dumps({"type": "ping"}))
    assert await w.closed() == 4029


async def test_an_expired_token_closes_the_socket_with_4001(deps, server, make_user):
    user = await make_user()
    ttl = deps.settings.access_token_ttl_seconds
    short, _claims = deps.keys.issue_access(user.id, now=time.time() - ttl + 1)
    w = await ws_connect(server, short)
    started = time.monotonic()
    assert await w.closed(within=5) == 4001
    assert time.monotonic() - started < 4


async def test_a_fresh_token_sent_in_time_keeps_the_socket_open(deps, server, make_user):
    user = await make_user()
    ttl = deps.settings.access_token_ttl_seconds
    short, _claims = deps.keys.issue_access(user.id, now=time.time() - ttl + 1)
    w = await ws_connect(server, short)
    fresh, claims = deps.keys.issue_access(user.id)
    await w.send(type="auth", token=fresh)
    assert (await w.of_type("auth"))["expires_at"] == claims.expires_at
    await asyncio.sleep(1.3)  # past the first token's expiry
    await w.send(type="ping")
    assert (await w.of_type("pong")) == {"type": "pong"}
    w.close()


async def test_a_token_of_someone_else_cannot_extend_a_socket(deps, server, make_user):
    user, other = await make_user(), await make_user()
    w = await ws_connect(server, user.access)
    await w.send(type="auth", token=other.access)
    assert (await w.of_type("error"))["code"] == "invalid_token"
    await w.send(type="auth", token="garbage")
    assert (await w.of_type("error"))["code"] == "invalid_token"
    w.close()


async def test_a_slow_consumer_is_closed_with_4008_without_slowing_the_others(
    api, deps, settings, pair
):
    buyer, seller, room = await pair()
    tight = settings.with_overrides(
        ws_outbound_max_bytes=65_536, ws_rate_per_second=1000, ws_rate_burst=1000
    )
    async with extra_server(tight) as (url, node):
        host, port = urlsplit(url).hostname, urlsplit(url).port
        # A raw client with a tiny receive buffer that subscribes and then never reads.
        loop = asyncio.get_running_loop()
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.setblocking(False)
        await loop.sock_connect(raw, (host, port))
        key = b64encode(secrets.token_bytes(16)).decode()
        await loop.sock_sendall(
            raw,
            (
                f"GET /ws/ HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {seller.access}\r\n\r\n"
            ).encode(),
        )
        handshake = b""
        while b"\r\n\r\n" not in handshake:
            handshake += await loop.sock_recv(raw, 1)
        assert handshake.startswith(b"HTTP/1.1 101")
        await loop.sock_sendall(
            raw, client_frame(json.dumps({"type": "subscribe", "room": room}).encode())
        )

        reader = await ws_connect(url, buyer.access)
        await reader.subscribe(room)
        await wait_for(lambda: len(node.realtime.hub.rooms[room].subs) == 2)
        body = "🙂" * 3900  # four bytes a character: a 15 KB frame
        got = []
        sent = 0
        # Keep talking until the server gives up on the client that does not read (its kernel
        # buffers fill first); the reading client hears every message promptly all along.
        while len(node.realtime.hub.connections) == 2:
            assert sent < 500, "the slow client was never closed"
            await reader.send(type="send", room=room, body=f"{sent} {body}", client_id=f"s{sent}")
            await reader.of_type("ack", client_id=f"s{sent}")
            got += await reader.messages(room, 1, within=2)
            sent += 1
        assert [int(m["body"].split()[0]) for m in got] == list(range(sent))

        # Now read what the slow client was sent: it ends with a close frame, code 4008.
        received = b""
        while True:
            chunk = await asyncio.wait_for(loop.sock_recv(raw, 65536), 5)
            if not chunk:
                break
            received += chunk
            frames = server_frames(received)
            if frames and frames[-1][0] == 0x8:
                break
        raw.close()
        opcode, payload = server_frames(received)[-1]
        assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == 4008
        reader.close()


# -- typing, receipts, presence --------------------------------------------------------------------


async def test_typing_and_read_receipts_reach_the_other_member(api, server, pair):
    buyer, seller, room = await pair()
    a = await ws_connect(server, buyer.access)
    b = await ws_connect(server, seller.access)
    await a.subscribe(room)
    await b.subscribe(room)
    await a.send(type="typing", room=room)
    assert await b.of_type("typing", room=room) == {
        "type": "typing",
        "room": room,
        "user": buyer.id,
    }

    sent = await send_rest(api, buyer, room, "did you see this?")
    await b.messages(room, 1)
    unread = (await api.get("/api/chat/rooms/", token=seller.access)).json()["results"]
    assert next(r for r in unread if r["id"] == room)["unread_count"] == 1
    await b.send(type="read", room=room, message_id=sent["id"])
    receipt = await a.of_type("read", room=room)
    assert receipt == {"type": "read", "room": room, "user": seller.id, "message_id": sent["id"]}
    rooms = (await api.get("/api/chat/rooms/", token=seller.access)).json()["results"]
    mine = next(r for r in rooms if r["id"] == room)
    assert mine["unread_count"] == 0 and mine["last_read_id"] == sent["id"]
    # The typist does not hear its own typing.
    assert [f for f in a.seen if f["type"] == "typing"] == []
    a.close()
    b.close()


async def test_members_see_each_other_come_and_go(server, pair):
    buyer, seller, room = await pair()
    b = await ws_connect(server, seller.access)
    await b.subscribe(room)
    offline = await b.of_type("presence", user=buyer.id)
    assert offline["online"] is False
    a = await ws_connect(server, buyer.access)
    await a.subscribe(room)
    assert (await b.of_type("presence", user=buyer.id))["online"] is True
    assert (await a.of_type("presence", user=seller.id))["online"] is True
    a.close()
    assert (await b.of_type("presence", user=buyer.id))["online"] is False
    b.close()


async def test_many_senders_in_one_room_share_one_order(api, deps, server, pair):
    buyer, seller, room = await pair()
    watcher = await ws_connect(server, buyer.access)
    await watcher.subscribe(room)
    senders = [await ws_connect(server, u.access) for u in (buyer, seller, buyer, seller)]
    for n, s in enumerate(senders):
        for i in range(10):
            await s.send(type="send", room=room, body=f"{n}-{i}", client_id=f"{n}-{i}")
    got = await watcher.messages(room, 40, within=10)
    ids = [m["id"] for m in got]
    assert ids == sorted(ids) and len(set(ids)) == 40
    for n in range(4):  # each sender's own messages keep the order they were sent in
        assert [m["body"] for m in got if m["body"].startswith(f"{n}-")] == [
            f"{n}-{i}" for i in range(10)
        ]
    detail = (await api.get(f"/api/chat/rooms/{room}/?limit=100", token=seller.access)).json()
    assert [m["id"] for m in detail["messages"]] == ids
    for s in (watcher, *senders):
        s.close()


async def test_actors_start_with_the_first_subscriber_and_stop_when_idle(settings, pair):
    buyer, _seller, room = await pair()
    quick = settings.with_overrides(realtime_idle_seconds=1)
    async with extra_server(quick) as (url, node):
        hub = node.realtime.hub
        assert room not in hub.rooms and buyer.id not in hub.users
        w = await ws_connect(url, buyer.access)
        await w.subscribe(room)
        assert room in hub.rooms and buyer.id in hub.users
        await w.send(type="unsubscribe", room=room)
        await wait_for(lambda: room not in hub.rooms, within=5)
        assert buyer.id in hub.users  # still connected: the user's channel stays
        w.close()
        await wait_for(lambda: buyer.id not in hub.users, within=5)
        assert hub.connections == set()
