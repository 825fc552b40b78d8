"""Native Google sign-in (`POST /api/auth/oauth/google/token/`) and the web flow's hand-off page,
end to end against the local OpenID provider.

A native app gets an ID token from Google's SDK, issued to its Android or iOS client (or to the
web client, as Android's "server client id"), and trades it for a SkillSwap session.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from skillswap.app import make_app, make_server
from skillswap.bootstrap import bootstrap
from skillswap.deps import Deps
from skillswap.models import User
from skillswap.settings import Settings
from tests.fakes.oidc_provider import FakeOIDCProvider
from tests.tls import client_ssl_context

TOKEN_PATH = "/api/auth/oauth/google/token/"
ANDROID = "skillswap-android.apps.googleusercontent.test"
IOS = "skillswap-ios.apps.googleusercontent.test"
HANDOFF_PAGE = "https://app.skillswap.test/signed-in"


@pytest.fixture(scope="module")
async def provider() -> AsyncIterator[FakeOIDCProvider]:
    fake = FakeOIDCProvider()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture(autouse=True)
def well_behaved_provider(provider: FakeOIDCProvider) -> FakeOIDCProvider:
    provider.reset()
    return provider


async def _start_node(settings: Settings) -> tuple[str, Deps, Any]:
    import tornado.testing

    deps = await bootstrap(
        settings, http=httpx.AsyncClient(verify=client_ssl_context(), timeout=10)
    )
    server = make_server(make_app(settings, deps), settings)
    sock, port = tornado.testing.bind_unused_port()
    server.add_sockets([sock])
    return f"http://127.0.0.1:{port}", deps, server


@pytest.fixture(scope="module")
async def google_settings(settings: Settings, provider: FakeOIDCProvider) -> Settings:
    return settings.with_overrides(
        google_client_id=provider.client_id,  # the web client
        google_client_secret=provider.client_secret,
        google_client_ids=(ANDROID, IOS),
        google_discovery_url=provider.discovery_url,
    )


@pytest.fixture(scope="module")
async def node(google_settings: Settings) -> AsyncIterator[str]:
    url, deps, server = await _start_node(google_settings)
    yield url
    server.stop()
    await server.close_all_connections()
    await deps.close()


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        verify=client_ssl_context(), follow_redirects=False, timeout=30
    ) as http:
        yield http


def issued_to(provider: FakeOIDCProvider, client_id: str) -> None:
    """The next SDK token is issued to `client_id`, as Google does for that app's client."""
    provider.claim_overrides.update({"aud": client_id, "azp": client_id})


async def sign_in(client: httpx.AsyncClient, node: str, **body: Any) -> httpx.Response:
    return await client.post(node + TOKEN_PATH, json=body)


def assert_refused(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "oauth_invalid_id_token"
    assert body["reason"] == reason


async def test_an_android_sdk_token_creates_an_account_and_answers_like_login(
    node, client, provider, deps
):
    issued_to(provider, ANDROID)
    who = provider.set_identity(name="Omar Said")
    response = await sign_in(client, node, id_token=provider.sdk_id_token())
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "user",
        "access",
        "refresh",
        "token_type",
        "expires_in",
        "refresh_expires_in",
    }
    assert body["user"]["email"] == who.email
    assert body["user"]["display_name"] == "Omar Said"
    assert body["user"]["has_password"] is False
    assert body["expires_in"] == deps.settings.access_token_ttl_seconds
    assert body["refresh_expires_in"] == deps.settings.refresh_token_ttl_seconds
    profile = await client.get(
        node + "/api/auth/profile/", headers={"Authorization": f"Bearer {body['access']}"}
    )
    assert profile.status_code == 200
    assert profile.json()["id"] == body["user"]["id"]
    async with deps.db.read() as session:
        user = await session.scalar(select(User).where(User.google_sub == who.sub))
    assert user is not None and user.id == body["user"]["id"]


async def test_every_configured_client_signs_in_the_same_person(node, client, provider):
    ids = []
    for audience in (ANDROID, IOS, provider.client_id):
        issued_to(provider, audience)
        response = await sign_in(client, node, id_token=provider.sdk_id_token())
        assert response.status_code == 200, (audience, response.text)
        ids.append(response.json()["user"]["id"])
    assert len(set(ids)) == 1


async def test_a_password_account_is_linked_by_its_verified_email_as_on_the_web(
    node, client, provider, api, make_user
):
    user = await make_user()
    issued_to(provider, IOS)
    provider.set_identity(email=user.email, email_verified=True)
    response = await sign_in(client, node, id_token=provider.sdk_id_token())
    assert response.status_code == 200, response.text
    assert response.json()["user"]["id"] == user.id
    assert response.json()["user"]["verified"] is True


async def test_a_token_issued_to_another_client_is_refused(node, client, provider, deps):
    issued_to(provider, "someone-elses-app.apps.googleusercontent.test")
    response = await sign_in(client, node, id_token=provider.sdk_id_token())
    assert_refused(response, "audience")
    async with deps.db.read() as session:
        nobody = await session.scalar(select(User).where(User.google_sub == provider.identity.sub))
    assert nobody is None


async def test_several_audiences_need_an_authorized_party_of_ours(node, client, provider):
    provider.claim_overrides.update({"aud": [ANDROID, "other-client"], "azp": "other-client"})
    assert_refused(await sign_in(client, node, id_token=provider.sdk_id_token()), "audience")
    provider.claim_overrides.update({"azp": ANDROID})
    assert (await sign_in(client, node, id_token=provider.sdk_id_token())).status_code == 200


