"""Accounts over real HTTP: sign-up, sign-in, rotation, sign-out, profiles, tokens by email."""

from __future__ import annotations

import asyncio

from tests.factories import unique_name
from tests.outbox_support import outbox_settled


async def test_register_login_profile_refresh_logout_flow(api, make_user):
    user = await make_user(display_name="Amal")
    assert user.data["user"]["email"] == user.email
    assert user.data["user"]["display_name"] == "Amal"

    login = await api.post(
        "/api/auth/login/", json={"email": user.email.upper(), "password": user.password}
    )
    assert login.status_code == 200
    access, refresh = login.json()["access"], login.json()["refresh"]

    profile = await api.get("/api/auth/profile/", token=access)
    assert profile.status_code == 200
    assert profile.json()["username"] == user.username

    rotated = await api.post("/api/auth/refresh/", json={"refresh": refresh})
    assert rotated.status_code == 200
    new_access = rotated.json()["access"]
    assert rotated.json()["refresh"] != refresh

    out = await api.post(
        "/api/auth/logout/", token=new_access, json={"refresh": rotated.json()["refresh"]}
    )
    assert out.status_code == 204
    refused = await api.get("/api/auth/profile/", token=new_access)
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "invalid_token"
    # The refresh family is revoked too.
    again = await api.post("/api/auth/refresh/", json={"refresh": rotated.json()["refresh"]})
    assert again.status_code == 401


