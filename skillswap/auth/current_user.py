"""Who is calling: an access token resolved to an active user, for REST and WebSocket alike."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from skillswap.auth.expiring import ExpiringMap
from skillswap.auth.tokens import AccessClaims
from skillswap.errors import InvalidToken
from skillswap.models import User

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
        self._users: ExpiringMap[int, User] = ExpiringMap(max_entries)

    def get(self, user_id: int) -> User | None:
        return self._users.get(user_id, time.monotonic())

    def put(self, user: User) -> None:
        if self.ttl <= 0:
            return
        now = time.monotonic()
        self._users.put(user.id, user, now + self.ttl, now)

    def forget(self, user_id: int) -> None:
        self._users.pop(user_id)


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
