"""Where notifications go besides the live stream: a user's push devices and chosen channels."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from skillswap.models.base import Base, BigIntPK, UTCDateTime, sql_values, utcnow

# FCM registration tokens are about 160 characters; the cap keeps the unique index well inside
# PostgreSQL's B-tree row limit.
DEVICE_TOKEN_MAX_LENGTH = 1024


class DevicePlatform(StrEnum):
    """The kind of app a push token was issued to."""

    ANDROID = "android"
    IOS = "ios"
    WEB = "web"


class Device(Base):
    """An app installation that receives push notifications for its user (one per token)."""

    __tablename__ = "devices"
    __table_args__ = (
        CheckConstraint(f"platform IN ({sql_values(DevicePlatform)})", name="platform"),
        UniqueConstraint("token"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token: Mapped[str] = mapped_column(String(DEVICE_TOKEN_MAX_LENGTH))
    platform: Mapped[str] = mapped_column(String(16))  # a DevicePlatform
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NotificationPreference(Base):
    """A user's choice of channels for one notification kind (no row: the kind's defaults)."""

    __tablename__ = "notification_preferences"

    # The key is (user_id, kind): one choice per user and kind.
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(40), primary_key=True)  # a NotificationKind
    email: Mapped[bool] = mapped_column(Boolean)
    push: Mapped[bool] = mapped_column(Boolean)
