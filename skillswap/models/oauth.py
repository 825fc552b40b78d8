"""Pending OAuth sign-ins: the state, PKCE verifier and nonce of each authorization request."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from skillswap.models.base import Base, UTCDateTime, utcnow


class OAuthState(Base):
    """One started authorization request, finished at most once by whichever node gets the callback.

    Only the SHA-256 of `state` is stored, so a leaked table cannot be replayed against the
    callback. The PKCE verifier and nonce are kept as they are: the token exchange must send the
    verifier and the ID token must carry the nonce.
    """

    __tablename__ = "oauth_states"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))  # "google"
    code_verifier: Mapped[str] = mapped_column(String(128))
    nonce: Mapped[str] = mapped_column(String(64))
    # The exact redirect URI of the authorization request: the token request must repeat it,
    # even when the callback reaches another node under another host name.
    redirect_uri: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
