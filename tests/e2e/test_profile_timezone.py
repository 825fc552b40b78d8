"""The profile's time zone: the IANA zone a person's lesson times are shown in (reminders, the
calendar feed), set at sign-up or on the profile, refused when it is not one."""

from __future__ import annotations

from tests.factories import make_user

PROFILE = "/api/auth/profile/"
NOT_A_ZONE = "Must be an IANA time zone name, such as Africa/Cairo or UTC."


async def test_a_new_user_is_on_utc_until_they_choose(api, deps):
    user = await make_user(api, deps)
    response = await api.get(PROFILE, token=user.access)
    assert response.status_code == 200
    assert response.json()["timezone"] == "UTC"


async def test_sign_up_may_choose_the_time_zone(api, deps):
    user = await make_user(api, deps, timezone="Africa/Cairo")
    assert user.data["user"]["timezone"] == "Africa/Cairo"
    response = await api.get(PROFILE, token=user.access)
    assert response.json()["timezone"] == "Africa/Cairo"


async def test_patch_sets_the_time_zone_and_leaves_the_rest(api, deps):
    user = await make_user(api, deps, locale="ar")
    response = await api.patch(PROFILE, token=user.access, json={"timezone": "Asia/Riyadh"})
    assert response.status_code == 200, response.text
    assert (response.json()["timezone"], response.json()["locale"]) == ("Asia/Riyadh", "ar")
    again = await api.get(PROFILE, token=user.access)
    assert again.json()["timezone"] == "Asia/Riyadh"


async def test_a_name_that_is_not_an_iana_zone_is_a_400_naming_the_field(api, deps):
    user = await make_user(api, deps, timezone="Europe/London")
    for wrong in ("Mars/Olympus", "cairo", "+02:00", "../../etc/passwd", "", "localtime"):
        response = await api.patch(PROFILE, token=user.access, json={"timezone": wrong})
        assert response.status_code == 400, wrong
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert response.json()["code"] == "validation_error"
        assert response.json()["errors"] == {"timezone": [NOT_A_ZONE]}
    response = await api.patch(PROFILE, token=user.access, json={"timezone": None})
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["timezone"]
    unchanged = await api.get(PROFILE, token=user.access)
    assert unchanged.json()["timezone"] == "Europe/London"


async def test_sign_up_with_a_wrong_time_zone_creates_no_account(api):
    body = {
        "email": "zoneless@example.com",
        "username": "zoneless",
        "password": "correct horse battery",
        "timezone": "Nowhere/Special",
    }
    response = await api.post("/api/auth/register/", json=body)
    assert response.status_code == 400
    assert response.json()["errors"] == {"timezone": [NOT_A_ZONE]}
    login = await api.post(
        "/api/auth/login/", json={"email": body["email"], "password": body["password"]}
    )
    assert login.status_code == 401


async def test_put_replaces_the_time_zone_too(api, deps):
    user = await make_user(api, deps, timezone="Africa/Cairo")
    body = {"username": user.username, "display_name": "Zed", "timezone": "America/New_York"}
    response = await api.put(PROFILE, token=user.access, json=body)
    assert response.status_code == 200, response.text
    assert response.json()["timezone"] == "America/New_York"
    wrong = await api.put(PROFILE, token=user.access, json={**body, "timezone": "EST5"})
    assert wrong.status_code == 400
    assert wrong.json()["errors"] == {"timezone": [NOT_A_ZONE]}
