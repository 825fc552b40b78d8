"""Google sign-in over real HTTP, end to end, against a local OpenID provider.

Two SkillSwap nodes run with Google sign-in configured against the fake provider, sharing the
test database. A "browser" (an HTTP client that follows redirects by hand) goes start ->
the provider's /authorize -> the callback, exactly as a person's browser would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
import tornado.httpserver
import tornado.testing
from sqlalchemy import select, update

from skillswap import events
from skillswap.accounts.oidc import OpenIDProvider, ProviderUnavailable
from skillswap.app import make_app, make_server
from skillswap.auth.tokens import hash_opaque_token
from skillswap.bootstrap import bootstrap
from skillswap.deps import Deps
from skillswap.models import OAuthState, User
from skillswap.settings import Settings
from tests.conftest import EVENT_LOG, extra_server
from tests.fakes.oidc_provider import FakeOIDCProvider, s256
from tests.tls import client_ssl_context

CALLBACK = "/api/auth/oauth/google/callback/"


@dataclass
class Node:
    url: str
    deps: Deps


@pytest.fixture(scope="module")
async def provider() -> AsyncIterator[FakeOIDCProvider]:
    fake = FakeOIDCProvider()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture(autouse=True)
def well_behaved_provider(provider: FakeOIDCProvider) -> FakeOIDCProvider:
    """Every test starts with a provider that behaves and a Google account nobody has used."""
    provider.reset()
    return provider


@pytest.fixture(scope="module")
async def nodes(settings: Settings, provider: FakeOIDCProvider) -> AsyncIterator[list[Node]]:
    """Two nodes of one deployment, Google sign-in configured, sharing the database."""
    google = settings.with_overrides(
        google_client_id=provider.client_id,
        google_client_secret=provider.client_secret,
        google_discovery_url=provider.discovery_url,
    )
    running: list[tuple[Node, tornado.httpserver.HTTPServer]] = []
    for _ in range(2):
        deps = await bootstrap(
            google,
            http=httpx.AsyncClient(verify=client_ssl_context(), timeout=10),
            event_handlers=EVENT_LOG.handlers(),
        )
        server = make_server(make_app(google, deps), google)
        sock, port = tornado.testing.bind_unused_port()
        server.add_sockets([sock])
        running.append((Node(f"http://127.0.0.1:{port}", deps), server))
    yield [node for node, _server in running]
    for node, server in running:
        server.stop()
        await server.close_all_connections()
        await node.deps.close()


@pytest.fixture
async def node(nodes: list[Node]) -> Node:
    return nodes[0]


class Browser:
    """Follows the sign-in redirects one at a time, so a test can stop or tamper between them."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def start(self, node: Node) -> str:
        """GET the start endpoint; returns the provider URL it redirects to."""
        response = await self.client.get(f"{node.url}/api/auth/oauth/google/")
        assert response.status_code == 302, response.text
        return response.headers["location"]

    async def consent(self, authorization_url: str) -> str:
        """Visit the provider's /authorize; returns the callback URL it sends the browser to."""
        response = await self.client.get(authorization_url)
        assert response.status_code == 302, response.text
        return response.headers["location"]

    async def callback(self, callback_url: str, **headers: str) -> httpx.Response:
        return await self.client.get(callback_url, headers=headers)

    async def sign_in(self, node: Node) -> httpx.Response:
        """The whole flow; returns the callback's response."""
        return await self.callback(await self.consent(await self.start(node)))


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with httpx.AsyncClient(
        verify=client_ssl_context(), follow_redirects=False, timeout=30
    ) as client:
        yield Browser(client)


@pytest.fixture
def registered_events() -> Callable[[], list[int]]:
    """User ids announced by UserRegistered since the test began (the ledger's signup bonus
    hangs off this event), as the harness's event log saw them on every test app."""
    start = len(EVENT_LOG.events)

    def since_start() -> list[int]:
        return [
            event.user_id
            for event in EVENT_LOG.events[start:]
            if isinstance(event, events.UserRegistered)
        ]

    return since_start


