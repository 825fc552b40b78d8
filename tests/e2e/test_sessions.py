"""Sessions as mobile apps use them: parallel refreshes, replayed refresh tokens, sign-out of the
current session, and the lifetimes every sign-in answer states.

The refresh tests run on the suite's backends (PostgreSQL and Redis when they answer) and on an
embedded node of their own (SQLite, in-memory denylist), since each has its own way of making
two concurrent refreshes of one token wait for each other.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from skillswap.auth.tokens import AccessClaims
from skillswap.models import RefreshToken
from skillswap.settings import Settings
from tests.conftest import extra_server
from tests.factories import unique_name

PASSWORD = "correct horse battery"


@dataclass
class Node:
    client: httpx.AsyncClient
    settings: Settings

    async def sign_up(self) -> dict[str, Any]:
        name = unique_name()
        response = await self.client.post(
            "/api/auth/register/",
            json={"email": f"{name}@example.com", "username": name, "password": PASSWORD},
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def log_in(self, user: dict[str, Any]) -> dict[str, Any]:
        response = await self.client.post(
            "/api/auth/login/", json={"username": user["user"]["username"], "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def refresh(self, refresh: str) -> httpx.Response:
        return await self.client.post("/api/auth/refresh/", json={"refresh": refresh})

    async def profile(self, access: str) -> httpx.Response:
        return await self.client.get(
            "/api/auth/profile/", headers={"Authorization": f"Bearer {access}"}
        )

    async def logout(self, access: str, **body: str) -> httpx.Response:
        return await self.client.post(
            "/api/auth/logout/", headers={"Authorization": f"Bearer {access}"}, json=body
        )


@asynccontextmanager
async def running_node(settings: Settings) -> AsyncIterator[Node]:
    async with (
        extra_server(settings) as (url, _deps),
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield Node(client, settings)


@pytest.fixture(scope="module")
async def embedded_url(settings: Settings) -> str:
    """A migrated SQLite file of this module's own: the embedded default's database."""
    from skillswap.migrate import upgrade_to_head

    path = Path(tempfile.mkdtemp(prefix="skillswap-sessions-")) / "embedded.sqlite3"
    url = f"sqlite:///{path}"
    await upgrade_to_head(settings.with_overrides(database_url=url, redis_url=""))
    return url


BACKEND_NAMES = ["suite", "embedded"]


@pytest.fixture
def node_on(settings: Settings, embedded_url: str) -> Callable[..., Any]:
    """`node_on(backend, **settings)`: a node on the suite's backends or on the embedded ones."""

    def factory(backend: str, **overrides: Any) -> Any:
        if backend == "embedded":
            overrides = {"database_url": embedded_url, "redis_url": "", **overrides}
        return running_node(settings.with_overrides(**overrides))

    return factory


def pair(response: httpx.Response) -> tuple[str, str]:
    body = response.json()
    return body["access"], body["refresh"]


