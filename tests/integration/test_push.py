"""Push through FCM HTTP v1, against a local FCM that checks the JWT assertion and answers like
Google's (tests/fakes/fcm_server.py): the app's own deps, its devices registered over the API."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from skillswap.deps import Deps
from skillswap.i18n import lazy
from skillswap.models.notifications import NotificationKind
from skillswap.notifications.push import (
    MAX_PAYLOAD_BYTES,
    FcmClient,
    PushMessage,
    PushRejected,
    PushRetryable,
    ServiceAccount,
    push_notification,
    push_to_user,
)
from tests.conftest import Api, api_client, extra_server
from tests.factories import TestUser, make_user, place_order
from tests.fakes.fcm_server import FakeFcm, new_private_key, pem, running_fcm

DEVICES = "/api/notifications/devices/"


@dataclass
class PushApp:
    api: Api
    deps: Deps
    fcm: FakeFcm

    async def user(self, **options: object) -> TestUser:
        return await make_user(self.api, self.deps, **options)

    async def device(self, user: TestUser, token: str, platform: str = "android") -> int:
        response = await self.api.post(
            DEVICES, token=user.access, json={"token": token, "platform": platform}
        )
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    async def device_tokens(self, user: TestUser) -> list[str]:
        listing = (await self.api.get(DEVICES, token=user.access)).json()
        return [d["token"] for d in listing["results"]]


@contextlib.asynccontextmanager
async def push_app(settings) -> AsyncIterator[PushApp]:  # type: ignore[no-untyped-def]
    async with running_fcm() as fcm:
        configured = settings.with_overrides(
            fcm_credentials_file=fcm.account_file(), fcm_api_base=fcm.base_url
        )
        async with extra_server(configured) as (url, deps), api_client(url) as api:
            yield PushApp(api, deps, fcm)


@pytest.fixture
async def app(settings) -> AsyncIterator[PushApp]:  # type: ignore[no-untyped-def]
    async with push_app(settings) as built:
        yield built


async def test_a_new_order_reaches_the_sellers_phone_in_arabic(app: PushApp):
    seller, buyer = await app.user(locale="ar"), await app.user()
    device_id = await app.device(seller, "seller-phone-token")
    order = await place_order(app.api, app.deps, buyer, seller)
    notes = (await app.api.get("/api/notifications/", token=seller.access)).json()["results"]
    assert [n["kind"] for n in notes] == ["order_placed"]

    report = await push_notification(app.deps, notes[0]["id"])

    assert report.sent == (device_id,) and report.removed == ()
    assert app.fcm.messages == [
        {
            "token": "seller-phone-token",
            "notification": {"title": "طلب جديد", "body": f"لديك طلب جديد #{order['id']}."},
            "data": {
                "kind": "order_placed",
                "notification_id": str(notes[0]["id"]),
                "order_id": str(order["id"]),
                "skill_id": str(order["skill"]["id"]),
                "buyer_id": str(buyer.id),
                "room": str(order["room_id"]),
            },
        }
    ]


async def test_an_english_user_gets_english_and_every_device_gets_it(app: PushApp):
    user = await app.user()
    phone = await app.device(user, "phone-token")
    browser = await app.device(user, "browser-token", "web")
    report = await push_to_user(
        app.deps,
        user_id=user.id,
        kind=NotificationKind.ORDER_ACCEPTED,
        text=lazy("Order #{order} was accepted.", order=7),
        data={"order_id": 7, "urgent": True, "note": None},
    )
    assert report.sent == (phone, browser)
    for token in ("phone-token", "browser-token"):
        assert app.fcm.received(token) == [
            {
                "token": token,
                "notification": {"title": "Order accepted", "body": "Order #7 was accepted."},
                "data": {"kind": "order_accepted", "order_id": "7", "urgent": "true"},
            }
        ]


async def test_the_access_token_is_fetched_once_for_many_sends(app: PushApp):
    user = await app.user()
    await app.device(user, "cached-token")
    for n in range(4):
        await push_to_user(
            app.deps,
            user_id=user.id,
            kind=NotificationKind.CHAT_MESSAGE,
            text=lazy("Hello {n}", n=n),
        )
    assert len(app.fcm.received("cached-token")) == 4
    assert app.fcm.token_requests == 1


async def test_an_access_token_about_to_expire_is_renewed(app: PushApp):
    # Valid for 60 s: inside the renewal margin at once, so every send asks for a new one.
    app.fcm.token_lifetime = 60
    user = await app.user()
    await app.device(user, "short-lived-token")
    for _ in range(2):
        await push_to_user(
            app.deps, user_id=user.id, kind=NotificationKind.CHAT_MESSAGE, text=lazy("Hi")
        )
    assert app.fcm.token_requests == 2
    assert len(app.fcm.received("short-lived-token")) == 2


@pytest.mark.parametrize("code", ["UNREGISTERED", "SENDER_ID_MISMATCH", "INVALID_ARGUMENT"])
async def test_a_dead_token_loses_its_device_and_the_others_still_get_it(app: PushApp, code):
    user = await app.user()
    await app.device(user, f"dead-{code}")
    alive = await app.device(user, f"alive-{code}")
    app.fcm.errors[f"dead-{code}"] = code
    report = await push_to_user(
        app.deps, user_id=user.id, kind=NotificationKind.ORDER_PLACED, text=lazy("New order")
    )
    assert report.sent == (alive,) and len(report.removed) == 1
    assert await app.device_tokens(user) == [f"alive-{code}"]
    assert [m["token"] for m in app.fcm.messages] == [f"alive-{code}"]


@pytest.mark.parametrize("code", ["QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"])
async def test_a_transient_failure_is_retryable_with_retry_after_and_keeps_the_device(
    app: PushApp, code
):
    user = await app.user()
    reached = await app.device(user, f"fine-{code}")
    await app.device(user, f"busy-{code}")
    app.fcm.errors[f"busy-{code}"] = code
    app.fcm.retry_after = 45
    with pytest.raises(PushRetryable) as raised:
        await push_to_user(
            app.deps, user_id=user.id, kind=NotificationKind.ORDER_PLACED, text=lazy("New order")
        )
    assert raised.value.code == code
    # FCM sends Retry-After with 429 and 503; a 500 has none.
    assert raised.value.retry_after == (None if code == "INTERNAL" else 45.0)
    assert raised.value.delivered == (reached,)
    assert sorted(await app.device_tokens(user)) == [f"busy-{code}", f"fine-{code}"]

    # The retry skips the device that has it and reaches the other once FCM recovers.
    app.fcm.errors.clear()
    retried = await push_to_user(
        app.deps,
        user_id=user.id,
        kind=NotificationKind.ORDER_PLACED,
        text=lazy("New order"),
        skip_device_ids=raised.value.delivered,
    )
    assert len(retried.sent) == 1 and reached not in retried.sent
    assert [m["token"] for m in app.fcm.messages] == [f"fine-{code}", f"busy-{code}"]


async def test_push_turned_off_for_a_kind_sends_nothing(app: PushApp):
    user = await app.user()
    await app.device(user, "quiet-token")
    changed = await app.api.patch(
        "/api/notifications/preferences/",
        token=user.access,
        json={"preferences": {"chat_message": {"push": False}}},
    )
    assert changed.status_code == 200, changed.text
    report = await push_to_user(
        app.deps, user_id=user.id, kind=NotificationKind.CHAT_MESSAGE, text=lazy("Hi")
    )
    assert report.skipped == "not_wanted" and app.fcm.messages == []
    assert app.fcm.token_requests == 0


async def test_a_long_body_is_cut_to_fit_under_four_kilobytes(app: PushApp):
    user = await app.user()
    await app.device(user, "long-token")
    body = "مرحبا " * 2000  # 12,000 characters, about 22 KB in UTF-8
    await push_to_user(
        app.deps,
        user_id=user.id,
        kind=NotificationKind.CHAT_MESSAGE,
        text=lazy(body),
        data={"room": 3},
    )
    [sent] = app.fcm.received("long-token")
    payload = {"notification": sent["notification"], "data": sent["data"]}
    size = len(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode())
    assert MAX_PAYLOAD_BYTES - 20 < size <= MAX_PAYLOAD_BYTES
    assert sent["notification"]["body"].endswith("…")
    assert body.startswith(sent["notification"]["body"][:-1])
    assert sent["data"] == {"kind": "chat_message", "room": "3"}


async def test_a_forged_assertion_is_refused_and_nothing_is_sent():
    async with running_fcm() as fcm, httpx.AsyncClient() as http:
        # The account's email and key id, signed with a key that is not the account's.
        forged = ServiceAccount.from_file(fcm.account_file(private_key=pem(new_private_key())))
        client = FcmClient(forged, http, api_base=fcm.base_url)
        with pytest.raises(PushRejected) as raised:
            await client.send("some-token", PushMessage("t", "b"))
        assert raised.value.code == "AUTHENTICATION"
        assert len(fcm.refused_assertions) == 1
        assert fcm.refused_assertions[0].startswith("Invalid JWT: InvalidSignatureError")
        assert fcm.issued == {} and fcm.messages == []

        # The genuine account is accepted by the same server.
        genuine = FcmClient(
            ServiceAccount.from_file(fcm.account_file()), http, api_base=fcm.base_url
        )
        name = await genuine.send("some-token", PushMessage("t", "b"))
        assert name.startswith("projects/skillswap-test/messages/0:")
        assert len(fcm.issued) == 1 and len(fcm.messages) == 1


async def test_a_revoked_access_token_is_replaced_once():
    async with running_fcm() as fcm, httpx.AsyncClient() as http:
        client = FcmClient(
            ServiceAccount.from_file(fcm.account_file()), http, api_base=fcm.base_url
        )
        await client.send("t1", PushMessage("a", "b"))
        fcm.issued.clear()  # FCM no longer honours the cached token
        await client.send("t1", PushMessage("a", "b"))
        assert fcm.token_requests == 2 and len(fcm.received("t1")) == 2


def test_a_service_account_file_missing_fields_is_a_configuration_error(tmp_path: Path):
    from skillswap.settings import ConfigError

    path = tmp_path / "sa.json"
    path.write_text(json.dumps({"project_id": "p", "client_email": "e"}), encoding="utf-8")
    with pytest.raises(ConfigError, match="missing private_key, token_uri"):
        ServiceAccount.from_file(path)
