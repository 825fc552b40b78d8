"""The per-node cache of signed-in users."""

from __future__ import annotations

import time

from skillswap.auth.current_user import SignedInUsers
from skillswap.models import User


def _user(user_id: int) -> User:
    return User(
        id=user_id,
        email=f"u{user_id}@example.com",
        username=f"u{user_id}",
        username_key=f"u{user_id}",
    )


def test_a_user_is_reused_until_the_ttl_passes(monkeypatch):
    cache = SignedInUsers(ttl_seconds=5)
    user = _user(1)
    cache.put(user)
    assert cache.get(1) is user
    later = time.monotonic() + 6
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert cache.get(1) is None


def test_forget_drops_a_user_at_once_and_zero_ttl_disables_caching():
    cache = SignedInUsers(ttl_seconds=5)
    cache.put(_user(2))
    cache.forget(2)
    assert cache.get(2) is None
    disabled = SignedInUsers(ttl_seconds=0)
    disabled.put(_user(3))
    assert disabled.get(3) is None


def test_the_cache_is_bounded():
    cache = SignedInUsers(ttl_seconds=60, max_entries=10)
    for n in range(25):
        cache.put(_user(n))
    assert sum(cache.get(n) is not None for n in range(25)) <= 10
    assert cache.get(24) is not None
