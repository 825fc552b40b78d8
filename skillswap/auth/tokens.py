"""Access tokens (JWT with a pinned algorithm and a `kid` for key rotation) and their denylist."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jwt

from skillswap.auth.expiring import ExpiringMap
from skillswap.errors import InvalidToken, TokenExpired
from skillswap.settings import Settings


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    jti: str
    expires_at: int
    issued_at: int = 0
    # The sign-in (refresh-token family) the token was issued to: ending the session ends its
    # access tokens at once. Empty for tokens issued before sessions were named.
    session_id: str = ""


VERIFIED_TOKENS_KEPT = 20_000


class KeyRing:
    """The key that signs new tokens and every key still accepted for verification."""

    def __init__(self, settings: Settings) -> None:
        self.algorithm = settings.jwt_algorithm
        if self.algorithm not in {"HS256", "RS256"}:
            raise ValueError(f"unsupported JWT_ALGORITHM {self.algorithm!r}")
        self.issuer = settings.jwt_issuer
        self.kid = settings.jwt_key_id
        self.ttl = settings.access_token_ttl_seconds
        self._verify_keys: dict[str, Any] = {}
        # Tokens already verified, by their exact text (signature included), until they expire:
        # a client sends the same token with every request, and checking its signature again is
        # most of what authenticating costs. Revocation is not cached (see authn.authenticate).
        self._verified: ExpiringMap[str, AccessClaims] = ExpiringMap(VERIFIED_TOKENS_KEPT)
        if self.algorithm == "HS256":
            self._signing_key: Any = _derive_hmac_key(settings.secret_key, self.kid)
            self._verify_keys[self.kid] = self._signing_key
            for pair in settings.jwt_previous_keys:
                old_kid, _, secret = pair.partition(":")
                self._verify_keys[old_kid] = _derive_hmac_key(secret, old_kid)
        else:
            from cryptography.hazmat.primitives.serialization import load_pem_private_key

            pem = Path(settings.jwt_private_key_file).read_bytes()
            private = load_pem_private_key(pem, password=None)
            self._signing_key = private
            self._verify_keys[self.kid] = private.public_key()
            for pair in settings.jwt_previous_keys:
                from cryptography.hazmat.primitives.serialization import load_pem_public_key

                old_kid, _, path = pair.partition(":")
                self._verify_keys[old_kid] = load_pem_public_key(Path(path).read_bytes())

    def issue_access(
        self,
        user_id: int,
        *,
        now: float | None = None,
        session_id: str = "",
        jti: str | None = None,
    ) -> tuple[str, AccessClaims]:
        """Sign an access token. The same claims (`jti` and `now` given) sign the same token:
        HS256 and RS256 (PKCS#1 v1.5) signatures are deterministic."""
        issued = int(now if now is not None else time.time())
        claims = AccessClaims(
            user_id=user_id,
            jti=jti or uuid.uuid4().hex,
            expires_at=issued + self.ttl,
            issued_at=issued,
            session_id=session_id,
        )
        payload: dict[str, Any] = {
            "sub": str(user_id),
            "jti": claims.jti,
            "iat": issued,
            "exp": claims.expires_at,
            "iss": self.issuer,
            "typ": "access",
        }
        if session_id:
            payload["sid"] = session_id
        token = jwt.encode(
            payload, self._signing_key, algorithm=self.algorithm, headers={"kid": self.kid}
        )
        return token, claims

    def verify_access(self, token: str) -> AccessClaims:
        """Decode and check signature, algorithm, issuer, expiry and type, or raise InvalidToken."""
        now = time.time()
        known = self._verified.get(token, now)
        if known is not None:
            return known
        claims = self._verify(token)
        self._verified.put(token, claims, claims.expires_at, now)
        return claims

    def _verify(self, token: str) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
            key = self._verify_keys.get(str(header.get("kid", "")))
            # The algorithm is pinned: a token naming another (or `none`) is refused outright.
            if key is None or header.get("alg") != self.algorithm:
                raise InvalidToken()
            payload = jwt.decode(
                token,
                key,
                algorithms=[self.algorithm],
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "jti", "iss"]},
            )
        except jwt.ExpiredSignatureError as exc:
            # PyJWT checks `exp` only after the signature: this token is ours, and merely old.
            raise TokenExpired() from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken() from exc
        if payload.get("typ") != "access":
            raise InvalidToken()
        session_id = payload.get("sid", "")
        if not isinstance(session_id, str):
            raise InvalidToken()
        try:
            return AccessClaims(
                int(payload["sub"]),
                str(payload["jti"]),
                int(payload["exp"]),
                int(payload["iat"]),
                session_id,
            )
        except (TypeError, ValueError) as exc:
            raise InvalidToken() from exc


def _derive_hmac_key(secret: str, kid: str) -> bytes:
    # A key per kid, derived from the secret, so the raw SECRET_KEY never signs tokens itself.
    return hashlib.sha256(f"skillswap-jwt:{kid}:{secret}".encode()).digest()


