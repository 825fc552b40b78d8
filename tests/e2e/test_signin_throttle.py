"""Failed sign-ins slow the guesser without locking the owner out, over real HTTP from several
client addresses (a node behind a proxy that names them), on the node's movable clock."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from skillswap.deps import Deps
from tests import factories
from tests.clock import MovableClock
from tests.conftest import Api, api_client, extra_server
from tests.factories import TestUser, unique_name

LOGIN = "/api/auth/login/"


def fresh_address() -> str:
    """An IPv4 address no other test (or run sharing the Redis) has been failing from."""
    return "10.{}.{}.{}".format(*secrets.token_bytes(3))


def fresh_network() -> str:
    """The first 64 bits of an IPv6 network of its own."""
    return "2001:db8:{:x}:{:x}".format(*(int.from_bytes(secrets.token_bytes(2)) for _ in "ab"))


@dataclass
class Node:
    api: Api
    deps: Deps
    clock: MovableClock
    guesser: str
    owner: str

    async def sign_in(self, user: str, password: str, *, address: str) -> httpx.Response:
        return await self.api.post(
            LOGIN, json={"username": user, "password": password}, headers={"X-Real-IP": address}
        )

    def later(self, seconds: float) -> None:
        """Let `seconds` pass on the node's clock."""
        self.clock.offset += timedelta(seconds=seconds)


@contextlib.asynccontextmanager
async def node(settings, **overrides: Any) -> AsyncIterator[Node]:  # type: ignore[no-untyped-def]
    clock = MovableClock()
    configured = settings.with_overrides(trust_proxy_headers=True, **overrides)
    async with (
        extra_server(configured, clock=clock) as (url, node_deps),
        api_client(url) as node_api,
    ):
        yield Node(node_api, node_deps, clock, fresh_address(), fresh_address())


def slowed(response: httpx.Response) -> int:
    """The Retry-After of a refused attempt (which must be one)."""
    assert response.status_code == 429, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "too_many_login_attempts"
    return int(response.headers["Retry-After"])


async def fail(node: Node, user: TestUser | str, *, address: str | None = None) -> None:
    name = user if isinstance(user, str) else user.username
    response = await node.sign_in(name, "wrong guess!", address=address or node.guesser)
    assert response.status_code == 401, response.text


async def test_a_guesser_waits_longer_and_longer_and_the_owner_gets_in_from_elsewhere(settings):
    async with node(
        settings, login_max_failures=3, login_delay_base_seconds=2, login_delay_max_seconds=60
    ) as app:
        owner = await factories.make_user(app.api, app.deps)
        for _ in range(3):  # free
            await fail(app, owner)
        waits = []
        for _ in range(4):
            waits.append(
                slowed(await app.sign_in(owner.username, "wrong guess!", address=app.guesser))
            )
            app.later(waits[-1])
            await fail(app, owner)  # its turn came: checked, and wrong again
        assert waits == [2, 4, 8, 16]
        # The right password from the guessing address waits its turn too (nothing is checked)...
        assert slowed(await app.sign_in(owner.email, owner.password, address=app.guesser)) == 32
        # ... while the owner, from an address that has not been failing, gets in at once.
        mine = await app.sign_in(owner.username, owner.password, address=app.owner)
        assert mine.status_code == 200, mine.text
        # From the guessing address too, once the delay has passed; that clears the pair.
        app.later(32)
        there = await app.sign_in(owner.username, owner.password, address=app.guesser)
        assert there.status_code == 200, there.text
        await fail(app, owner)


async def test_the_delay_is_capped_and_forgotten_after_the_window(settings):
    async with node(
        settings,
        login_max_failures=1,
        login_delay_base_seconds=10,
        login_delay_max_seconds=30,
        login_failure_window_seconds=600,
    ) as app:
        owner = await factories.make_user(app.api, app.deps)
        await fail(app, owner)
        for expected in (10, 20, 30, 30):
            assert (
                slowed(await app.sign_in(owner.username, "x" * 12, address=app.guesser)) == expected
            )
            app.later(expected)
            await fail(app, owner)
        app.later(600)  # the window passed since the last failure: a fresh start
        await fail(app, owner)
        assert slowed(await app.sign_in(owner.username, "x" * 12, address=app.guesser)) == 10


async def test_email_and_username_are_one_account_and_unknown_names_answer_alike(settings):
    async with node(settings, login_max_failures=2, login_delay_base_seconds=5) as app:
        owner = await factories.make_user(app.api, app.deps)
        await fail(app, owner.username)
        await fail(app, owner.email)
        assert slowed(await app.sign_in(owner.email.upper(), "nope nope", address=app.guesser)) == 5
        nobody = unique_name("nobody")
        await fail(app, nobody)
        await fail(app, nobody)
        assert slowed(await app.sign_in(nobody, "nope nope", address=app.guesser)) == 5


async def test_an_address_trying_many_usernames_is_slowed_as_a_whole(settings):
    async with node(
        settings, login_max_failures=10, login_max_failures_per_ip=5, login_delay_base_seconds=3
    ) as app:
        owner = await factories.make_user(app.api, app.deps)
        for _ in range(5):
            await fail(app, unique_name("victim"))
        # A sixth name, never tried: the address itself must wait.
        assert (
            slowed(await app.sign_in(unique_name("victim"), "nope nope", address=app.guesser)) == 3
        )
        assert slowed(await app.sign_in(owner.username, owner.password, address=app.guesser)) == 3
        # Elsewhere, nobody is affected: neither other guesses nor the owner.
        await fail(app, unique_name("victim"), address=app.owner)
        mine = await app.sign_in(owner.username, owner.password, address=app.owner)
        assert mine.status_code == 200, mine.text
        # An IPv6 guesser is one address for its whole /64.
        network, other = fresh_network(), fresh_network()
        for host in range(1, 6):
            await fail(app, unique_name("victim"), address=f"{network}::{host}")
        refused = await app.sign_in(unique_name("v"), "nope nope", address=f"{network}:5::99")
        assert slowed(refused) == 3
        elsewhere = await app.sign_in(unique_name("v"), "nope nope", address=f"{other}::1")
        assert elsewhere.status_code == 401


async def test_simultaneous_guesses_get_one_turn_between_them(settings):
    async with node(settings, login_max_failures=2, login_delay_base_seconds=5) as app:
        owner = await factories.make_user(app.api, app.deps)
        await fail(app, owner)
        await fail(app, owner)
        app.later(5)
        answers = await asyncio.gather(
            *(app.sign_in(owner.username, "wrong guess!", address=app.guesser) for _ in range(6))
        )
        assert sorted(a.status_code for a in answers) == [401] + [429] * 5


async def test_the_refusal_is_translated(settings):
    async with node(settings, login_max_failures=1, login_delay_base_seconds=90) as app:
        owner = await factories.make_user(app.api, app.deps)
        await fail(app, owner)
        english = await app.sign_in(owner.username, "wrong guess!", address=app.guesser)
        arabic = await app.api.post(
            LOGIN,
            json={"username": owner.username, "password": "wrong guess!"},
            headers={"X-Real-IP": app.guesser, "Accept-Language": "ar"},
        )
    assert slowed(english) == 90 and slowed(arabic) == 90
    assert "Try again in 2 minutes." in english.json()["detail"]
    assert "دقيقتين" in arabic.json()["detail"]
