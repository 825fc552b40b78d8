"""Access tokens: pinned algorithms, key ids, rotation, RS256."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from skillswap.auth.tokens import (
    AccessClaims,
    KeyRing,
    MemoryDenylist,
    hash_opaque_token,
    new_opaque_token,
)
from skillswap.errors import InvalidToken
from skillswap.settings import Settings


def _settings(**kw: object) -> Settings:
    return Settings(secret_key="s" * 40).with_overrides(**kw)


def test_hs256_token_round_trip_carries_kid_and_expiry():
    ring = KeyRing(_settings())
    token, claims = ring.issue_access(42)
    assert jwt.get_unverified_header(token)["kid"] == "k1"
    verified = ring.verify_access(token)
    assert verified.user_id == 42
    assert verified.jti == claims.jti
    assert verified.expires_at - time.time() == pytest.approx(900, abs=5)


def test_rotation_accepts_previous_key_and_refuses_unknown_kid():
    old = KeyRing(_settings(secret_key="o" * 40, jwt_key_id="k0"))
    token, _ = old.issue_access(7)
    rotated = KeyRing(_settings(jwt_key_id="k1", jwt_previous_keys=("k0:" + "o" * 40,)))
    assert rotated.verify_access(token).user_id == 7
    without_old = KeyRing(_settings(jwt_key_id="k1"))
    with pytest.raises(InvalidToken):
        without_old.verify_access(token)


def test_rs256_signs_with_the_private_key_and_refuses_hs256_confusion(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "jwt.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ring = KeyRing(_settings(jwt_algorithm="RS256", jwt_private_key_file=str(pem), jwt_key_id="r1"))
    token, _ = ring.issue_access(9)
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert ring.verify_access(token).user_id == 9
    # An attacker signing HS256 with the public key as the secret is refused (alg is pinned).
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = (
        jwt.encode(
            {
                "sub": "9",
                "jti": "x",
                "iat": int(time.time()),
                "exp": int(time.time()) + 60,
                "iss": "skillswap",
                "typ": "access",
            },
            public_pem.decode(),
            algorithm="HS256",
            headers={"kid": "r1"},
        )
        if _hs256_allows_pem()
        else None
    )
    if forged is not None:
        with pytest.raises(InvalidToken):
            ring.verify_access(forged)
    with pytest.raises(InvalidToken):
        ring.verify_access(token[:-4] + "AAAA")


def _hs256_allows_pem() -> bool:
    try:
        jwt.encode(
            {"a": 1}, "-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----", algorithm="HS256"
        )
    except jwt.InvalidKeyError:
        return False
    return True


def test_tokens_of_another_type_or_issuer_are_refused():
    ring = KeyRing(_settings())
    key = ring._signing_key
    now = int(time.time())
    base = {
        "sub": "1",
        "jti": "j",
        "iat": now,
        "exp": now + 60,
        "iss": "skillswap",
        "typ": "access",
    }
    for changes in ({"typ": "refresh"}, {"iss": "someone-else"}, {"sub": "not-a-number"}):
        token = jwt.encode({**base, **changes}, key, algorithm="HS256", headers={"kid": "k1"})
        with pytest.raises(InvalidToken):
            ring.verify_access(token)
    missing_exp = {k: v for k, v in base.items() if k != "exp"}
    with pytest.raises(InvalidToken):
        ring.verify_access(jwt.encode(missing_exp, key, algorithm="HS256", headers={"kid": "k1"}))


def test_opaque_tokens_are_stored_only_as_digests():
    token, digest = new_opaque_token()
    assert token != digest
    assert hash_opaque_token(token) == digest
    assert len(token) >= 40


async def test_memory_denylist_forgets_after_expiry():
    denylist = MemoryDenylist()
    now = int(time.time())
    await denylist.revoke("a", expires_at=now + 60)
    await denylist.revoke("b", expires_at=now - 1)
    assert await denylist.is_revoked(AccessClaims(1, "a", now + 60, now))
    assert not await denylist.is_revoked(AccessClaims(1, "b", now + 60, now))


async def test_revoking_a_users_tokens_spares_only_those_issued_afterwards():
    denylist = MemoryDenylist()
    now = int(time.time())
    await denylist.revoke_user_tokens(7, issued_before=now, ttl=900)
    assert await denylist.is_revoked(AccessClaims(7, "old", now + 900, now - 5))
    assert not await denylist.is_revoked(AccessClaims(7, "new", now + 900, now))
    assert not await denylist.is_revoked(AccessClaims(8, "other", now + 900, now - 5))


def test_a_verified_token_is_remembered_but_never_past_its_expiry(monkeypatch):
    ring = KeyRing(_settings(access_token_ttl_seconds=60))
    token, claims = ring.issue_access(5, now=time.time() - 59)  # one second left
    assert ring.verify_access(token) == claims
    calls = []
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: calls.append(a) or {})
    assert ring.verify_access(token) == claims  # from memory: the signature is not checked again
    assert calls == []
    monkeypatch.undo()
    time.sleep(1.1)
    with pytest.raises(InvalidToken):  # expired: not served from memory, refused by the check
        ring.verify_access(token)


def test_only_the_exact_verified_text_is_remembered():
    ring = KeyRing(_settings())
    token, _ = ring.issue_access(9)
    ring.verify_access(token)
    header, payload, signature = token.split(".")
    forged = ".".join(
        (header, payload, signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB"))
    )
    with pytest.raises(InvalidToken):
        ring.verify_access(forged)
    other = KeyRing(_settings(secret_key="t" * 40))
    with pytest.raises(InvalidToken):  # another node's ring has its own memory and keys
        other.verify_access(token)
