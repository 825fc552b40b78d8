"""Push devices: registered once per token, the token belongs to whoever registered it last,
listed in the envelope, removed by their owner only."""

from __future__ import annotations

import secrets

DEVICES = "/api/notifications/devices/"


def new_token() -> str:
    return f"fcm:{secrets.token_urlsafe(40)}"


async def test_registering_is_idempotent_on_the_token(api, make_user):
    user = await make_user()
    token = new_token()
    first = await api.post(DEVICES, token=user.access, json={"token": token, "platform": "android"})
    assert first.status_code == 201, first.text
    device = first.json()
    assert set(device) == {"id", "token", "platform", "created_at"}
    assert device["token"] == token and device["platform"] == "android"
    assert first.headers["Location"].endswith(f"{DEVICES}{device['id']}/")

    again = await api.post(DEVICES, token=user.access, json={"token": token, "platform": "ios"})
    assert again.status_code == 200, again.text
    assert again.json() == {**device, "platform": "ios"}

    listing = (await api.get(DEVICES, token=user.access)).json()
    assert listing == {"count": 1, "next": None, "previous": None, "results": [again.json()]}
    one = await api.get(f"{DEVICES}{device['id']}/", token=user.access)
    assert one.status_code == 200 and one.json() == again.json()


async def test_a_token_moves_to_the_newest_user_who_registers_it(api, make_user):
    first, second = await make_user(), await make_user()
    token = new_token()
    mine = await api.post(DEVICES, token=first.access, json={"token": token, "platform": "web"})
    assert mine.status_code == 201
    theirs = await api.post(
        DEVICES, token=second.access, json={"token": token, "platform": "android"}
    )
    assert theirs.status_code == 201, theirs.text
    assert theirs.json()["token"] == token and theirs.json()["platform"] == "android"

    assert (await api.get(DEVICES, token=first.access)).json()["count"] == 0
    second_list = (await api.get(DEVICES, token=second.access)).json()
    assert [d["token"] for d in second_list["results"]] == [token]
    gone = await api.get(f"{DEVICES}{mine.json()['id']}/", token=first.access)
    assert gone.status_code == 404


async def test_devices_are_listed_newest_first_and_paged(api, make_user):
    user = await make_user()
    tokens = [new_token() for _ in range(3)]
    for token in tokens:
        created = await api.post(
            DEVICES, token=user.access, json={"token": token, "platform": "android"}
        )
        assert created.status_code == 201
    page = (await api.get(DEVICES, token=user.access, params={"page_size": 2})).json()
    assert page["count"] == 3 and page["previous"] is None
    assert [d["token"] for d in page["results"]] == [tokens[2], tokens[1]]
    assert page["next"] is not None and "page=2" in page["next"]
    rest = (await api.get(page["next"], token=user.access)).json()
    assert [d["token"] for d in rest["results"]] == [tokens[0]]


async def test_only_the_owner_removes_a_device(api, make_user):
    owner, other = await make_user(), await make_user()
    device = (
        await api.post(DEVICES, token=owner.access, json={"token": new_token(), "platform": "ios"})
    ).json()
    path = f"{DEVICES}{device['id']}/"

    refused = await api.delete(path, token=other.access)
    assert refused.status_code == 404
    assert refused.json()["code"] == "device_not_found"
    assert (await api.get(path, token=other.access)).status_code == 404
    assert (await api.get(DEVICES, token=owner.access)).json()["count"] == 1

    removed = await api.delete(path, token=owner.access)
    assert removed.status_code == 204 and removed.content == b""
    assert (await api.get(DEVICES, token=owner.access)).json()["count"] == 0
    assert (await api.delete(path, token=owner.access)).status_code == 404


async def test_a_device_needs_a_known_platform_and_a_token(api, make_user):
    user = await make_user()
    cases = [
        ({"token": new_token(), "platform": "blackberry"}, "platform"),
        ({"token": "", "platform": "android"}, "token"),
        ({"token": "has spaces", "platform": "android"}, "token"),
        ({"token": "x" * 1025, "platform": "android"}, "token"),
        ({"platform": "android"}, "token"),
        ({"token": 12, "platform": "android"}, "token"),
    ]
    for body, field in cases:
        response = await api.post(DEVICES, token=user.access, json=body)
        assert response.status_code == 400, body
        assert list(response.json()["errors"]) == [field], body
    assert (await api.get(DEVICES, token=user.access)).json()["count"] == 0


async def test_devices_need_a_signed_in_user(api):
    assert (await api.get(DEVICES)).status_code == 401
    response = await api.post(DEVICES, json={"token": new_token(), "platform": "android"})
    assert response.status_code == 401


async def test_the_same_idempotency_key_replays_the_registration(api, make_user):
    user = await make_user()
    body = {"token": new_token(), "platform": "android"}
    headers = {"Idempotency-Key": secrets.token_hex(8)}
    first = await api.post(DEVICES, token=user.access, json=body, headers=headers)
    replay = await api.post(DEVICES, token=user.access, json=body, headers=headers)
    assert first.status_code == replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert replay.headers["Location"] == first.headers["Location"]
