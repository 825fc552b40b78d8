"""The named rate limits through the real endpoints: tiny limits on an app of their own, each hit
by its third request (429 rate_limited, Retry-After, the RateLimit fields, nothing written), per
user and per address (IPv6 by /64), one chat budget for REST and WebSocket, the WebSocket
connection cap across two nodes, and RATE_LIMITS=off letting everything through."""

from __future__ import annotations

import json
import random
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import tornado.httpclient
from sqlalchemy import func, select

from skillswap.models import Order, Payment, Report, Skill, User
from skillswap.settings import Settings
from tests.chat_support import wait_for, ws_connect
from tests.conftest import Api, api_client, extra_server
from tests.factories import insert_skill, order_room, unique_name

LIMITS = (
    "register=2/hour,login=2/minute,order=2/minute,message=3/minute,purchase=2/minute,"
    "skill=2/hour,resend=2/hour,report=2/hour"
)
ORIGIN = "https://app.example"
RATELIMIT_RE = re.compile(r'^"(?P<policy>\w+)";r=(?P<r>\d+);t=(?P<t>\d+)$')


def limited_settings(settings: Settings) -> Settings:
    return settings.with_overrides(
        rate_limits=LIMITS,
        trust_proxy_headers=True,
        cors_origins=(ORIGIN,),
        ws_max_connections_per_user=2,
    )


@pytest.fixture(scope="module")
async def limited(settings: Settings) -> AsyncIterator[tuple[Api, Any]]:
    """An app with tiny limits beside the session's (which runs with RATE_LIMITS=off)."""
    async with (
        extra_server(limited_settings(settings)) as (url, deps),
        api_client(url) as client,
    ):
        yield client, deps


@pytest.fixture
def lapi(limited: tuple[Api, Any]) -> Api:
    return limited[0]


def address() -> str:
    """A client address no other test uses (the app trusts X-Forwarded-For here)."""
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def remaining(response: httpx.Response, policy: str) -> tuple[int, int]:
    """The RateLimit field's r and t, checking it names `policy`."""
    match = RATELIMIT_RE.match(response.headers["RateLimit"])
    assert match, response.headers["RateLimit"]
    assert match["policy"] == policy
    return int(match["r"]), int(match["t"])


def assert_refused(response: httpx.Response, policy: str, quota: int, window: int) -> None:
    """A 429 rate_limited naming `policy`, with Retry-After and the draft's two fields."""
    assert response.status_code == 429, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert (problem["code"], problem["policy"]) == ("rate_limited", policy)
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= window // quota + 1
    assert problem["retry_after"] == retry_after
    assert str(retry_after) in problem["detail"]
    assert response.headers["RateLimit-Policy"] == f'"{policy}";q={quota};w={window}'
    # The effective window ends no earlier than Retry-After (the draft's section 6).
    assert remaining(response, policy) == (0, retry_after)


async def count(deps: Any, statement: Any) -> int:
    async with deps.db.read() as session:
        return int(await session.scalar(statement) or 0)


async def test_a_third_order_within_the_minute_is_refused_and_places_nothing(
    lapi, limited, make_user
) -> None:
    deps = limited[1]
    buyer, seller = await make_user(), await make_user()
    skills = [await insert_skill(deps, owner_id=seller.id, price=1) for _ in range(3)]
    answers = [
        await lapi.post("/api/points/orders/", token=buyer.access, json={"skill_id": skill})
        for skill in skills
    ]
    assert [a.status_code for a in answers[:2]] == [201, 201]
    assert answers[0].headers["RateLimit-Policy"] == '"order";q=2;w=60'
    assert remaining(answers[0], "order") == (1, 30)
    assert remaining(answers[1], "order")[0] == 0
    assert_refused(answers[2], "order", 2, 60)
    placed = select(func.count()).select_from(Order).where(Order.buyer_id == buyer.id)
    assert await count(deps, placed) == 2


async def test_a_refused_order_with_an_idempotency_key_is_not_kept_as_its_outcome(
    lapi, limited, api, make_user
) -> None:
    deps = limited[1]
    buyer, seller = await make_user(), await make_user()
    skill = await insert_skill(deps, owner_id=seller.id, price=1)
    for _ in range(2):
        spent = await lapi.post("/api/points/orders/", token=buyer.access, json={"skill_id": 0})
        assert spent.status_code in (400, 404), spent.text
        assert "RateLimit" in spent.headers  # on failures too
    key = {"Idempotency-Key": secrets.token_hex(8)}
    refused = await lapi.post(
        "/api/points/orders/", token=buyer.access, json={"skill_id": skill}, headers=key
    )
    assert_refused(refused, "order", 2, 60)
    assert "Idempotent-Replayed" not in refused.headers
    placed = select(func.count()).select_from(Order).where(Order.buyer_id == buyer.id)
    assert await count(deps, placed) == 0
    # The key is still free: the session's app (no limits) runs the order under it now.
    retried = await api.post(
        "/api/points/orders/", token=buyer.access, json={"skill_id": skill}, headers=key
    )
    assert retried.status_code == 201, retried.text
    assert "Idempotent-Replayed" not in retried.headers
    assert await count(deps, placed) == 1


