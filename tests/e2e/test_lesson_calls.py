"""The lesson's call on one node: GET /api/lessons/{order_id}/call/ (who, when, the ICE servers)
and the `call` frames on /ws/ (relayed to the other participant only, never stored; the first
offer and the hang-up noted on the lesson and in the room)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from skillswap.models import ChatMessage, Lesson
from tests.chat_support import wait_for, ws_connect
from tests.conftest import api_client, extra_server
from tests.factories import place_order
from tests.lesson_support import lesson_order

OFFER = {"kind": "offer", "type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}


def quarter(moment: datetime) -> datetime:
    """The quarter hour `moment` is in: a lesson starting then is on now."""
    return moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)


async def accepted_lesson(
    api: Any, deps: Any, buyer: Any, seller: Any, *, starts_at: datetime | None = None
) -> dict[str, Any]:
    """A lesson order of `seller` booked by `buyer`, accepted: its call is open now (unless
    `starts_at` says otherwise)."""
    starts_at = starts_at or quarter(deps.clock())
    order = await lesson_order(api, deps, buyer, seller, starts_at=starts_at, minutes=60)
    # Accepted before it started, as a teacher does.
    with deps.clock.moved(min(timedelta(), starts_at - timedelta(hours=1) - deps.clock())):
        accepted = await api.post(
            f"/api/points/orders/{order['id']}/accept/", token=seller.access, json={}
        )
    assert accepted.status_code == 200, accepted.text
    return order


async def notices(deps: Any, room_id: int) -> list[tuple[int, str]]:
    """The room's call notices as stored: (sender, body)."""
    async with deps.db.read() as session:
        rows = await session.execute(
            select(ChatMessage.sender_id, ChatMessage.body)
            .where(
                ChatMessage.room_id == room_id,
                ChatMessage.body.in_(("call_started", "call_ended")),
            )
            .order_by(ChatMessage.seq)
        )
    return [(sender, body) for sender, body in rows]


async def lesson_row(deps: Any, order_id: int) -> Lesson:
    async with deps.db.read() as session:
        lesson = await session.get(Lesson, order_id)
    assert lesson is not None
    return lesson


# -- GET /api/lessons/{order_id}/call/ -----------------------------------------------------------


async def test_both_participants_get_the_room_and_the_ice_servers(api, deps, make_user):
    buyer, seller = await make_user(), await make_user()
    order = await accepted_lesson(api, deps, buyer, seller)
    before = int(deps.clock().timestamp())
    for user in (buyer, seller):
        response = await api.get(f"/api/lessons/{order['id']}/call/", token=user.access)
        assert response.status_code == 200, response.text
        assert response.headers["Cache-Control"] == "no-store"
        call = response.json()
        assert set(call) == {"room_id", "ice_servers", "expires_at"}
        assert call["room_id"] == order["room_id"]
        # The test settings name no TURN server: the default STUN server only.
        assert call["ice_servers"] == [{"urls": ["stun:stun.l.google.com:19302"]}]
        expires = datetime.fromisoformat(call["expires_at"]).timestamp()
        assert before + 3600 <= expires <= before + 3600 + 5


async def test_with_turn_configured_each_participant_gets_credentials_of_their_own(
    settings, make_user, api, deps
):
    buyer, seller = await make_user(), await make_user()
    order = await accepted_lesson(api, deps, buyer, seller)
    secret = "a-turn-secret-shared-with-coturn"
    configured = settings.with_overrides(
        stun_urls=("stun:turn.example.org:3478",),
        turn_urls=("turn:turn.example.org:3478", "turns:turn.example.org:5349?transport=tcp"),
        turn_secret=secret,
        turn_ttl_seconds=600,
    )
    async with extra_server(configured) as (url, _node), api_client(url) as other:
        for user in (buyer, seller):
            before = int(datetime.now(UTC).timestamp())
            response = await other.get(f"/api/lessons/{order['id']}/call/", token=user.access)
            assert response.status_code == 200, response.text
            call = response.json()
            stun, turn = call["ice_servers"]
            assert stun == {"urls": ["stun:turn.example.org:3478"]}
            assert turn["urls"] == [
                "turn:turn.example.org:3478",
                "turns:turn.example.org:5349?transport=tcp",
            ]
            expiry, user_id = turn["username"].split(":")
            assert int(user_id) == user.id
            assert before + 600 <= int(expiry) <= before + 605
            assert datetime.fromisoformat(call["expires_at"]).timestamp() == int(expiry)
            digest = hmac.new(secret.encode(), turn["username"].encode(), hashlib.sha1).digest()
            assert turn["credential"] == base64.b64encode(digest).decode()


