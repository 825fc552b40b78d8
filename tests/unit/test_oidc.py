"""The pure parts of Google sign-in: discovery checks, key sets, cache lifetimes, claims."""

from __future__ import annotations

import httpx
import pytest

from skillswap.accounts.google import (
    GoogleIdentity,
    redirect_uri_for,
    supported_locale,
    username_base,
)
from skillswap.accounts.oidc import (
    MAX_CACHE_SECONDS,
    MIN_CACHE_SECONDS,
    ProviderMetadata,
    cache_lifetime,
    signing_keys_from_jwks,
)
from skillswap.settings import Settings
from tests.fakes.oidc_provider import SigningKey

DISCOVERY = "https://accounts.google.com/.well-known/openid-configuration"
GOOGLE_DOCUMENT = {
    "issuer": "https://accounts.google.com",
    "authorization_endpoint": "https://accounts.google.com/o/oauth2/v2/auth",
    "token_endpoint": "https://oauth2.googleapis.com/token",
    "jwks_uri": "https://www.googleapis.com/oauth2/v3/certs",
    "id_token_signing_alg_values_supported": ["RS256"],
}


def test_googles_discovery_document_is_read_with_its_schemeless_issuer_alias():
    metadata = ProviderMetadata.from_document(GOOGLE_DOCUMENT, discovery_url=DISCOVERY)
    assert metadata.token_endpoint == "https://oauth2.googleapis.com/token"
    assert metadata.accepted_issuers == ("https://accounts.google.com", "accounts.google.com")


@pytest.mark.parametrize(
    "change",
    [
        {"issuer": "https://evil.example"},
        {"jwks_uri": None},
        {"token_endpoint": "ftp://oauth2.googleapis.com/token"},
        {"id_token_signing_alg_values_supported": ["HS256"]},
    ],
)
def test_a_discovery_document_that_cannot_be_trusted_is_refused(change):
    document = {**GOOGLE_DOCUMENT, **change}
    with pytest.raises(ValueError):
        ProviderMetadata.from_document(document, discovery_url=DISCOVERY)
    with pytest.raises(ValueError):
        ProviderMetadata.from_document(["not", "an", "object"], discovery_url=DISCOVERY)


def test_only_rsa_signature_keys_with_a_kid_are_kept_from_a_jwks():
    good = SigningKey.generate().jwk()
    document = {
        "keys": [
            good,
            {**SigningKey.generate().jwk(), "use": "enc"},
            {**SigningKey.generate().jwk(), "alg": "RS512"},
            {key: value for key, value in SigningKey.generate().jwk().items() if key != "kid"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            "garbage",
        ]
    }
    assert list(signing_keys_from_jwks(document)) == [good["kid"]]
    with pytest.raises(ValueError):
        signing_keys_from_jwks({"no": "keys"})


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("public, max-age=21600, must-revalidate", 21600),
        ("max-age=5", MIN_CACHE_SECONDS),
        ("max-age=99999999", MAX_CACHE_SECONDS),
        ("no-cache", 3600),
        (None, 3600),
    ],
)
def test_documents_are_cached_for_their_max_age_within_bounds(header, seconds):
    headers = httpx.Headers({"Cache-Control": header} if header else {})
    assert cache_lifetime(headers) == seconds


def test_claims_become_an_identity():
    identity = GoogleIdentity.from_claims(
        {
            "sub": "1234",
            "email": " Amal@Example.COM ",
            "email_verified": "true",
            "name": " Amal ",
            "locale": "ar-EG",
            "picture": "http://insecure.example/a.png",
        }
    )
    assert identity.email == "amal@example.com"
    assert identity.email_verified is True
    assert identity.name == "Amal"
    assert identity.locale == "ar"
    assert identity.picture == ""  # only https avatars are kept
    assert GoogleIdentity.from_claims({"sub": "1", "email_verified": "yes"}).email_verified is False


@pytest.mark.parametrize(
    ("tag", "locale"),
    [("en", "en"), ("en_GB", "en"), ("AR", "ar"), ("fr", None), (None, None), (7, None)],
)
def test_only_supported_locales_are_taken_from_the_token(tag, locale):
    assert supported_locale(tag) == locale


@pytest.mark.parametrize(
    ("email", "name", "base"),
    [
        ("layla.h+news@gmail.com", "", "layla.hnews"),
        ("ab@x.test", "Layla Haddad", "Layla.Haddad"),
        ("ab@x.test", "ليلى", "user"),
        ("a" * 40 + "@x.test", "", "a" * 32),
    ],
)
def test_a_username_stem_uses_only_allowed_characters(email, name, base):
    identity = GoogleIdentity(
        sub="1", email=email, email_verified=True, name=name, locale=None, picture=""
    )
    assert username_base(identity) == base


def test_the_redirect_uri_prefers_the_configured_one_then_the_public_url():
    plain = Settings()
    base = "http://10.0.0.5:8000"
    assert (
        redirect_uri_for(plain, request_base=base)
        == "http://10.0.0.5:8000/api/auth/oauth/google/callback/"
    )
    public = plain.with_overrides(public_url="https://skillswap.example/")
    assert (
        redirect_uri_for(public, request_base=base)
        == "https://skillswap.example/api/auth/oauth/google/callback/"
    )
    explicit = public.with_overrides(oauth_redirect_url="https://auth.skillswap.example/cb")
    assert redirect_uri_for(explicit, request_base=base) == "https://auth.skillswap.example/cb"