async def test_sign_ups_are_limited_per_address(lapi, limited) -> None:
    deps = limited[1]
    here, elsewhere = address(), address()
    names = [unique_name() for _ in range(4)]

    async def register(name: str, client_address: str) -> httpx.Response:
        return await lapi.post(
            "/api/auth/register/",
            json={
                "email": f"{name}@example.com",
                "username": name,
                "password": "a long password 1",
            },
            headers={"X-Forwarded-For": client_address},
        )

    assert (await register(names[0], here)).status_code == 201
    assert (await register(names[1], here)).status_code == 201
    assert_refused(await register(names[2], here), "register", 2, 3600)
    assert (await register(names[3], elsewhere)).status_code == 201
    made = select(func.count()).select_from(User).where(User.username.in_(names))
    assert await count(deps, made) == 3


async def test_ipv6_clients_count_by_their_64_bit_prefix(lapi, make_user) -> None:
    user = await make_user()
    prefix = f"2001:db8:{secrets.randbelow(65536):x}:{secrets.randbelow(65536):x}"

    async def login(client_address: str) -> httpx.Response:
        return await lapi.post(
            "/api/auth/login/",
            json={"username": user.username, "password": user.password},
            headers={"X-Forwarded-For": client_address},
        )

    assert (await login(f"{prefix}::1")).status_code == 200
    assert (await login(f"{prefix}:aaaa:bbbb:cccc:dddd")).status_code == 200
    assert_refused(await login(f"{prefix}::2"), "login", 2, 60)
    # The neighbouring /64 is another subscriber.
    neighbour = prefix.rsplit(":", 1)[0] + f":{(int(prefix.rsplit(':', 1)[1], 16) + 1) % 65536:x}"
    assert (await login(f"{neighbour}::1")).status_code == 200


async def test_two_users_behind_one_address_have_budgets_of_their_own(
    lapi, limited, make_user, make_category
) -> None:
    deps = limited[1]
    shared = {"X-Forwarded-For": address()}
    one, two = await make_user(), await make_user()
    category = (await make_category())["id"]

    async def list_skill(user: Any) -> httpx.Response:
        return await lapi.post(
            "/api/skills/",
            token=user.access,
            headers=shared,
            json={
                "title_en": unique_name("skill"),
                "description_en": "Lessons",
                "price_points": 5,
                "category_id": category,
            },
        )

    assert [(await list_skill(one)).status_code for _ in range(2)] == [201, 201]
    assert_refused(await list_skill(one), "skill", 2, 3600)
    assert (await list_skill(two)).status_code == 201
    listed = select(func.count()).select_from(Skill).where(Skill.owner_id == one.id)
    assert await count(deps, listed) == 2


async def test_verification_mails_and_password_resets_spend_the_resend_policy(
    lapi, make_user
) -> None:
    user = await make_user(verified=False)
    resend = "/api/auth/verify-email/resend/"
    assert [(await lapi.post(resend, token=user.access)).status_code for _ in range(2)] == [
        202,
        202,
    ]
    assert_refused(await lapi.post(resend, token=user.access), "resend", 2, 3600)
    # Anonymous reset requests count against their address.
    here = {"X-Forwarded-For": address()}
    reset = "/api/auth/password/reset/"
    body = {"email": user.email}
    assert [(await lapi.post(reset, json=body, headers=here)).status_code for _ in range(2)] == [
        202,
        202,
    ]
    assert_refused(await lapi.post(reset, json=body, headers=here), "resend", 2, 3600)


async def test_a_burst_of_reports_is_refused_before_the_daily_count(
    lapi, limited, make_user
) -> None:
    deps = limited[1]
    reporter = await make_user()
    targets = [await make_user() for _ in range(3)]
    answers = [
        await lapi.post(
            "/api/reports/",
            token=reporter.access,
            json={"target_type": "user", "target_id": target.id, "reason": "spam"},
        )
        for target in targets
    ]
    assert [a.status_code for a in answers[:2]] == [201, 201]
    assert_refused(answers[2], "report", 2, 3600)
    filed = select(func.count()).select_from(Report).where(Report.reporter_id == reporter.id)
    assert await count(deps, filed) == 2


async def test_starting_payments_is_limited_on_every_purchase_path(
    lapi, limited, make_user
) -> None:
    deps = limited[1]
    buyer = await make_user()
    first = await lapi.post(
        "/api/points/purchase/", token=buyer.access, json={"package_id": 1, "gateway": "stripe"}
    )
    second = await lapi.post("/api/payments/stripe/", token=buyer.access, json={"package_id": 1})
    # Not configured here: refused, and still counted, with the fields on the refusal.
    assert (first.status_code, second.status_code) == (400, 400)
    assert remaining(first, "purchase")[0] == 1
    assert remaining(second, "purchase")[0] == 0
    assert_refused(
        await lapi.post("/api/payments/paymob/", token=buyer.access, json={"package_id": 1}),
        "purchase",
        2,
        60,
    )
    started = select(func.count()).select_from(Payment).where(Payment.user_id == buyer.id)
    assert await count(deps, started) == 0