async def test_anyone_else_is_told_the_order_does_not_exist(api, deps, make_user):
    buyer, seller, stranger = await make_user(), await make_user(), await make_user()
    admin = await make_user(admin=True)
    order = await accepted_lesson(api, deps, buyer, seller)
    for user in (stranger, admin):
        response = await api.get(f"/api/lessons/{order['id']}/call/", token=user.access)
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "order_not_found"
    for missing in ("999999999", "9223372036854775808"):
        response = await api.get(f"/api/lessons/{missing}/call/", token=buyer.access)
        assert (response.status_code, response.json()["code"]) == (404, "order_not_found")
    anonymous = await api.get(f"/api/lessons/{order['id']}/call/")
    assert anonymous.status_code == 401


async def test_an_order_that_is_not_a_lesson_has_no_call(api, deps, make_user):
    buyer, seller = await make_user(), await make_user()
    order = await place_order(api, deps, buyer, seller)
    response = await api.get(f"/api/lessons/{order['id']}/call/", token=buyer.access)
    assert (response.status_code, response.json()["code"]) == (404, "lesson_not_found")


async def test_the_call_is_closed_until_the_teacher_accepts(api, deps, make_user):
    buyer, seller = await make_user(), await make_user()
    starts_at = quarter(deps.clock())
    order = await lesson_order(api, deps, buyer, seller, starts_at=starts_at)
    response = await api.get(f"/api/lessons/{order['id']}/call/", token=buyer.access)
    assert response.status_code == 409, response.text
    problem = response.json()
    assert problem["code"] == "call_not_open"
    assert problem["order_status"] == "pending"
    assert datetime.fromisoformat(problem["opens_at"]) == starts_at - timedelta(minutes=10)


async def test_the_call_opens_ten_minutes_before_the_start_and_closes_after_the_grace(
    api, deps, make_user
):
    buyer, seller = await make_user(), await make_user()
    starts_at = quarter(deps.clock()) + timedelta(days=2)
    order = await accepted_lesson(api, deps, buyer, seller, starts_at=starts_at)
    path = f"/api/lessons/{order['id']}/call/"
    opens_at, closes_at = starts_at - timedelta(minutes=10), starts_at + timedelta(minutes=75)
    now = deps.clock()
    for moment, status in (
        (opens_at - timedelta(seconds=5), 409),
        (opens_at + timedelta(seconds=1), 200),
        (starts_at + timedelta(minutes=59), 200),
        (closes_at - timedelta(seconds=5), 200),
        (closes_at + timedelta(seconds=5), 409),
    ):
        with deps.clock.moved(moment - now):
            response = await api.get(path, token=seller.access)
        assert response.status_code == status, (moment, response.text)
        if status == 409:
            problem = response.json()
            assert problem["code"] == "call_not_open"
            assert datetime.fromisoformat(problem["opens_at"]) == opens_at
            assert datetime.fromisoformat(problem["closes_at"]) == closes_at
            assert problem["order_status"] == "accepted"


# -- `call` frames on /ws/ -----------------------------------------------------------------------


