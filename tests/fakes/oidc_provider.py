"""A local OpenID provider that behaves like Google's, for end-to-end tests of Google sign-in.

A real Tornado app on an unused port, over HTTPS with a certificate made for the run (oauthlib,
like Google, insists on HTTPS endpoints; clients trust the certificate through
`tests.tls.client_ssl_context()`). It serves discovery, an authorization endpoint that consents at once
for the configured identity, a token endpoint that checks the client, the redirect URI, the
single use of each code and the PKCE S256 verifier, and a JWKS endpoint. ID tokens are RS256,
signed with a generated key that has a `kid`.

Each misbehaviour a test needs is an attribute, put back by `reset()`:
`deny_consent`, `claim_overrides` (a value of None removes the claim), `forge_signature`,
`unpublished_kid`, `token_algorithm`, `token_error`, and `rotate_key()`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, urlencode

import jwt
import tornado.httpserver
import tornado.testing
import tornado.web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.tls import server_ssl_context

GOOGLE_LIKE_SCOPE = (
    "openid https://www.googleapis.com/auth/userinfo.email "
    "https://www.googleapis.com/auth/userinfo.profile"
)


@dataclass(frozen=True)
class Identity:
    """The Google account that consents at /authorize."""

    sub: str
    email: str
    email_verified: bool = True
    name: str = "Test Person"
    locale: str | None = "en"
    picture: str | None = None


@dataclass(frozen=True)
class _IssuedCode:
    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str
    identity: Identity
    expires_at: float


@dataclass
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey = field(repr=False)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(
            kid=secrets.token_hex(8),
            private=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        )

    def jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        jwk.pop("key_ops", None)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of `verifier` (RFC 7636 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class FakeOIDCProvider:
    """The provider's state, its configuration for the current test, and what it has seen."""

    def __init__(
        self, *, client_id: str = "skillswap-test-client", client_secret: str = "s3cret-value"
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.port = 0
        self._server: tornado.httpserver.HTTPServer | None = None
        self.signing_key = SigningKey.generate()
        self.reset()

    def reset(self) -> None:
        """Back to a well-behaved provider with a fresh identity; counters start again."""
        self.identity = Identity(
            sub=str(secrets.randbelow(10**20)), email=f"g{secrets.token_hex(5)}@gmail.test"
        )
        self.deny_consent = False
        self.claim_overrides: dict[str, Any] = {}
        self.forge_signature = False
        self.unpublished_kid = False
        self.token_algorithm = "RS256"
        self.token_error: str | None = None
        self.discovery_fetches = 0
        self.jwks_fetches = 0
        self.token_requests: list[dict[str, str]] = []
        self.authorization_requests: list[dict[str, str]] = []
        self._codes: dict[str, _IssuedCode] = {}

    def set_identity(self, **changes: Any) -> Identity:
        """Change who consents next (sub, email, email_verified, name, locale, picture)."""
        self.identity = replace(self.identity, **changes)
        return self.identity

    def rotate_key(self) -> str:
        """Sign with a new key from now on; the JWKS publishes only the new one."""
        self.signing_key = SigningKey.generate()
        return self.signing_key.kid

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    async def start(self) -> None:
        """Listen on an unused port of 127.0.0.1, inside the running loop."""
        app = tornado.web.Application(
            [
                (r"/\.well-known/openid-configuration", _DiscoveryHandler, {"provider": self}),
                (r"/authorize", _AuthorizeHandler, {"provider": self}),
                (r"/token", _TokenHandler, {"provider": self}),
                (r"/jwks", _JwksHandler, {"provider": self}),
            ]
        )
        self._server = tornado.httpserver.HTTPServer(app, ssl_options=server_ssl_context())
        sock, self.port = tornado.testing.bind_unused_port()
        self._server.add_sockets([sock])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()
            self._server = None

    # -- protocol ------------------------------------------------------------------------------

    def discovery_document(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "code_challenge_methods_supported": ["plain", "S256"],
            "claims_supported": ["aud", "email", "email_verified", "exp", "iat", "iss", "sub"],
        }

    def issue_code(self, query: dict[str, str]) -> str:
        code = secrets.token_urlsafe(24)
        self._codes[code] = _IssuedCode(
            client_id=query["client_id"],
            redirect_uri=query["redirect_uri"],
            code_challenge=query["code_challenge"],
            nonce=query["nonce"],
            identity=self.identity,
            expires_at=time.time() + 60,
        )
        return code

    def redeem_code(self, form: dict[str, str], client_id: str) -> _IssuedCode:
        """The code's grant, spent; raises _TokenError like the real endpoint answers."""
        issued = self._codes.pop(form.get("code", ""), None)  # single use, even when refused
        if issued is None or issued.expires_at < time.time():
            raise _TokenError("invalid_grant", "The code is unknown, used or expired.")
        if issued.client_id != client_id:
            raise _TokenError("invalid_grant", "The code was issued to another client.")
        if form.get("redirect_uri") != issued.redirect_uri:
            raise _TokenError("invalid_grant", "redirect_uri differs from the authorization.")
        verifier = form.get("code_verifier", "")
        if not 43 <= len(verifier) <= 128 or s256(verifier) != issued.code_challenge:
            raise _TokenError("invalid_grant", "PKCE verification failed.")
        return issued

    def sdk_id_token(self, *, nonce: str | None = None) -> str:
        """An ID token for the current identity as Google's mobile SDKs hand one to an app (no
        code, no redirect): issued to `client_id` unless `claim_overrides` say otherwise, with
        `nonce` when the app gave one. The misbehaviour attributes apply as to /token."""
        return self.id_token(
            _IssuedCode(self.client_id, "", "", nonce or "", self.identity, time.time())
        )

    def id_token(self, issued: _IssuedCode) -> str:
        now = int(time.time())
        who = issued.identity
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "azp": self.client_id,
            "aud": self.client_id,
            "sub": who.sub,
            "email": who.email,
            "email_verified": who.email_verified,
            "name": who.name,
            "locale": who.locale,
            "picture": who.picture,
            "nonce": issued.nonce or None,
            "iat": now,
            "exp": now + 3600,
        }
        claims.update(self.claim_overrides)
        claims = {name: value for name, value in claims.items() if value is not None}
        if self.token_algorithm == "none":
            return jwt.encode(claims, None, algorithm="none", headers={"kid": self.signing_key.kid})
        if self.token_algorithm == "HS256":
            # The classic confusion attempt: a symmetric signature with a secret the client knows.
            return jwt.encode(
                claims,
                self.client_secret.encode() * 4,
                algorithm="HS256",
                headers={"kid": self.signing_key.kid},
            )
        key = self.signing_key.private
        kid = self.signing_key.kid
        if self.forge_signature:
            key = SigningKey.generate().private  # same kid, a key the provider never published
        if self.unpublished_kid:
            kid = "never-published-" + secrets.token_hex(4)
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