def query_of(url: str) -> dict[str, str]:
    return {name: values[-1] for name, values in parse_qs(urlsplit(url).query).items()}


def with_query(url: str, **changes: str) -> str:
    """`url` with some query parameters replaced."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=urlencode({**query_of(url), **changes})))


def is_arabic(text: str) -> bool:
    return any("\u0600" <= char <= "\u06ff" for char in text)


def on_node(url: str, node: Node) -> str:
    """The same path and query, on another node."""
    parts, target = urlsplit(url), urlsplit(node.url)
    return urlunsplit((target.scheme, target.netloc, parts.path, parts.query, ""))


async def load_user(node: Node, user_id: int) -> User:
    async with node.deps.db.read() as session:
        user = await session.get(User, user_id)
    assert user is not None
    return user


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


# -- the happy paths ---------------------------------------------------------------------------


async def test_a_new_google_user_gets_an_account_and_working_tokens(
    node, browser, provider, registered_events
):
    who = provider.set_identity(name="Layla Haddad", locale="ar-EG")
    authorization_url = await browser.start(node)

    sent = query_of(authorization_url)
    assert authorization_url.startswith(f"{provider.issuer}/authorize?")
    assert sent["response_type"] == "code"
    assert sent["client_id"] == provider.client_id
    assert set(sent["scope"].split()) == {"openid", "email", "profile"}
    assert sent["code_challenge_method"] == "S256"
    assert sent["redirect_uri"] == f"{node.url}{CALLBACK}"
    assert sent["state"] and sent["nonce"] and sent["code_challenge"]

    response = await browser.callback(await browser.consent(authorization_url))
    assert response.status_code == 200, response.text
    body = response.json()
    user = body["user"]
    assert user["email"] == who.email
    assert user["username"] == who.email.split("@")[0]
    assert user["display_name"] == "Layla Haddad"
    assert user["locale"] == "ar"
    assert user["verified"] is True
    assert user["has_password"] is False
    assert registered_events() == [user["id"]]

    # The token request proved possession of the PKCE verifier behind the challenge.
    [token_request] = provider.token_requests
    assert s256(token_request["code_verifier"]) == sent["code_challenge"]
    assert token_request["redirect_uri"] == sent["redirect_uri"]

    profile = await browser.client.get(
        f"{node.url}/api/auth/profile/", headers={"Authorization": f"Bearer {body['access']}"}
    )
    assert profile.status_code == 200
    assert profile.json()["id"] == user["id"]
    refreshed = await browser.client.post(
        f"{node.url}/api/auth/refresh/", json={"refresh": body["refresh"]}
    )
    assert refreshed.status_code == 200
    assert (await load_user(node, user["id"])).google_sub == who.sub


async def test_a_linked_user_signs_in_again_by_sub_even_after_changing_email(
    node, browser, provider, registered_events
):
    first = await browser.sign_in(node)
    assert first.status_code == 200, first.text
    provider.set_identity(email=f"renamed-{provider.identity.email}")

    again = await browser.sign_in(node)
    assert again.status_code == 200, again.text
    assert again.json()["user"]["id"] == first.json()["user"]["id"]
    assert again.json()["access"] != first.json()["access"]
    assert registered_events() == [first.json()["user"]["id"]]  # created once, not twice


async def test_an_existing_account_is_linked_by_a_verified_email(
    node, browser, provider, make_user, mailer, api, registered_events
):
    person = await make_user(verified=False)
    token = (await mailer.wait_for(person.email, "verify_email")).context["token"]
    assert (await api.post("/api/auth/verify-email/", json={"token": token})).status_code == 200
    who = provider.set_identity(email=person.email.upper())

    response = await browser.sign_in(node)
    assert response.status_code == 200, response.text
    assert response.json()["user"]["id"] == person.id
    assert response.json()["user"]["has_password"] is True
    assert registered_events() == [person.id]  # its password sign-up; the link adds none
    assert (await load_user(node, person.id)).google_sub == who.sub
    # The account keeps its password: its owner had proved the address was theirs.
    login = await api.post(
        "/api/auth/login/", json={"email": person.email, "password": person.password}
    )
    assert login.status_code == 200


async def test_linking_an_unproven_account_ends_its_password_and_sessions(
    node, browser, provider, make_user, api
):
    """Someone registered the address first without proving it: the owner, arriving through
    Google, takes the account over and the squatter's password and sessions stop working."""
    squatter = await make_user(verified=False)
    provider.set_identity(email=squatter.email)

    response = await browser.sign_in(node)
    assert response.status_code == 200, response.text
    assert response.json()["user"]["id"] == squatter.id
    assert response.json()["user"]["has_password"] is False
    assert response.json()["user"]["verified"] is True
    login = await api.post(
        "/api/auth/login/", json={"email": squatter.email, "password": squatter.password}
    )
    assert_problem(login, 401, "invalid_credentials")
    refresh = await api.post("/api/auth/refresh/", json={"refresh": squatter.refresh})
    assert refresh.status_code == 401


