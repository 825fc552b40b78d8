"""What needs a verified email: placing orders and writing reviews (REQUIRE_VERIFIED_EMAIL).

Points, orders and ratings are what puppet accounts are made for; an address that reaches its
owner costs a farmer an inbox per account. The check runs first in those use cases, before
anything is read for or written by them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from skillswap.errors import PermissionDenied
from skillswap.i18n import N_

if TYPE_CHECKING:
    from skillswap.deps import Deps
    from skillswap.models import User


class EmailNotVerified(PermissionDenied):
    code = "email_not_verified"
    title = N_("Email not verified")
    default_detail = N_(
        "Verify your email address first: follow the link or enter the code we sent you."
    )


def require_verified_email(deps: Deps, actor: User) -> None:
    """Refuse an actor whose email is not verified, unless REQUIRE_VERIFIED_EMAIL is off."""
    if deps.settings.require_verified_email and not actor.email_verified:
        raise EmailNotVerified()