async def test_chat_sends_over_rest_and_websocket_share_one_budget(
    lapi, limited, api, deps, make_user
) -> None:
    sender, other = await make_user(), await make_user()
    room = await order_room(api, deps, sender, other)
    send = f"/api/chat/rooms/{room}/send/"
    assert (await lapi.post(send, token=sender.access, json={"body": "one"})).status_code == 201
    socket = await ws_connect(str(lapi.client.base_url), sender.access)
    try:
        await socket.send(type="send", room=room, body="two", client_id="c2")
        await socket.send(type="send", room=room, body="three", client_id="c3")
        await socket.send(type="send", room=room, body="four", client_id="c4")
        acked = await socket.of_type("ack", client_id="c2")
        assert acked["message"]["body"] == "two"
        assert (await socket.of_type("ack", client_id="c3"))["message"]["body"] == "three"
        refused = await socket.of_type("error", client_id="c4")
        assert (refused["code"], refused["room"], refused["policy"]) == (
            "rate_limited",
            room,
            "message",
        )
        assert 1 <= refused["retry_after"] <= 21
        # Refused, not disconnected: the socket still answers.
        await socket.send(type="ping")
        await socket.of_type("pong")
    finally:
        socket.close()
    assert_refused(
        await lapi.post(send, token=sender.access, json={"body": "five"}), "message", 3, 60
    )
    detail = await api.get(f"/api/chat/rooms/{room}/", token=sender.access)
    assert [m["body"] for m in detail.json()["messages"]][-3:] == ["one", "two", "three"]


async def test_the_fields_are_on_successes_and_readable_by_the_web_app(lapi, make_user) -> None:
    user = await make_user()
    answer = await lapi.post(
        "/api/auth/login/",
        json={"username": user.username, "password": user.password},
        headers={"X-Forwarded-For": address(), "Origin": ORIGIN},
    )
    assert answer.status_code == 200
    assert answer.headers["RateLimit-Policy"] == '"login";q=2;w=60'
    assert remaining(answer, "login") == (1, 30)
    exposed = {h.strip() for h in answer.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"RateLimit", "RateLimit-Policy", "Retry-After"} <= exposed
    # An endpoint without a policy carries neither field.
    profile = await lapi.get("/api/auth/profile/", token=user.access)
    assert "RateLimit" not in profile.headers


async def test_the_openapi_document_declares_the_fields_on_limited_operations(lapi) -> None:
    document = (await lapi.get("/api/schema/")).json()
    place = document["paths"]["/api/points/orders/"]["post"]["responses"]
    assert {"RateLimit", "RateLimit-Policy"} <= set(place["201"]["headers"])
    assert {"RateLimit", "RateLimit-Policy", "Retry-After"} <= set(place["429"]["headers"])
    listing = document["paths"]["/api/points/orders/"]["get"]["responses"]
    assert "RateLimit" not in listing["200"].get("headers", {})


async def test_with_limits_off_everything_goes_through(api, deps, make_user) -> None:
    # The session's app runs with RATE_LIMITS=off.
    buyer, seller = await make_user(), await make_user()
    for _ in range(5):
        skill = await insert_skill(deps, owner_id=seller.id, price=1)
        placed = await api.post("/api/points/orders/", token=buyer.access, json={"skill_id": skill})
        assert placed.status_code == 201
        assert "RateLimit" not in placed.headers


async def ws_refusal(base: str, token: str) -> tuple[int, dict[str, Any]]:
    with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
        await ws_connect(base, token)
    response = refused.value.response
    assert response is not None
    return refused.value.code, json.loads(response.body)


async def test_websocket_connections_per_user_are_capped(lapi, make_user) -> None:
    user, other = await make_user(), await make_user()
    base = str(lapi.client.base_url)
    first, second = await ws_connect(base, user.access), await ws_connect(base, user.access)
    try:
        status, problem = await ws_refusal(base, user.access)
        assert (status, problem["code"], problem["limit"]) == (429, "too_many_connections", 2)
        # Another user is not affected.
        (await ws_connect(base, other.access)).close()
        first.close()
        await first.closed()
    finally:
        second.close()

    async def connects() -> bool:
        try:
            (await ws_connect(base, user.access)).close()
        except tornado.httpclient.HTTPClientError:
            return False
        return True

    await wait_for(connects)


@pytest.mark.redis
async def test_the_connection_cap_holds_across_two_nodes(settings, lapi, make_user) -> None:
    user = await make_user()
    async with extra_server(limited_settings(settings)) as (other_node, _deps):
        on_one = await ws_connect(str(lapi.client.base_url), user.access)
        on_two = await ws_connect(other_node, user.access)
        try:
            status, problem = await ws_refusal(other_node, user.access)
            assert (status, problem["code"]) == (429, "too_many_connections")
            status, _ = await ws_refusal(str(lapi.client.base_url), user.access)
            assert status == 429
        finally:
            on_one.close()
            on_two.close()
