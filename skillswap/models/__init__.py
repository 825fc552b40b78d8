"""All ORM models; importing this package registers every table on `Base.metadata`."""

from skillswap.models.base import Base
from skillswap.models.idempotency import IdempotencyRecord
from skillswap.models.oauth import OAuthState
from skillswap.models.skills import Category, Skill, SkillImage
from skillswap.models.users import OneTimeToken, RefreshToken, User

__all__ = [
    "Base",
    "Category",
    "IdempotencyRecord",
    "OAuthState",
    "OneTimeToken",
    "RefreshToken",
    "Skill",
    "SkillImage",
    "User",
]
