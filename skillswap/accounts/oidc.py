"""OpenID Connect relying party: the provider's discovery document and signing keys, fetched
without blocking the loop and cached, and the verification of the ID tokens it issues."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from skillswap.errors import BadRequest, ServiceUnavailable
from skillswap.i18n import N_

log = logging.getLogger(__name__)

DISCOVERY_SUFFIX = "/.well-known/openid-configuration"
ID_TOKEN_ALGORITHM = "RS256"
# How far the provider's clock may be from ours when checking `exp` and `iat`.
CLOCK_LEEWAY_SECONDS = 30
DEFAULT_CACHE_SECONDS = 3600.0
MIN_CACHE_SECONDS = 60.0
MAX_CACHE_SECONDS = 86_400.0
# Google documents that its ID tokens may name their issuer without the scheme.
_ISSUER_ALIASES = {"https://accounts.google.com": ("accounts.google.com",)}
_MAX_AGE_RE = re.compile(r"(?:^|[,\s])max-age\s*=\s*(\d+)", re.IGNORECASE)


class ProviderUnavailable(ServiceUnavailable):
    code = "oauth_provider_unavailable"
    title = N_("Sign-in provider unavailable")
    default_detail = N_("The sign-in provider could not be reached. Try again shortly.")


class InvalidIdToken(BadRequest):
    """The ID token failed a check; `reason` names which one, for clients and logs."""

    code = "oauth_invalid_id_token"
    title = N_("Sign-in failed")
    default_detail = N_("The identity token from the sign-in provider could not be verified.")

    def __init__(self, reason: str) -> None:
        super().__init__(extra={"reason": reason})
        self.reason = reason


@dataclass(frozen=True)
class ProviderMetadata:
    """The parts of a discovery document a relying party needs."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str

    @classmethod
    def from_document(cls, document: Any, *, discovery_url: str) -> ProviderMetadata:
        """Read and check a discovery document; ValueError when it cannot be trusted."""
        if not isinstance(document, dict):
            raise ValueError("the discovery document is not a JSON object")
        values: dict[str, str] = {}
        for name in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = document.get(name)
            if not isinstance(value, str) or not value.startswith(("https://", "http://")):
                raise ValueError(f"the discovery document has no usable {name}")
            values[name] = value
        # OpenID Connect Discovery 4.3: the issuer is the discovery URL without the well-known
        # suffix; anything else means the document speaks for someone else.
        if discovery_url.endswith(DISCOVERY_SUFFIX):
            expected = discovery_url[: -len(DISCOVERY_SUFFIX)]
            if values["issuer"].rstrip("/") != expected.rstrip("/"):
                raise ValueError(f"issuer {values['issuer']!r} does not match {discovery_url!r}")
        algorithms = document.get("id_token_signing_alg_values_supported")
        if isinstance(algorithms, list) and ID_TOKEN_ALGORITHM not in algorithms:
            raise ValueError(f"the provider does not sign ID tokens with {ID_TOKEN_ALGORITHM}")
        return cls(**values)

    @property
    def accepted_issuers(self) -> tuple[str, ...]:
        return (self.issuer, *_ISSUER_ALIASES.get(self.issuer, ()))


def cache_lifetime(headers: httpx.Headers) -> float:
    """Seconds to keep a fetched document: its `max-age`, within sane bounds."""
    match = _MAX_AGE_RE.search(headers.get("cache-control", ""))
    seconds = float(match.group(1)) if match else DEFAULT_CACHE_SECONDS
    return min(max(seconds, MIN_CACHE_SECONDS), MAX_CACHE_SECONDS)