class _TokenError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


class _ProviderHandler(tornado.web.RequestHandler):
    provider: FakeOIDCProvider

    def initialize(self, provider: FakeOIDCProvider) -> None:
        self.provider = provider

    def send_json(self, data: dict[str, Any], status: int = 200, cache: str = "no-store") -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", cache)
        self.finish(json.dumps(data))


class _DiscoveryHandler(_ProviderHandler):
    def get(self) -> None:
        self.provider.discovery_fetches += 1
        self.send_json(self.provider.discovery_document(), cache="public, max-age=3600")


class _JwksHandler(_ProviderHandler):
    def get(self) -> None:
        self.provider.jwks_fetches += 1
        self.send_json({"keys": [self.provider.signing_key.jwk()]}, cache="public, max-age=21600")


class _AuthorizeHandler(_ProviderHandler):
    def get(self) -> None:
        """Consent at once for the configured identity, and send the browser back."""
        provider = self.provider
        query = {name: self.get_query_argument(name) for name in self.request.query_arguments}
        provider.authorization_requests.append(query)
        required = ("client_id", "redirect_uri", "response_type", "scope", "state", "nonce")
        problems = [name for name in required if not query.get(name)]
        if query.get("client_id") != provider.client_id:
            problems.append("client_id unknown")
        if query.get("response_type") != "code":
            problems.append("response_type must be code")
        if "openid" not in query.get("scope", "").split():
            problems.append("scope must include openid")
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            problems.append("PKCE S256 is required")
        if problems:
            # Like Google, a malformed request is an error page, never a redirect.
            self.set_status(400)
            self.finish("invalid authorization request: " + ", ".join(problems))
            return
        if provider.deny_consent:
            answer = {"error": "access_denied", "state": query["state"]}
        else:
            answer = {"code": provider.issue_code(query), "state": query["state"]}
        answer["iss"] = provider.issuer
        separator = "&" if "?" in query["redirect_uri"] else "?"
        self.redirect(query["redirect_uri"] + separator + urlencode(answer), status=302)


class _TokenHandler(_ProviderHandler):
    def post(self) -> None:
        """The authorization-code grant, with client authentication and PKCE."""
        provider = self.provider
        form = {
            name: values[-1]
            for name, values in parse_qs(self.request.body.decode(), keep_blank_values=True).items()
        }
        provider.token_requests.append(form)
        try:
            client_id = self._authenticate_client(form)
            if form.get("grant_type") != "authorization_code":
                raise _TokenError("unsupported_grant_type", "Only authorization_code.")
            issued = provider.redeem_code(form, client_id)
            if provider.token_error:
                raise _TokenError(provider.token_error, "Configured to refuse.")
        except _TokenError as exc:
            self.send_json({"error": exc.error, "error_description": exc.description}, exc.status)
            return
        self.send_json(
            {
                "access_token": "ya29." + secrets.token_urlsafe(32),
                "expires_in": 3599,
                "scope": GOOGLE_LIKE_SCOPE,
                "token_type": "Bearer",
                "id_token": provider.id_token(issued),
            }
        )

    def _authenticate_client(self, form: dict[str, str]) -> str:
        provider = self.provider
        header = self.request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            decoded = base64.b64decode(header[6:]).decode()
            client_id, _, secret = decoded.partition(":")
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if client_id != provider.client_id or not secrets.compare_digest(
            secret, provider.client_secret
        ):
            raise _TokenError("invalid_client", "Unauthorized client.", status=401)
        return client_id