async def test_a_flow_started_on_one_node_finishes_on_another(nodes, browser, provider):
    first, second = nodes
    callback_url = await browser.consent(await browser.start(first))
    response = await browser.callback(on_node(callback_url, second))
    assert response.status_code == 200, response.text
    # The token request repeated the redirect URI of the authorization, not the second node's.
    assert provider.token_requests[-1]["redirect_uri"] == f"{first.url}{CALLBACK}"


async def test_apps_get_the_authorization_url_as_json(node, browser, provider):
    response = await browser.client.get(
        f"{node.url}/api/auth/oauth/google/", headers={"Accept": "application/json"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["authorization_url"].startswith(f"{provider.issuer}/authorize?")
    assert query_of(body["authorization_url"])["state"] == body["state"]

    finished = await browser.callback(await browser.consent(body["authorization_url"]))
    assert finished.status_code == 200, finished.text


async def test_users_sharing_an_email_name_get_distinct_usernames(node, browser, provider):
    local = f"same{provider.identity.sub[-6:]}"
    provider.set_identity(email=f"{local}@one.test")
    first = await browser.sign_in(node)
    provider.reset()
    provider.set_identity(email=f"{local}@two.test")
    second = await browser.sign_in(node)
    assert first.status_code == second.status_code == 200
    assert first.json()["user"]["username"] == local
    assert second.json()["user"]["username"].startswith(local + "_")


async def test_discovery_and_keys_are_fetched_once_and_refetched_when_the_key_rotates(
    node, browser, provider
):
    assert (await browser.sign_in(node)).status_code == 200  # caches are warm from here on
    provider.reset()
    assert (await browser.sign_in(node)).status_code == 200
    assert provider.discovery_fetches == 0
    assert provider.jwks_fetches == 0

    provider.rotate_key()
    provider.reset()
    response = await browser.sign_in(node)
    assert response.status_code == 200, response.text
    assert provider.jwks_fetches == 1  # the unknown kid made it look again, once


# -- refused --------------------------------------------------------------------------------------


async def test_an_unverified_email_does_not_link_to_an_existing_account(
    node, browser, provider, make_user
):
    person = await make_user()
    provider.set_identity(email=person.email, email_verified=False)

    response = await browser.sign_in(node)
    assert_problem(response, 400, "oauth_email_unverified")
    assert (await load_user(node, person.id)).google_sub is None


async def test_an_unverified_email_does_not_create_an_account(node, browser, provider):
    who = provider.set_identity(email_verified=False)
    response = await browser.sign_in(node)
    assert_problem(response, 400, "oauth_email_unverified")
    async with node.deps.db.read() as session:
        assert await session.scalar(select(User).where(User.google_sub == who.sub)) is None


async def test_an_email_linked_to_another_google_account_is_a_conflict(node, browser, provider):
    first = await browser.sign_in(node)
    assert first.status_code == 200
    email = provider.identity.email
    provider.reset()
    provider.set_identity(email=email)  # same address, another Google account (another sub)
    response = await browser.sign_in(node)
    assert_problem(response, 409, "oauth_account_conflict")


@pytest.mark.parametrize(
    ("misbehaviour", "reason"),
    [
        ({"forge_signature": True}, "signature"),
        ({"claim_overrides": {"exp": 1_600_000_000, "iat": 1_599_996_400}}, "expired"),
        ({"claim_overrides": {"aud": "someone-elses-client"}}, "audience"),
        ({"claim_overrides": {"nonce": "not-the-nonce-we-sent"}}, "nonce"),
        ({"claim_overrides": {"nonce": None}}, "nonce"),
        ({"claim_overrides": {"iss": "https://evil.example"}}, "issuer"),
        ({"claim_overrides": {"iat": 4_000_000_000, "exp": 4_000_003_600}}, "not_yet_valid"),
        ({"token_algorithm": "none"}, "algorithm"),
        ({"token_algorithm": "HS256"}, "algorithm"),
        ({"unpublished_kid": True}, "unknown_key"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
async def test_an_id_token_that_fails_a_check_is_refused(
    node, browser, provider, misbehaviour, reason, registered_events
):
    for name, value in misbehaviour.items():
        setattr(provider, name, value)
    response = await browser.sign_in(node)
    body = assert_problem(response, 400, "oauth_invalid_id_token")
    assert body["reason"] == reason
    assert registered_events() == []
    async with node.deps.db.read() as session:
        linked = await session.scalar(select(User).where(User.google_sub == provider.identity.sub))
    assert linked is None


async def test_an_unknown_kid_refetches_the_keys_only_once(node, browser, provider):
    assert (await browser.sign_in(node)).status_code == 200
    provider.reset()
    provider.unpublished_kid = True
    response = await browser.sign_in(node)
    assert assert_problem(response, 400, "oauth_invalid_id_token")["reason"] == "unknown_key"
    assert provider.jwks_fetches == 1


async def test_a_replayed_callback_is_refused(node, browser):
    callback_url = await browser.consent(await browser.start(node))
    assert (await browser.callback(callback_url)).status_code == 200
    replay = await browser.callback(callback_url)
    assert_problem(replay, 400, "oauth_state_used")


async def test_two_racing_callbacks_with_one_state_sign_in_once(nodes, browser, provider):
    callback_url = await browser.consent(await browser.start(nodes[0]))
    responses = await asyncio.gather(
        browser.callback(callback_url), browser.callback(on_node(callback_url, nodes[1]))
    )
    assert sorted(r.status_code for r in responses) == [200, 400]
    [refused] = [r for r in responses if r.status_code == 400]
    assert refused.json()["code"] == "oauth_state_used"
    assert len(provider.token_requests) == 1  # the loser never reached the provider


async def test_an_unknown_state_is_refused(node, browser, provider):
    callback_url = await browser.consent(await browser.start(node))
    response = await browser.callback(with_query(callback_url, state="made-up-by-an-attacker"))
    assert_problem(response, 400, "oauth_state_invalid")
    assert provider.token_requests == []
    missing = await browser.client.get(f"{node.url}{CALLBACK}?code=abc")
    assert_problem(missing, 400, "oauth_state_invalid")


async def test_an_expired_state_is_refused(node, browser, provider):
    callback_url = await browser.consent(await browser.start(node))
    state = query_of(callback_url)["state"]
    async with node.deps.db.uow() as uow:
        await uow.session.execute(
            update(OAuthState)
            .where(OAuthState.state_hash == hash_opaque_token(state))
            .values(expires_at=node.deps.clock() - timedelta(seconds=1))
        )
        await uow.commit()
    response = await browser.callback(callback_url)
    assert_problem(response, 400, "oauth_state_expired")
    assert provider.token_requests == []


async def test_the_state_is_stored_hashed(node, browser):
    state = query_of(await browser.start(node))["state"]
    async with node.deps.db.read() as session:
        assert await session.get(OAuthState, state) is None
        assert await session.get(OAuthState, hash_opaque_token(state)) is not None


async def test_a_refusal_at_the_provider_is_a_clear_problem(node, browser, provider):
    provider.deny_consent = True
    callback_url = await browser.consent(await browser.start(node))
    assert query_of(callback_url)["error"] == "access_denied"
    response = await browser.callback(callback_url, **{"Accept-Language": "ar"})
    body = assert_problem(response, 400, "oauth_access_denied")
    assert is_arabic(body["detail"])
    # The state was spent with the refusal: it cannot carry a code later.
    state = query_of(callback_url)["state"]
    later = await browser.client.get(f"{node.url}{CALLBACK}?state={state}&code=x")
    assert_problem(later, 400, "oauth_state_used")


async def test_a_code_the_provider_refuses_is_a_clear_problem(node, browser, provider):
    provider.token_error = "invalid_grant"
    response = await browser.sign_in(node)
    assert_problem(response, 400, "oauth_code_rejected")


async def test_a_callback_from_another_issuer_is_refused(node, browser, provider):
    callback_url = await browser.consent(await browser.start(node))
    response = await browser.callback(with_query(callback_url, iss="https://evil.example"))
    assert_problem(response, 400, "oauth_issuer_mismatch")
    assert provider.token_requests == []


async def test_an_inactive_user_is_refused(node, browser, provider):
    first = await browser.sign_in(node)
    user_id = first.json()["user"]["id"]
    async with node.deps.db.uow() as uow:
        await uow.session.execute(update(User).where(User.id == user_id).values(is_active=False))
        await uow.commit()
    response = await browser.sign_in(node)
    assert_problem(response, 403, "account_inactive")


async def test_an_unreachable_provider_is_a_503(settings):
    broken = settings.with_overrides(
        google_client_id="id",
        google_discovery_url="https://127.0.0.1:1/.well-known/openid-configuration",
    )
    async with extra_server(broken) as (url, _deps), httpx.AsyncClient() as client:
        response = await client.get(f"{url}/api/auth/oauth/google/")
    assert_problem(response, 503, "oauth_provider_unavailable")


async def test_without_a_client_id_google_sign_in_is_not_configured(api):
    for path in ("/api/auth/oauth/google/", f"{CALLBACK}?code=x&state=y"):
        response = await api.get(path)
        assert_problem(response, 503, "oauth_not_configured")
    arabic = await api.get("/api/auth/oauth/google", headers={"Accept-Language": "ar"})
    assert is_arabic(arabic.json()["detail"])


# -- the provider client: caching and key rotation -----------------------------------------------


async def test_concurrent_misses_of_a_new_kid_share_one_refetch(provider):
    async with httpx.AsyncClient(verify=client_ssl_context()) as http:
        oidc = OpenIDProvider(http, provider.discovery_url)
        assert await oidc.signing_key(provider.signing_key.kid) is not None
        assert provider.jwks_fetches == 1
        new_kid = provider.rotate_key()
        found = await asyncio.gather(*(oidc.signing_key(new_kid) for _ in range(5)))
        assert {key.key_id for key in found if key is not None} == {new_kid}
        assert len([key for key in found if key is not None]) == 5
        assert provider.jwks_fetches == 2


async def test_a_stale_copy_is_used_while_the_provider_is_down():
    down_soon = FakeOIDCProvider()
    await down_soon.start()
    now = [0.0]
    async with httpx.AsyncClient(verify=client_ssl_context()) as http:
        oidc = OpenIDProvider(http, down_soon.discovery_url, monotonic=lambda: now[0])
        metadata = await oidc.metadata()
        key = await oidc.signing_key(down_soon.signing_key.kid)
        await down_soon.stop()
        now[0] += 7 * 3600  # past the lifetime of both documents

        assert await oidc.metadata() == metadata
        assert await oidc.signing_key(down_soon.signing_key.kid) is key
        never_fetched = OpenIDProvider(http, down_soon.discovery_url)
        with pytest.raises(ProviderUnavailable):
            await never_fetched.metadata()