def rotation_successor(secret_key: str, refresh: str) -> tuple[str, str]:
    """The refresh token, and the access token's `jti`, that rotating `refresh` issues.

    Derived, not random, so that a refresh token presented twice within the reuse grace window
    gets the very pair its first rotation issued, while nothing that could be replayed is kept
    at rest: the database holds only hashes, as for every other refresh token. Reproducing a
    pair takes the presented token (which the caller proves it holds) and SECRET_KEY, which
    signs access tokens anyway; storing the new tokens encrypted would instead keep a
    decryptable live token for every rotation, and need a key just for that.
    """
    key = hashlib.sha256(f"skillswap-refresh-rotation:{secret_key}".encode()).digest()
    token = hmac.new(key, b"refresh\0" + refresh.encode(), hashlib.sha256).digest()
    jti = hmac.new(key, b"access\0" + refresh.encode(), hashlib.sha256).hexdigest()[:32]
    return base64.urlsafe_b64encode(token).rstrip(b"=").decode("ascii"), jti


def new_opaque_token() -> tuple[str, str]:
    """A random token for the client and the SHA-256 digest that is stored in its place."""
    token = secrets.token_urlsafe(32)
    return token, hash_opaque_token(token)


def hash_opaque_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenDenylist(Protocol):
    """Revoked access tokens: single tokens (sign-out), every token of one session (a sign-out,
    a refresh token replayed) and all of a user's older tokens (a new password), each kept
    until the tokens concerned would have expired anyway."""

    async def revoke(self, jti: str, *, expires_at: int) -> None: ...

    async def revoke_session(self, session_id: str, *, ttl: int) -> None: ...

    async def revoke_user_tokens(self, user_id: int, *, issued_before: int, ttl: int) -> None: ...

    async def is_revoked(self, claims: AccessClaims) -> bool: ...


class MemoryDenylist:
    """The embedded default's denylist: one process, so memory is the truth."""

    def __init__(self) -> None:
        self._entries: dict[str, int] = {}
        self._sessions: dict[str, int] = {}  # session id -> kept until
        self._users: dict[int, tuple[int, int]] = {}  # user -> (issued_before, kept until)

    async def revoke(self, jti: str, *, expires_at: int) -> None:
        now = int(time.time())
        self._entries = {k: v for k, v in self._entries.items() if v > now}
        self._entries[jti] = expires_at

    async def revoke_session(self, session_id: str, *, ttl: int) -> None:
        now = int(time.time())
        self._sessions = {k: v for k, v in self._sessions.items() if v > now}
        self._sessions[session_id] = now + ttl + 1

    async def revoke_user_tokens(self, user_id: int, *, issued_before: int, ttl: int) -> None:
        self._users[user_id] = (issued_before, int(time.time()) + ttl)

    async def is_revoked(self, claims: AccessClaims) -> bool:
        now = time.time()
        expiry = self._entries.get(claims.jti)
        if expiry is not None and expiry > now:
            return True
        if claims.session_id:
            ended = self._sessions.get(claims.session_id)
            if ended is not None and ended > now:
                return True
        cutoff = self._users.get(claims.user_id)
        return cutoff is not None and cutoff[1] > now and claims.issued_at < cutoff[0]


class RedisDenylist:
    """Shared by every node: keys that Redis expires with the tokens they concern."""

    def __init__(self, redis: Any, prefix: str = "skillswap:denylist:") -> None:
        self._redis = redis
        self._prefix = prefix

    async def revoke(self, jti: str, *, expires_at: int) -> None:
        ttl = max(1, expires_at - int(time.time()) + 1)
        await self._redis.set(self._prefix + jti, b"1", ex=ttl)

    async def revoke_session(self, session_id: str, *, ttl: int) -> None:
        await self._redis.set(f"{self._prefix}sid:{session_id}", b"1", ex=ttl + 1)

    async def revoke_user_tokens(self, user_id: int, *, issued_before: int, ttl: int) -> None:
        await self._redis.set(f"{self._prefix}user:{user_id}", str(issued_before), ex=ttl + 1)

    async def is_revoked(self, claims: AccessClaims) -> bool:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        # One round trip for the three ways a token ends; a token without a session names a
        # key nobody sets (a jti is hex, so "sid:" cannot collide with one).
        try:
            token, user, session = await self._redis.mget(
                self._prefix + claims.jti,
                f"{self._prefix}user:{claims.user_id}",
                f"{self._prefix}sid:{claims.session_id or '-'}",
            )
        except (RedisConnectionError, RedisTimeoutError, OSError):
            # Fail open while Redis is away, so signed-in users keep working (REST and the
            # WebSocket); a signed-out token stays usable at most until it expires anyway.
            logging.getLogger("skillswap.auth").warning("denylist unreachable; not checked")
            return False
        return (
            token is not None
            or session is not None
            or (user is not None and claims.issued_at < int(user))
        )
