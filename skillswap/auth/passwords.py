"""Password hashing (Argon2id), run off the event loop, and password strength rules."""

from __future__ import annotations

import asyncio
import gzip
import os
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

from argon2 import PasswordHasher as _Argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from skillswap.i18n import Message, lazy, lazy_plural


class PasswordHasher:
    """Argon2id in a thread pool: argon2-cffi releases the GIL, so hashes use every core."""

    def __init__(
        self, *, time_cost: int, memory_kib: int, parallelism: int, workers: int | None = None
    ) -> None:
        self._argon2 = _Argon2(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        # One thread per core: hashing is CPU-bound, and each running hash holds `memory_kib`.
        self._pool = ThreadPoolExecutor(
            max_workers=workers or os.cpu_count() or 2, thread_name_prefix="argon2"
        )
        # Verifying against this keeps unknown-user logins as slow as known ones.
        self._dummy_hash = self._argon2.hash("dummy-password-for-timing")

    async def hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._argon2.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches; an absent hash still costs one verification."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool,
            self._verify_sync,
            password_hash or self._dummy_hash,
            password,
            password_hash is not None,
        )

    def _verify_sync(self, password_hash: str, password: str, real: bool) -> bool:
        try:
            return self._argon2.verify(password_hash, password) and real
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._argon2.check_needs_rehash(password_hash)

    def close(self) -> None:
        self._pool.shutdown(wait=False)


@cache
def _common_passwords() -> frozenset[str]:
    # The 19,646 most common passwords, the list Django ships (BSD licence), gzipped.
    path = Path(__file__).with_name("common-passwords.txt.gz")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return frozenset(line.strip().lower() for line in fh if line.strip())


def password_problems(
    password: str, *, min_length: int, personal: tuple[str, ...] = ()
) -> list[Message]:
    """Why a password is refused; empty when it is acceptable."""
    problems: list[Message] = []
    if len(password) < min_length:
        problems.append(
            lazy_plural("Use at least {n} character.", "Use at least {n} characters.", min_length)
        )
    if len(password) > 256:
        problems.append(lazy("Use at most 256 characters."))
    lowered = password.lower()
    if lowered in _common_passwords() or len(set(password)) <= 2:
        problems.append(lazy("This password is too common."))
    if any(value and len(value) >= 3 and value.lower() in lowered for value in personal):
        problems.append(lazy("The password is too similar to your email or username."))
    return problems