async def test_login_by_username_works_and_wrong_password_is_one_generic_401(api, make_user):
    user = await make_user()
    ok = await api.post(
        "/api/auth/login/", json={"username": user.username.upper(), "password": user.password}
    )
    assert ok.status_code == 200
    wrong = await api.post(
        "/api/auth/login/", json={"username": user.username, "password": "nope nope nope"}
    )
    unknown = await api.post(
        "/api/auth/login/", json={"username": "nobody_" + user.username, "password": "x"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["code"] == unknown.json()["code"] == "invalid_credentials"
    assert wrong.json()["detail"] == unknown.json()["detail"]


async def test_duplicate_email_is_case_insensitive_and_username_unique(api, make_user):
    user = await make_user()
    dup_email = await api.post(
        "/api/auth/register/",
        json={
            "email": user.email.upper(),
            "username": unique_name(),
            "password": "correct horse battery",
        },
    )
    assert dup_email.status_code == 409
    assert dup_email.json()["code"] == "email_taken"
    dup_name = await api.post(
        "/api/auth/register/",
        json={
            "email": f"{unique_name()}@example.com",
            "username": user.username.upper(),
            "password": "correct horse battery",
        },
    )
    assert dup_name.status_code == 409
    assert dup_name.json()["code"] == "username_taken"


async def test_registration_validation_reports_every_field(api):
    response = await api.post(
        "/api/auth/register/",
        json={"email": "not-an-email", "username": "a", "password": "short", "extra": 1},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_error"
    assert set(body["errors"]) == {"email", "username", "extra"}


async def test_common_and_short_passwords_are_refused(api):
    name = unique_name()
    common = await api.post(
        "/api/auth/register/",
        json={"email": f"{name}@example.com", "username": name, "password": "password123"},
    )
    assert common.status_code == 400
    assert "password" in common.json()["errors"]
    short = await api.post(
        "/api/auth/register/",
        json={"email": f"{name}@example.com", "username": name, "password": "Zx9!q"},
    )
    assert short.status_code == 400
    assert any("10" in m for m in short.json()["errors"]["password"])


async def test_errors_are_translated_to_arabic(api, make_user):
    response = await api.post(
        "/api/auth/login/",
        json={"username": "nobody", "password": "x"},
        headers={"Accept-Language": "ar"},
    )
    assert response.status_code == 401
    assert response.json()["title"] == "بيانات الدخول غير صحيحة"
    name = unique_name()
    short = await api.post(
        "/api/auth/register/",
        json={"email": f"{name}@example.com", "username": name, "password": "Zx9!q"},
        headers={"Accept-Language": "ar-EG,ar;q=0.9,en;q=0.5"},
    )
    # Arabic plural form for 10 ("few" category) is used.
    assert short.json()["errors"]["password"][0] == "استخدم 10 أحرف على الأقل."


async def test_saved_locale_wins_over_accept_language(api, make_user):
    user = await make_user(locale="ar")
    response = await api.put(
        "/api/auth/profile/",
        token=user.access,
        json={"username": "x"},
        headers={"Accept-Language": "en"},
    )
    assert response.status_code == 400
    assert response.json()["title"] == "مدخلات غير صالحة"


async def test_refresh_token_reuse_after_the_grace_window_revokes_the_whole_family(
    api, make_user, deps
):
    from datetime import timedelta

    from sqlalchemy import update

    from skillswap.auth.tokens import hash_opaque_token
    from skillswap.models import RefreshToken

    user = await make_user()
    first = await api.post("/api/auth/refresh/", json={"refresh": user.refresh})
    assert first.status_code == 200
    grace = deps.settings.refresh_reuse_grace_seconds
    async with deps.db.uow() as uow:
        await uow.session.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == hash_opaque_token(user.refresh))
            .values(used_at=deps.clock() - timedelta(seconds=grace + 1))
        )
        await uow.commit()
    reuse = await api.post("/api/auth/refresh/", json={"refresh": user.refresh})
    assert reuse.status_code == 401
    assert reuse.json()["code"] == "token_reused"
    # The token issued by the legitimate rotation is now dead as well.
    descendant = await api.post("/api/auth/refresh/", json={"refresh": first.json()["refresh"]})
    assert descendant.status_code == 401


async def test_concurrent_refreshes_with_one_token_rotate_once(api, make_user, deps):
    from sqlalchemy import func, select

    from skillswap.models import RefreshToken

    user = await make_user()
    results = await asyncio.gather(
        *(api.post("/api/auth/refresh/", json={"refresh": user.refresh}) for _ in range(5))
    )
    assert [r.status_code for r in results] == [200] * 5
    assert len({(r.json()["access"], r.json()["refresh"]) for r in results}) == 1
    async with deps.db.read() as session:
        issued = await session.scalar(
            select(func.count()).select_from(RefreshToken).where(RefreshToken.user_id == user.id)
        )
    assert issued == 2  # the sign-up's token and one successor


async def test_forged_expired_and_none_algorithm_tokens_are_refused(api, make_user, deps):
    import time

    import jwt

    user = await make_user()
    none_token = jwt.encode(
        {
            "sub": str(user.id),
            "jti": "x",
            "iat": int(time.time()),
            "exp": int(time.time()) + 60,
            "iss": "skillswap",
            "typ": "access",
        },
        key=None,
        algorithm="none",
        headers={"kid": "k1"},
    )
    forged = jwt.encode(
        {
            "sub": str(user.id),
            "jti": "y",
            "iat": int(time.time()),
            "exp": int(time.time()) + 60,
            "iss": "skillswap",
            "typ": "access",
        },
        "not-the-key",
        algorithm="HS256",
        headers={"kid": "k1"},
    )
    expired, _ = deps.keys.issue_access(user.id, now=time.time() - 3600)
    for token in (none_token, forged, "garbage"):
        response = await api.get("/api/auth/profile/", token=token)
        assert response.status_code == 401, token
        assert response.json()["code"] == "invalid_token"
        assert response.headers["WWW-Authenticate"] == (
            'Bearer realm="skillswap", error="invalid_token"'
        )
    response = await api.get("/api/auth/profile/", token=expired)
    assert response.status_code == 401
    assert response.json()["code"] == "token_expired"
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="skillswap", error="invalid_token", error_description="expired"'
    )


async def test_unauthenticated_requests_get_401_problem(api):
    response = await api.get("/api/auth/profile/")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert "X-Request-ID" in response.headers


async def test_profile_update_put_and_patch(api, make_user):
    user = await make_user()
    patched = await api.patch(
        "/api/auth/profile/", token=user.access, json={"bio": "I teach oud", "locale": "ar"}
    )
    assert patched.status_code == 200
    assert patched.json()["bio"] == "I teach oud"
    assert patched.json()["locale"] == "ar"
    bad = await api.patch(
        "/api/auth/profile/", token=user.access, json={"avatar_url": "javascript:alert(1)"}
    )
    assert bad.status_code == 400
    unknown = await api.patch("/api/auth/profile/", token=user.access, json={"is_admin": True})
    assert unknown.status_code == 400
    assert "is_admin" in unknown.json()["errors"]