async def test_an_expired_token_is_refused(node, client, provider):
    issued_to(provider, ANDROID)
    now = int(time.time())
    provider.claim_overrides.update({"iat": now - 7200, "exp": now - 3600})
    assert_refused(await sign_in(client, node, id_token=provider.sdk_id_token()), "expired")


async def test_a_token_with_a_bad_signature_is_refused(node, client, provider):
    issued_to(provider, ANDROID)
    provider.forge_signature = True
    assert_refused(await sign_in(client, node, id_token=provider.sdk_id_token()), "signature")


async def test_a_token_from_another_issuer_is_refused(node, client, provider):
    issued_to(provider, ANDROID)
    provider.claim_overrides["iss"] = "https://accounts.evil.test"
    assert_refused(await sign_in(client, node, id_token=provider.sdk_id_token()), "issuer")


async def test_a_none_algorithm_token_is_refused(node, client, provider):
    issued_to(provider, ANDROID)
    provider.token_algorithm = "none"
    assert_refused(await sign_in(client, node, id_token=provider.sdk_id_token()), "algorithm")


async def test_a_nonce_the_app_sent_must_be_the_one_in_the_token(node, client, provider):
    issued_to(provider, IOS)
    token = provider.sdk_id_token(nonce="n-0123456789abcdef")
    assert_refused(await sign_in(client, node, id_token=token, nonce="another-nonce"), "nonce")
    bare = provider.sdk_id_token()
    assert_refused(await sign_in(client, node, id_token=bare, nonce="n-0123456789abcdef"), "nonce")
    ok = await sign_in(client, node, id_token=token, nonce="n-0123456789abcdef")
    assert ok.status_code == 200, ok.text


async def test_an_unverified_email_creates_no_account(node, client, provider):
    issued_to(provider, ANDROID)
    provider.set_identity(email_verified=False)
    response = await sign_in(client, node, id_token=provider.sdk_id_token())
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "oauth_email_unverified"


async def test_the_body_is_validated(node, client, provider):
    missing = await client.post(node + TOKEN_PATH, json={})
    assert missing.status_code == 400
    assert missing.json()["code"] == "validation_error"
    assert list(missing.json()["errors"]) == ["id_token"]
    extra = await sign_in(client, node, id_token="x", code="y")
    assert extra.status_code == 400
    assert list(extra.json()["errors"]) == ["code"]
    garbage = await sign_in(client, node, id_token="not-a-jwt")
    assert_refused(garbage, "malformed")


async def test_google_client_id_alone_still_configures_native_sign_in(settings, client, provider):
    only_web = settings.with_overrides(
        google_client_id=provider.client_id, google_discovery_url=provider.discovery_url
    )
    url, deps, server = await _start_node(only_web)
    try:
        issued_to(provider, provider.client_id)
        assert (await sign_in(client, url, id_token=provider.sdk_id_token())).status_code == 200
        provider.reset()
        issued_to(provider, ANDROID)
        assert_refused(await sign_in(client, url, id_token=provider.sdk_id_token()), "audience")
    finally:
        server.stop()
        await deps.close()


async def test_without_any_client_id_native_sign_in_is_not_configured(api):
    response = await api.post(TOKEN_PATH, json={"id_token": "x"})
    assert response.status_code == 503
    assert response.json()["code"] == "oauth_not_configured"


# -- the web flow's hand-off page ---------------------------------------------------------------


@pytest.fixture(scope="module")
async def handoff_node(google_settings: Settings) -> AsyncIterator[str]:
    url, deps, server = await _start_node(
        google_settings.with_overrides(oauth_web_redirect_url=HANDOFF_PAGE)
    )
    yield url
    server.stop()
    await server.close_all_connections()
    await deps.close()


def fragment_of(location: str) -> dict[str, str]:
    assert location.startswith(HANDOFF_PAGE + "#"), location
    return {name: values[-1] for name, values in parse_qs(urlsplit(location).fragment).items()}


async def test_the_web_flow_hands_the_session_to_the_web_app_in_the_fragment(
    handoff_node, client, provider
):
    start = await client.get(handoff_node + "/api/auth/oauth/google/")
    consent = await client.get(start.headers["location"])
    callback = await client.get(consent.headers["location"])
    assert callback.status_code == 302, callback.text
    outcome = fragment_of(callback.headers["location"])
    assert set(outcome) == {
        "access",
        "refresh",
        "token_type",
        "expires_in",
        "refresh_expires_in",
        "user_id",
    }
    profile = await client.get(
        handoff_node + "/api/auth/profile/",
        headers={"Authorization": f"Bearer {outcome['access']}"},
    )
    assert profile.status_code == 200
    assert str(profile.json()["id"]) == outcome["user_id"]
    # A replayed callback hands over the refusal's code, not a JSON page.
    replay = await client.get(consent.headers["location"])
    assert replay.status_code == 302
    assert fragment_of(replay.headers["location"]) == {"error": "oauth_state_used"}


async def test_taking_over_an_unproven_account_ends_the_squatters_access_tokens_at_once(
    node, client, provider, make_user
):
    squatter = await make_user(verified=False)  # registered the address, never proved it
    issued_to(provider, ANDROID)
    provider.set_identity(email=squatter.email, email_verified=True)
    owner = await sign_in(client, node, id_token=provider.sdk_id_token())
    assert owner.status_code == 200, owner.text
    assert owner.json()["user"]["id"] == squatter.id

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    stale = await client.get(node + "/api/auth/profile/", headers=bearer(squatter.access))
    assert stale.status_code == 401
    assert stale.json()["code"] == "invalid_token"
    fresh = await client.get(node + "/api/auth/profile/", headers=bearer(owner.json()["access"]))
    assert fresh.status_code == 200
