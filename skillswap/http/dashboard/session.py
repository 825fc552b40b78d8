"""The dashboard's session: a signed cookie naming the administrator and a sign-in.

The cookie holds no secret of its own: the user id, the sign-in's session id (the refresh-token
family the API's sign-in issued, so that ending it anywhere ends the dashboard too), when it was
issued and when it was last used. Tornado signs it with a key derived from SECRET_KEY. It is
refused once unused for ADMIN_SESSION_IDLE_SECONDS, ADMIN_SESSION_MAX_SECONDS after signing in,
once its session id is on the token denylist (sign-out, which a copied cookie cannot undo), or
once its user's older sessions were ended there (a new password, a ban), and whenever its user is
no longer an active administrator.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import tornado.web

from skillswap.auth.tokens import AccessClaims
from skillswap.models import User

if TYPE_CHECKING:
    from skillswap.deps import Deps
    from skillswap.settings import Settings

COOKIE_NAME = "skillswap_admin"
COOKIE_PATH = "/admin"


def cookie_secret(settings: Settings) -> bytes:
    """The key that signs dashboard cookies, derived so SECRET_KEY never signs them itself."""
    return hashlib.sha256(f"skillswap-admin-cookie:{settings.secret_key}".encode()).digest()


@dataclass(frozen=True)
class DashboardSession:
    user_id: int
    session_id: str
    issued_at: int  # Unix seconds, by deps.clock
    last_seen: int

    def encode(self) -> str:
        return f"{self.user_id}|{self.session_id}|{self.issued_at}|{self.last_seen}"

    @classmethod
    def decode(cls, text: str) -> DashboardSession | None:
        parts = text.split("|")
        if len(parts) != 4 or not all(parts):
            return None
        user_id, session_id, issued_at, last_seen = parts
        if not (user_id.isdecimal() and issued_at.isdecimal() and last_seen.isdecimal()):
            return None
        return cls(int(user_id), session_id, int(issued_at), int(last_seen))

    def seen(self, now: int) -> DashboardSession:
        return replace(self, last_seen=now)

    def is_current(self, now: int, settings: Settings) -> bool:
        """Within both timeouts (a clock moved back is no reason to refuse, nor to extend)."""
        return (
            now - self.last_seen <= settings.admin_session_idle_seconds
            and now - self.issued_at <= settings.admin_session_max_seconds
        )

    def as_claims(self, settings: Settings) -> AccessClaims:
        """The session as the denylist knows sign-ins: by session id, user and issue time."""
        return AccessClaims(
            user_id=self.user_id,
            jti=self.session_id,
            expires_at=self.issued_at + settings.admin_session_max_seconds,
            issued_at=self.issued_at,
            session_id=self.session_id,
        )


def sign(settings: Settings, session: DashboardSession) -> str:
    signed = tornado.web.create_signed_value(cookie_secret(settings), COOKIE_NAME, session.encode())
    return signed.decode()


def unsign(settings: Settings, cookie: str | None) -> DashboardSession | None:
    """The session a cookie carries, or None if it is missing, forged or malformed."""
    if not cookie:
        return None
    days = settings.admin_session_max_seconds / 86_400 + 1
    value = tornado.web.decode_signed_value(
        cookie_secret(settings), COOKIE_NAME, cookie, max_age_days=days
    )
    if value is None:
        return None
    try:
        return DashboardSession.decode(value.decode("utf-8"))
    except UnicodeDecodeError:
        return None


async def signed_in_admin(deps: Deps, session: DashboardSession, now: int) -> User | None:
    """The active administrator `session` still signs in, or None (see the module's rules)."""
    if not session.is_current(now, deps.settings):
        return None
    if await deps.denylist.is_revoked(session.as_claims(deps.settings)):
        return None
    user = deps.signed_in.get(session.user_id)
    if user is None:
        async with deps.db.read() as db:
            user = await db.get(User, session.user_id)
        if user is not None:
            deps.signed_in.put(user)
    if user is None or not (user.is_active and user.is_admin):
        return None
    return user


async def end_session(deps: Deps, session: DashboardSession) -> None:
    """Deny the session id for as long as any copy of its cookie could still be accepted."""
    await deps.denylist.revoke_session(
        session.session_id, ttl=deps.settings.admin_session_max_seconds
    )