def signing_keys_from_jwks(document: Any) -> dict[str, jwt.PyJWK]:
    """The RSA signature keys of a JWK set, by `kid` (others are of no use for RS256)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("the JWKS document has no keys")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        if entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig" or not kid:
            continue
        if entry.get("alg", ID_TOKEN_ALGORITHM) != ID_TOKEN_ALGORITHM:
            continue
        try:
            keys[str(kid)] = jwt.PyJWK(entry, algorithm=ID_TOKEN_ALGORITHM)
        except jwt.PyJWTError:
            log.warning("skipping an unusable key %r in the provider's JWKS", kid)
    return keys


@dataclass
class _Cached:
    value: Any
    fresh_until: float  # on the monotonic clock


class OpenIDProvider:
    """One provider, as seen by this process: its metadata and keys, fetched at most once at a
    time and kept for their cache lifetime.

    A stale copy is served, with a warning, while the provider cannot be reached, so a short
    outage of the discovery or JWKS endpoint does not stop sign-ins that need no new key.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        discovery_url: str,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.discovery_url = discovery_url
        self._monotonic = monotonic
        self._metadata: _Cached | None = None
        self._keys: _Cached | None = None
        self._keys_generation = 0
        self._metadata_lock = asyncio.Lock()
        self._keys_lock = asyncio.Lock()

    def _is_fresh(self, cached: _Cached | None) -> bool:
        return cached is not None and cached.fresh_until > self._monotonic()

    async def metadata(self) -> ProviderMetadata:
        """The discovery document, from cache while it is fresh."""
        if not self._is_fresh(self._metadata):
            async with self._metadata_lock:
                if not self._is_fresh(self._metadata):  # someone else may have just fetched it
                    self._metadata = await self._fetch(
                        self.discovery_url,
                        lambda doc: ProviderMetadata.from_document(
                            doc, discovery_url=self.discovery_url
                        ),
                        stale=self._metadata,
                    )
        assert self._metadata is not None
        metadata: ProviderMetadata = self._metadata.value
        return metadata

    async def signing_key(self, kid: str) -> jwt.PyJWK | None:
        """The provider's key `kid`; an unknown kid refetches the JWKS once (keys rotate)."""
        if not self._is_fresh(self._keys):
            async with self._keys_lock:
                if not self._is_fresh(self._keys):
                    await self._load_keys()
        keys, generation = self._current_keys()
        if kid in keys:
            return keys[kid]
        async with self._keys_lock:
            # Callers that missed at once share one refetch: whoever gets the lock after it
            # finds a newer generation than the one it missed in and looks there.
            if self._keys_generation == generation:
                await self._load_keys()
        keys, _generation = self._current_keys()
        return keys.get(kid)

    def _current_keys(self) -> tuple[dict[str, jwt.PyJWK], int]:
        assert self._keys is not None
        keys: dict[str, jwt.PyJWK] = self._keys.value
        return keys, self._keys_generation

    async def _load_keys(self) -> None:
        jwks_uri = (await self.metadata()).jwks_uri
        self._keys = await self._fetch(jwks_uri, signing_keys_from_jwks, stale=self._keys)
        self._keys_generation += 1

    async def _fetch(
        self, url: str, parse: Callable[[Any], Any], *, stale: _Cached | None
    ) -> _Cached:
        """Fetch and parse `url`, or keep serving `stale` for a while if the provider is down."""
        try:
            response = await self.http.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            value = parse(response.json())
            return _Cached(value, self._monotonic() + cache_lifetime(response.headers))
        except (httpx.HTTPError, ValueError) as exc:
            if stale is not None:
                log.warning("using a stale copy of %s: %s", url, exc)
                return _Cached(stale.value, self._monotonic() + MIN_CACHE_SECONDS)
            log.error("cannot fetch %s: %s", url, exc)
            raise ProviderUnavailable() from exc

    async def verify_id_token(
        self, token: str, *, client_ids: Sequence[str], nonce: str | None
    ) -> dict[str, Any]:
        """Check an ID token's signature, algorithm, issuer, audience, lifetime and nonce.

        The audience must be one of `client_ids` (a deployment's web, Android and iOS clients).
        With `nonce` None the token is not expected to carry one we know (a native app's SDK
        token obtained without a nonce); otherwise it must carry exactly that one.
        Returns its claims, or raises InvalidIdToken naming the first check that failed.
        """
        if not client_ids:
            raise InvalidIdToken("audience")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidIdToken("malformed") from None
        # The algorithm is pinned before any key is chosen: `none`, HS256 signed with the public
        # key, or any other algorithm the token may name is refused outright.
        if header.get("alg") != ID_TOKEN_ALGORITHM:
            raise InvalidIdToken("algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidIdToken("unknown_key")
        key = await self.signing_key(kid)
        if key is None:
            raise InvalidIdToken("unknown_key")
        metadata = await self.metadata()
        claims = _decode(token, key, client_ids=client_ids, issuers=metadata.accepted_issuers)
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise InvalidIdToken("claims")
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        # OpenID Connect Core 3.1.3.7: with several audiences the token must be meant for us.
        if len(audiences) > 1 and claims.get("azp") not in client_ids:
            raise InvalidIdToken("audience")
        if nonce is None:
            return claims
        token_nonce = claims.get("nonce")
        if not isinstance(token_nonce, str) or not hmac.compare_digest(
            token_nonce.encode(), nonce.encode()
        ):
            raise InvalidIdToken("nonce")
        return claims


def _decode(
    token: str, key: jwt.PyJWK, *, client_ids: Sequence[str], issuers: tuple[str, ...]
) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=[ID_TOKEN_ALGORITHM],
            # PyJWT accepts the token when its `aud` names any of these.
            audience=list(client_ids),
            issuer=issuers,
            leeway=CLOCK_LEEWAY_SECONDS,
            options={"require": ["iss", "sub", "aud", "exp", "iat"]},
        )
    except jwt.InvalidSignatureError:
        raise InvalidIdToken("signature") from None
    except jwt.ExpiredSignatureError:
        raise InvalidIdToken("expired") from None
    except jwt.ImmatureSignatureError:
        raise InvalidIdToken("not_yet_valid") from None
    except jwt.InvalidAudienceError:
        raise InvalidIdToken("audience") from None
    except jwt.InvalidIssuerError:
        raise InvalidIdToken("issuer") from None
    except jwt.PyJWTError:
        raise InvalidIdToken("claims") from None
    return claims
