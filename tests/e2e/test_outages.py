"""A store that cannot be reached: the requests that need it answer 503 with `Retry-After`,
the others go on, and readiness names what is down."""

from __future__ import annotations

from tests.conftest import api_client, extra_server, free_port
from tests.factories import make_user


async def test_with_redis_unreachable_sign_in_is_a_503_to_retry_and_readiness_says_so(
    settings, deps, api
):
    user = await make_user(api, deps)  # on the suite's app, with Redis
    # The same database, and a Redis address nothing listens on.
    gone = settings.with_overrides(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with extra_server(gone) as (url, _deps), api_client(url) as client:
        login = await client.post(
            "/api/auth/login/", json={"username": user.username, "password": user.password}
        )
        assert login.status_code == 503, login.text
        assert login.headers["Retry-After"] == "5"
        assert login.headers["Content-Type"] == "application/problem+json; charset=utf-8"
        body = login.json()
        assert (body["status"], body["code"]) == (503, "dependency_unavailable")
        assert body["request_id"] == login.headers["X-Request-ID"]
        # What needs only PostgreSQL still works.
        profile = await client.get(f"/api/users/{user.id}/")
        assert profile.status_code == 200, profile.text
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["down"] == ["redis"]
        assert (await client.get("/healthz")).status_code == 200