async def test_signals_reach_every_socket_of_the_other_participant_and_never_the_sender(
    api, deps, server, make_user
):
    buyer, seller = await make_user(), await make_user()
    order = await accepted_lesson(api, deps, buyer, seller)
    room = order["room_id"]
    caller = await ws_connect(server, buyer.access)
    callers_phone = await ws_connect(server, buyer.access)
    laptop = await ws_connect(server, seller.access, via_query=True)
    phone = await ws_connect(server, seller.access)
    answer = {"kind": "answer", "sdp": "v=0\r\n"}
    candidate = {"kind": "candidate", "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}

    await caller.send(type="call", room=room, signal=OFFER)
    for i in range(5):
        await caller.send(type="call", room=room, signal={**candidate, "n": i})
    for socket in (laptop, phone):
        got = [await socket.of_type("call") for _ in range(6)]
        assert got[0] == {"type": "call", "room": room, "from": buyer.id, "signal": OFFER}
        assert [g["signal"].get("n") for g in got[1:]] == [0, 1, 2, 3, 4]  # in the order sent
    await laptop.send(type="call", room=room, signal=answer)
    for socket in (caller, callers_phone):
        got = await socket.of_type("call")
        assert got == {"type": "call", "room": room, "from": seller.id, "signal": answer}
    # Neither side heard its own signals; no error anywhere.
    for socket, own in ((caller, buyer.id), (callers_phone, buyer.id), (phone, seller.id)):
        frames = await socket.quiet(0.3)
        assert [f for f in frames if f["type"] == "call"] == []
        assert [f for f in frames if f["type"] == "error"] == [], own
    for socket in (caller, callers_phone, laptop, phone):
        socket.close()


async def test_signals_are_never_stored_and_one_notice_marks_a_calls_start_and_end(
    api, deps, server, make_user
):
    buyer, seller = await make_user(), await make_user()
    order = await accepted_lesson(api, deps, buyer, seller)
    room = order["room_id"]
    caller = await ws_connect(server, buyer.access)
    callee = await ws_connect(server, seller.access)
    assert (await callee.subscribe(room))["type"] == "subscribed"

    await caller.send(type="call", room=room, signal=OFFER)
    await caller.send(type="call", room=room, signal={**OFFER, "sdp": "renegotiated"})
    await callee.send(type="call", room=room, signal={"kind": "answer", "sdp": "v=0"})
    notice = await callee.of_type("message", room=room)
    assert notice["message"]["body"] == "call_started"
    assert notice["message"]["sender"] == buyer.id
    assert notice["message"]["client_id"].startswith("call_started:")
    assert [f["signal"]["sdp"] for f in [await callee.of_type("call") for _ in range(2)]] == [
        OFFER["sdp"],
        "renegotiated",
    ]
    lesson = await lesson_row(deps, order["id"])
    assert lesson.call_started_at is not None and lesson.call_ended_at is None
    await asyncio.sleep(0.2)
    assert await notices(deps, room) == [(buyer.id, "call_started")]

    # Both hang up: one `call_ended`.
    await callee.send(type="call", room=room, signal={"kind": "hangup"})
    await caller.send(type="call", room=room, signal={"kind": "hangup"})
    heard = [(await caller.of_type("call"))["signal"]["kind"] for _ in range(2)]
    assert heard == ["answer", "hangup"]
    ended = await callee.of_type("message", room=room)
    # Whoever's hang-up came first wrote it; the other's found the call ended.
    hung_up = ended["message"]["sender"]
    assert ended["message"]["body"] == "call_ended" and hung_up in {buyer.id, seller.id}
    await asyncio.sleep(0.2)
    assert await notices(deps, room) == [(buyer.id, "call_started"), (hung_up, "call_ended")]
    lesson = await lesson_row(deps, order["id"])
    assert lesson.call_ended_at is not None and lesson.call_ended_at >= lesson.call_started_at

    # A new offer after the hang-up is a new call.
    await callee.send(type="call", room=room, signal=OFFER)
    again = await callee.of_type("message", room=room)
    assert (again["message"]["body"], again["message"]["sender"]) == ("call_started", seller.id)
    lesson = await lesson_row(deps, order["id"])
    assert lesson.call_ended_at is None

    # Only the notices are in the room's history: no signal was stored.
    async with deps.db.read() as session:
        bodies = list(
            await session.scalars(
                select(ChatMessage.body)
                .where(ChatMessage.room_id == room)
                .order_by(ChatMessage.seq)
            )
        )
    assert bodies == ["call_started", "call_ended", "call_started"]
    history = await api.get(f"/api/chat/rooms/{room}/", token=buyer.access)
    assert [m["body"] for m in history.json()["messages"]] == bodies
    caller.close()
    callee.close()


async def test_two_offers_at_once_leave_one_call_started(api, deps, server, make_user):
    buyer, seller = await make_user(), await make_user()
    order = await accepted_lesson(api, deps, buyer, seller)
    room = order["room_id"]
    sockets = [await ws_connect(server, user.access) for user in (buyer, seller, buyer, seller)]
    for socket in sockets:
        socket.conn.write_message(json.dumps({"type": "call", "room": room, "signal": OFFER}))
    for socket in sockets:
        assert (await socket.of_type("call"))["signal"] == OFFER
    await asyncio.sleep(0.5)
    started = await notices(deps, room)
    assert [body for _sender, body in started] == ["call_started"]
    for socket in sockets:
        socket.close()


async def test_a_hangup_without_a_call_writes_nothing(api, deps, server, make_user):
    buyer, seller = await make_user(), await make_user()
    order = await accepted_lesson(api, deps, buyer, seller)
    room = order["room_id"]
    caller = await ws_connect(server, buyer.access)
    callee = await ws_connect(server, seller.access)
    await caller.send(type="call", room=room, signal={"kind": "hangup"})
    assert (await callee.of_type("call"))["signal"] == {"kind": "hangup"}
    await asyncio.sleep(0.2)
    assert await notices(deps, room) == []
    lesson = await lesson_row(deps, order["id"])
    assert (lesson.call_started_at, lesson.call_ended_at) == (None, None)
    caller.close()
    callee.close()


async def test_a_hangup_sent_just_before_the_socket_closes_still_ends_the_call(
    api, deps, server, make_user
):
    buyer, seller = await make_user(), await make_user()
    order = await accepted_lesson(api, deps, buyer, seller)
    room = order["room_id"]
    caller = await ws_connect(server, buyer.access)
    callee = await ws_connect(server, seller.access)
    await caller.send(type="call", room=room, signal=OFFER)
    assert (await callee.of_type("call"))["signal"] == OFFER
    # A page closing: its hang-up and then the close, at once.
    leaving = await ws_connect(server, seller.access)
    leaving.conn.write_message(
        json.dumps({"type": "call", "room": room, "signal": {"kind": "hangup"}})
    )
    leaving.close()
    assert (await caller.of_type("call"))["signal"] == {"kind": "hangup"}

    async def ended() -> bool:
        return len(await notices(deps, room)) == 2

    await wait_for(ended)
    assert await notices(deps, room) == [(buyer.id, "call_started"), (seller.id, "call_ended")]
    caller.close()
    callee.close()


async def test_strangers_and_administrators_cannot_signal_into_the_room(
    api, deps, server, make_user
):
    buyer, seller, stranger = await make_user(), await make_user(), await make_user()
    admin = await make_user(admin=True)
    order = await accepted_lesson(api, deps, buyer, seller)
    room = order["room_id"]
    callee = await ws_connect(server, seller.access)
    for user in (stranger, admin):
        intruder = await ws_connect(server, user.access)
        await intruder.send(type="call", room=room, signal=OFFER)
        error = await intruder.of_type("error")
        assert (error["code"], error["room"]) == ("room_not_found", room)
        await intruder.send(type="call", room=999_999_999, signal=OFFER)
        assert (await intruder.of_type("error"))["code"] == "room_not_found"
        intruder.close()
    assert [f for f in await callee.quiet(0.3) if f["type"] == "call"] == []
    assert await notices(deps, room) == []
    callee.close()


async def test_a_room_without_a_lesson_or_with_its_call_closed_refuses_signals(
    api, deps, server, make_user
):
    buyer, seller = await make_user(), await make_user()
    plain = await place_order(api, deps, buyer, seller)
    later = await accepted_lesson(
        api, deps, buyer, seller, starts_at=quarter(deps.clock()) + timedelta(days=3)
    )
    pending = await lesson_order(api, deps, buyer, seller, starts_at=quarter(deps.clock()))
    callee = await ws_connect(server, seller.access)
    caller = await ws_connect(server, buyer.access)
    await caller.send(type="call", room=plain["room_id"], signal=OFFER)
    assert (await caller.of_type("error"))["code"] == "lesson_not_found"
    for order, status in ((later, "accepted"), (pending, "pending")):
        await caller.send(type="call", room=order["room_id"], signal=OFFER)
        error = await caller.of_type("error", room=order["room_id"])
        assert error["code"] == "call_not_open"
        assert error["order_status"] == status
        assert set(error) >= {"opens_at", "closes_at", "detail"}
    assert [f for f in await callee.quiet(0.3) if f["type"] == "call"] == []
    caller.close()
    callee.close()


async def test_a_cancelled_lesson_stops_its_signals(api, deps, server, make_user):
    buyer, seller = await make_user(), await make_user()
    order = await accepted_lesson(api, deps, buyer, seller)
    room = order["room_id"]
    caller = await ws_connect(server, buyer.access)
    callee = await ws_connect(server, seller.access)
    await caller.send(type="call", room=room, signal=OFFER)
    assert (await callee.of_type("call"))["signal"] == OFFER
    cancelled = await api.post(
        f"/api/points/orders/{order['id']}/cancel/", token=seller.access, json={}
    )
    assert cancelled.status_code == 200, cancelled.text  # the teacher's: a full refund
    await asyncio.sleep(5.1)  # the socket trusts a call's room this long (CALL_ROOM_SECONDS)
    await caller.send(type="call", room=room, signal={"kind": "candidate", "candidate": ""})
    error = await caller.of_type("error", room=room)
    assert (error["code"], error["order_status"]) == ("call_not_open", "cancelled")
    assert [f for f in await callee.quiet(0.3) if f["type"] == "call"] == []
    caller.close()
    callee.close()


async def test_a_signal_larger_than_the_limit_is_refused_and_the_socket_stays_open(
    api, deps, server, settings, make_user
):
    buyer, seller = await make_user(), await make_user()
    order = await accepted_lesson(api, deps, buyer, seller)
    room = order["room_id"]
    caller = await ws_connect(server, buyer.access)
    callee = await ws_connect(server, seller.access)
    limit = settings.call_signal_max_bytes
    frame = {"type": "call", "room": room, "signal": {"kind": "offer", "sdp": ""}}
    padding = limit - len(json.dumps(frame))
    at_limit = {**frame, "signal": {"kind": "offer", "sdp": "s" * padding}}
    assert len(json.dumps(at_limit).encode()) == limit
    await caller.conn.write_message(json.dumps(at_limit))
    assert (await callee.of_type("call"))["signal"]["sdp"] == "s" * padding
    # One byte more (a two-byte character in place of one): refused, not relayed.
    over = {**frame, "signal": {"kind": "offer", "sdp": "é" + "s" * (padding - 1)}}
    assert len(json.dumps(over, ensure_ascii=False).encode()) == limit + 1
    await caller.conn.write_message(json.dumps(over, ensure_ascii=False))
    error = await caller.of_type("error")
    assert (error["code"], error["room"], error["max"]) == ("signal_too_large", room, limit)
    await caller.send(type="call", room=room, signal={"kind": "dance"})
    assert (await caller.of_type("error"))["code"] == "invalid_frame"
    assert [f for f in await callee.quiet(0.3) if f["type"] == "call"] == []
    await caller.send(type="ping")
    assert (await caller.of_type("pong")) == {"type": "pong"}
    caller.close()
    callee.close()


async def test_call_frames_count_against_the_sockets_frame_rate(api, deps, settings, make_user):
    buyer, seller = await make_user(), await make_user()
    order = await accepted_lesson(api, deps, buyer, seller)
    tight = settings.with_overrides(ws_rate_per_second=5, ws_rate_burst=10)
    async with extra_server(tight) as (url, _node):
        caller = await ws_connect(url, buyer.access)
        for _ in range(30):
            caller.conn.write_message(
                json.dumps({"type": "call", "room": order["room_id"], "signal": OFFER})
            )
        assert await caller.closed() == 4029