def assert_refused(response: httpx.Response, code: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


# -- parallel refreshes -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKEND_NAMES)
async def test_parallel_refreshes_of_one_token_all_get_the_same_new_pair(node_on, backend):
    async with node_on(backend) as node:
        user = await node.sign_up()
        answers = await asyncio.gather(*(node.refresh(user["refresh"]) for _ in range(8)))
        assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
        assert len({pair(a) for a in answers}) == 1
        access, refresh = pair(answers[0])
        assert refresh != user["refresh"]
        # Nobody was signed out: the new pair works, and rotates on.
        assert (await node.profile(access)).status_code == 200
        assert (await node.refresh(refresh)).status_code == 200


@pytest.mark.parametrize("backend", BACKEND_NAMES)
async def test_a_refresh_repeated_within_the_window_gets_the_same_pair(node_on, backend):
    async with node_on(backend) as node:
        user = await node.sign_up()
        first = await node.refresh(user["refresh"])
        again = await node.refresh(user["refresh"])
        assert first.status_code == again.status_code == 200
        assert pair(again) == pair(first)
        assert again.json()["refresh_expires_in"] <= first.json()["refresh_expires_in"]
        assert (await node.profile(pair(again)[0])).status_code == 200


@pytest.mark.parametrize("backend", BACKEND_NAMES)
async def test_a_replay_after_the_window_ends_the_session_and_its_access_tokens_at_once(
    node_on, backend
):
    async with node_on(backend, refresh_reuse_grace_seconds=1) as node:
        user = await node.sign_up()
        other_session = await node.log_in(user)
        rotated = await node.refresh(user["refresh"])
        assert rotated.status_code == 200
        access, refresh = pair(rotated)
        await asyncio.sleep(2.1)  # past the one-second window, whatever the second boundaries

        replay = await node.refresh(user["refresh"])
        assert_refused(replay, "token_reused")
        # Every token of that session is dead now, not in 15 minutes.
        assert_refused(await node.profile(access), "invalid_token")
        assert_refused(await node.profile(user["access"]), "invalid_token")
        assert_refused(await node.refresh(refresh), "invalid_token")
        # The user's other session (another device) is not that session.
        assert (await node.profile(other_session["access"])).status_code == 200
        assert (await node.refresh(other_session["refresh"])).status_code == 200


@pytest.mark.parametrize("backend", BACKEND_NAMES)
async def test_no_grace_window_when_it_is_zero(node_on, backend):
    async with node_on(backend, refresh_reuse_grace_seconds=0) as node:
        user = await node.sign_up()
        rotated = await node.refresh(user["refresh"])
        assert rotated.status_code == 200
        assert_refused(await node.refresh(user["refresh"]), "token_reused")
        assert_refused(await node.profile(pair(rotated)[0]), "invalid_token")


async def test_a_signed_out_session_is_not_revived_by_the_grace_window(node_on):
    async with node_on("suite") as node:
        user = await node.sign_up()
        rotated = await node.refresh(user["refresh"])
        assert (await node.logout(pair(rotated)[0])).status_code == 204
        assert_refused(await node.refresh(user["refresh"]), "invalid_token")
        assert_refused(await node.refresh(pair(rotated)[1]), "invalid_token")


# -- sign-out -------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKEND_NAMES)
async def test_logout_without_a_refresh_token_ends_the_session_of_the_access_token(
    node_on, backend
):
    async with node_on(backend) as node:
        user = await node.sign_up()
        phone = await node.log_in(user)
        rotated = await node.refresh(phone["refresh"])
        access, refresh = pair(rotated)

        assert (await node.logout(access)).status_code == 204
        assert_refused(await node.profile(access), "invalid_token")
        assert_refused(await node.profile(phone["access"]), "invalid_token")  # same session
        assert_refused(await node.refresh(refresh), "invalid_token")
        # The sign-up's session, on another device, goes on.
        assert (await node.profile(user["access"])).status_code == 200
        assert (await node.refresh(user["refresh"])).status_code == 200


async def test_logout_with_another_sessions_refresh_token_ends_both(node_on):
    async with node_on("suite") as node:
        user = await node.sign_up()
        other = await node.log_in(user)
        assert (await node.logout(user["access"], refresh=other["refresh"])).status_code == 204
        for access in (user["access"], other["access"]):
            assert_refused(await node.profile(access), "invalid_token")
        for refresh in (user["refresh"], other["refresh"]):
            assert_refused(await node.refresh(refresh), "invalid_token")


async def test_logout_cannot_end_someone_elses_session(node_on):
    async with node_on("suite") as node:
        mallory, victim = await node.sign_up(), await node.sign_up()
        assert (await node.logout(mallory["access"], refresh=victim["refresh"])).status_code == 204
        assert (await node.profile(victim["access"])).status_code == 200
        assert (await node.refresh(victim["refresh"])).status_code == 200


# -- lifetimes ------------------------------------------------------------------------------------


async def test_every_sign_in_answer_says_how_long_its_tokens_live(node_on):
    async with node_on("suite", access_token_ttl_seconds=600) as node:
        ttl, refresh_ttl = 600, node.settings.refresh_token_ttl_seconds
        registered = await node.sign_up()
        logged_in = await node.log_in(registered)
        refreshed = (await node.refresh(logged_in["refresh"])).json()
        for answer in (registered, logged_in, refreshed):
            assert answer["token_type"] == "Bearer"
            assert answer["expires_in"] == ttl
            assert answer["refresh_expires_in"] == refresh_ttl


async def test_an_expired_access_token_says_so(node_on):
    async with node_on("suite", access_token_ttl_seconds=1) as node:
        user = await node.sign_up()
        await asyncio.sleep(2.1)
        response = await node.profile(user["access"])
        assert_refused(response, "token_expired")
        assert response.headers["WWW-Authenticate"] == (
            'Bearer realm="skillswap", error="invalid_token", error_description="expired"'
        )
        # Refreshing is what the client should do, and it works.
        assert (await node.refresh(user["refresh"])).status_code == 200


async def test_no_token_names_no_error_and_a_bad_one_is_invalid_token(node_on):
    async with node_on("suite") as node:
        anonymous = await node.client.get("/api/auth/profile/")
        assert anonymous.status_code == 401
        assert anonymous.json()["code"] == "not_authenticated"
        assert anonymous.headers["WWW-Authenticate"] == 'Bearer realm="skillswap"'
        bad = await node.profile("not-a-token")
        assert_refused(bad, "invalid_token")
        assert bad.headers["WWW-Authenticate"] == 'Bearer realm="skillswap", error="invalid_token"'


# -- every session of a user ------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKEND_NAMES)
async def test_a_new_password_ends_access_tokens_issued_the_same_second(node_on, backend):
    """Sessions are ended by name, not only by issue time in whole seconds."""
    async with node_on(backend) as node:
        user = await node.sign_up()
        other = await node.log_in(user)
        changed = await node.client.post(
            "/api/auth/password/change/",
            headers={"Authorization": f"Bearer {user['access']}"},
            json={"current_password": PASSWORD, "new_password": "a brand new secret"},
        )
        assert changed.status_code == 200, changed.text
        for access in (user["access"], other["access"]):
            assert_refused(await node.profile(access), "invalid_token")
        for refresh in (user["refresh"], other["refresh"]):
            assert_refused(await node.refresh(refresh), "invalid_token")


@pytest.mark.parametrize("backend", BACKEND_NAMES)
async def test_an_ended_sign_in_stays_denied_as_long_as_a_dashboard_session_could_live(
    settings, embedded_url, backend
):
    """A new password ends every sign-in; the dashboard's cookie names its sign-in and lives up
    to ADMIN_SESSION_MAX_SECONDS, longer than an access token, so the denial must too."""
    overrides: dict[str, Any] = {"access_token_ttl_seconds": 1, "admin_session_max_seconds": 30}
    if backend == "embedded":
        overrides |= {"database_url": embedded_url, "redis_url": ""}
    async with (
        extra_server(settings.with_overrides(**overrides)) as (url, deps),
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        node = Node(client, deps.settings)
        user = await node.sign_up()
        async with deps.db.read() as session:
            family = await session.scalar(
                select(RefreshToken.family_id).where(RefreshToken.user_id == user["user"]["id"])
            )
        assert family
        signed_in_at = int(deps.clock().timestamp()) - 1
        changed = await client.post(
            "/api/auth/password/change/",
            headers={"Authorization": f"Bearer {user['access']}"},
            json={"current_password": PASSWORD, "new_password": "a brand new secret"},
        )
        assert changed.status_code == 200, changed.text
        await asyncio.sleep(2.5)  # past the access token's lifetime (and the denial's old one)
        by_session = AccessClaims(
            user_id=user["user"]["id"],
            jti="dashboard",
            expires_at=signed_in_at + 30,
            issued_at=signed_in_at + 1,
            session_id=family,
        )
        by_time = AccessClaims(
            user_id=user["user"]["id"],
            jti="dashboard",
            expires_at=signed_in_at + 30,
            issued_at=signed_in_at,
        )
        assert await deps.denylist.is_revoked(by_session)
        assert await deps.denylist.is_revoked(by_time)