async def test_public_profile_hides_private_fields(api, make_user):
    user = await make_user()
    await api.patch("/api/auth/profile/", token=user.access, json={"phone": "+20 100 000 0000"})
    other = await make_user()
    response = await api.get(f"/api/users/{user.id}/", token=other.access)
    assert response.status_code == 200
    body = response.json()
    assert body["username"] == user.username
    for private in ("email", "phone", "locale", "is_admin", "balance"):
        assert private not in body
    assert (await api.get("/api/users/999999999/")).status_code == 404


async def test_email_verification_token_is_single_use(api, make_user, mailer):
    user = await make_user(verified=False)
    token = (await mailer.wait_for(user.email, "verify_email")).context["token"]
    first = await api.post("/api/auth/verify-email/", json={"token": token})
    assert first.status_code == 200
    assert (await api.get("/api/auth/profile/", token=user.access)).json()["verified"] is True
    replay = await api.post("/api/auth/verify-email/", json={"token": token})
    assert replay.status_code == 400
    assert replay.json()["code"] == "invalid_code"
    assert list(replay.json()["errors"]) == ["token"]


async def test_password_reset_then_old_password_and_sessions_stop_working(api, make_user, mailer):
    user = await make_user()
    unknown = await api.post("/api/auth/password/reset/", json={"email": "nobody@example.com"})
    response = await api.post("/api/auth/password/reset/", json={"email": user.email})
    assert response.status_code == unknown.status_code == 202
    token = (await mailer.wait_for(user.email, "password_reset")).context["token"]
    weak = await api.post(
        "/api/auth/password/reset/confirm/", json={"token": token, "new_password": "123456"}
    )
    assert weak.status_code == 400
    # A refused attempt does not spend the code.
    done = await api.post(
        "/api/auth/password/reset/confirm/",
        json={"token": token, "new_password": "a brand new secret"},
    )
    assert done.status_code == 200
    replay = await api.post(
        "/api/auth/password/reset/confirm/",
        json={"token": token, "new_password": "another new secret"},
    )
    assert replay.status_code == 400
    assert replay.json()["code"] == "invalid_code"
    old = await api.post("/api/auth/login/", json={"email": user.email, "password": user.password})
    assert old.status_code == 401
    new = await api.post(
        "/api/auth/login/", json={"email": user.email, "password": "a brand new secret"}
    )
    assert new.status_code == 200
    assert (await api.post("/api/auth/refresh/", json={"refresh": user.refresh})).status_code == 401


