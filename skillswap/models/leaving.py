"""What a scheduled account deletion changed that calling it off must undo."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from skillswap.models.base import Base, UTCDateTime, utcnow


class SkillPausedByDeletion(Base):
    """A skill that was active when its owner's deletion was scheduled, and was paused then.

    Cancelling the deletion (the owner, or an administrator's reinstatement) lists exactly these
    again; skills the owner had paused themselves, or an administrator had hidden, have no row
    and stay as they were. The erasure deletes the rows with the rest.
    """

    __tablename__ = "skills_paused_by_deletion"

    skill_id: Mapped[int] = mapped_column(
        ForeignKey("skills.id", ondelete="CASCADE"), primary_key=True
    )
    paused_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
