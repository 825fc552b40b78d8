"""Who is calling: an access token resolved to an active user, for REST and WebSocket alike."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from skillswap.errors import InvalidToken
from skillswap.models import User
from skillswap.tokens import AccessClaims

if TYPE_CHECKING:
    from skillswap.deps import Deps


class SignedInUsers:
    """A short-lived per-node copy of recently seen users, saving a query on most requests.

    A change made on this node is seen at once (`forget`); one made on another node, such as a
    deactivation, within `ttl_seconds`. Sign-out is never delayed: the token denylist is checked
    on every request. The cached users are detached and must be treated as read-only.
    """

    def __init__(self, ttl_seconds: float, max_entries: int = 50_000) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[int, tuple[float, User]] = {}

    def get(self, user_id: int) -> User | None:
        entry = self._entries.get(user_id)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, user: User) -> None:
        if self.ttl <= 0:
            return
        if len(self._entries) >= self.max_entries:
            now = time.monotonic()
            self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[user.id] = (time.monotonic() + self.ttl, user)

    def forget(self, user_id: int) -> None:
        self._entries.pop(user_id, None)


async def authenticate(deps: Deps, token: str) -> tuple[User, AccessClaims]:
    """Verify an access token and return its active user, or raise InvalidToken."""
    claims = deps.keys.verify_access(token)
    if await deps.denylist.is_revoked(claims):
        raise InvalidToken()
    user = deps.signed_in.get(claims.user_id)
    if user is None:
        async with deps.db.read() as session:
            user = await session.get(User, claims.user_id)
        if user is not None:
            deps.signed_in.put(user)
    if user is None or not user.is_active:
        raise InvalidToken()
    return user, claims