async def test_expired_reset_token_is_refused(api, make_user, mailer, deps):
    from datetime import timedelta

    from sqlalchemy import update

    from skillswap.auth.tokens import hash_opaque_token
    from skillswap.models import OneTimeToken

    user = await make_user()
    await api.post("/api/auth/password/reset/", json={"email": user.email})
    token = (await mailer.wait_for(user.email, "password_reset")).context["token"]
    async with deps.db.uow() as uow:
        await uow.session.execute(
            update(OneTimeToken)
            .where(OneTimeToken.token_hash == hash_opaque_token(token))
            .values(expires_at=deps.clock() - timedelta(seconds=1))
        )
        await uow.commit()
    response = await api.post(
        "/api/auth/password/reset/confirm/",
        json={"token": token, "new_password": "a brand new secret"},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_code"


async def test_password_change_needs_the_current_password(api, make_user):
    user = await make_user()
    wrong = await api.post(
        "/api/auth/password/change/",
        token=user.access,
        json={"current_password": "wrong one", "new_password": "a brand new secret"},
    )
    assert wrong.status_code == 400
    assert "current_password" in wrong.json()["errors"]
    ok = await api.post(
        "/api/auth/password/change/",
        token=user.access,
        json={"current_password": user.password, "new_password": "a brand new secret"},
    )
    assert ok.status_code == 200


async def test_malformed_json_and_oversized_bodies(api):
    bad = await api.post(
        "/api/auth/login/", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert bad.status_code == 400
    assert bad.json()["code"] == "malformed_json"
    huge = await api.post(
        "/api/auth/login/",
        content=b'{"a":"' + b"x" * 1_100_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert huge.status_code == 413


async def test_unknown_path_and_method_are_problem_json(api):
    missing = await api.get("/api/nothing-here/")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    wrong_method = await api.delete("/api/auth/login/")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["code"] == "method_not_allowed"


async def test_paths_work_with_and_without_trailing_slash(api):
    assert (await api.get("/healthz")).status_code == 200
    assert (await api.get("/healthz/")).status_code == 200
    assert (
        await api.post("/api/auth/login", json={"username": "x", "password": "y"})
    ).status_code == 401


async def test_repeated_failed_logins_lock_the_account_for_a_while(api, make_user, deps):
    user = await make_user()
    limit = deps.settings.login_max_failures
    for _ in range(limit):
        wrong = await api.post(
            "/api/auth/login/", json={"username": user.username, "password": "wrong guess!"}
        )
        assert wrong.status_code == 401
    locked = await api.post(
        "/api/auth/login/", json={"username": user.username, "password": user.password}
    )
    assert locked.status_code == 429
    assert locked.json()["code"] == "too_many_login_attempts"
    assert int(locked.headers["Retry-After"]) > 0
    # Other accounts are not affected.
    other = await make_user()
    assert (
        await api.post(
            "/api/auth/login/", json={"username": other.username, "password": other.password}
        )
    ).status_code == 200


async def test_a_successful_login_clears_earlier_failures(api, make_user, deps):
    user = await make_user()
    for _ in range(deps.settings.login_max_failures - 1):
        await api.post(
            "/api/auth/login/", json={"username": user.username, "password": "wrong guess!"}
        )
    assert (
        await api.post(
            "/api/auth/login/", json={"username": user.username, "password": user.password}
        )
    ).status_code == 200
    for _ in range(deps.settings.login_max_failures - 1):
        await api.post(
            "/api/auth/login/", json={"username": user.username, "password": "wrong guess!"}
        )
    assert (
        await api.post(
            "/api/auth/login/", json={"username": user.username, "password": user.password}
        )
    ).status_code == 200


async def test_password_reset_mails_are_capped_per_address(api, make_user, mailer, deps):
    user = await make_user()
    cap = deps.settings.password_reset_max_per_hour
    for _ in range(cap + 3):
        response = await api.post("/api/auth/password/reset/", json={"email": user.email})
        assert response.status_code == 202
    await outbox_settled(deps)  # every mail the requests caused has gone out
    sent = [m for m in mailer.outbox if m.to == user.email and m.kind == "password_reset"]
    assert len(sent) == cap


async def test_a_profile_change_is_seen_by_the_next_request_on_this_node(api, make_user):
    user = await make_user()
    assert (await api.get("/api/auth/profile/", token=user.access)).json()["locale"] == "en"
    await api.patch("/api/auth/profile/", token=user.access, json={"locale": "ar"})
    refused = await api.patch("/api/auth/profile/", token=user.access, json={"username": "x"})
    assert refused.json()["title"] == "مدخلات غير صالحة"


async def test_a_new_password_ends_every_access_token_issued_before_it(api, make_user):
    import asyncio

    user = await make_user()
    other_session = await api.post(
        "/api/auth/login/", json={"username": user.username, "password": user.password}
    )
    old_access = other_session.json()["access"]
    await asyncio.sleep(1.05)  # token times are whole seconds
    changed = await api.post(
        "/api/auth/password/change/",
        token=user.access,
        json={"current_password": user.password, "new_password": "a brand new secret"},
    )
    assert changed.status_code == 200
    assert (await api.get("/api/auth/profile/", token=old_access)).status_code == 401
    assert (await api.get("/api/auth/profile/", token=user.access)).status_code == 401
    fresh = await api.post(
        "/api/auth/login/", json={"username": user.username, "password": "a brand new secret"}
    )
    assert (await api.get("/api/auth/profile/", token=fresh.json()["access"])).status_code == 200
