"""Administrator accounts (the `createadmin` command)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import or_, select

from skillswap.accounts import services as accounts
from skillswap.models import User

if TYPE_CHECKING:
    from skillswap.deps import Deps


async def create_admin(
    deps: Deps, *, email: str, username: str, password: str
) -> tuple[User, bool]:
    """Create an administrator, or promote the existing account with that email or username."""
    async with deps.db.uow() as uow:
        existing = await uow.session.scalar(
            select(User).where(
                or_(
                    User.email == accounts.normalise_email(email),
                    User.username_key == username.lower(),
                )
            )
        )
        if existing is not None:
            existing.is_admin = True
            existing.email_verified = True
            await uow.commit()
            return existing, False
    result = await accounts.register(deps, email=email, username=username, password=password)
    async with deps.db.uow() as uow:
        user = await uow.session.get(User, result.user.id)
        assert user is not None
        user.is_admin = True
        user.email_verified = True
        await uow.commit()
    return user, True
