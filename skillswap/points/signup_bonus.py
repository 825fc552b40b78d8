"""The signup bonus: points from nothing, so earned by proving an email address, once per address.

With SIGNUP_BONUS_ON=verified (the default) the bonus is granted when the account's email is
verified (the emailed code, or Google vouching for the address); with `signup` at registration,
once per account, as before.

Verified, an address has the bonus at most once ever: the grant first claims the address in
`signup_bonus_claims`, whose primary key is a keyed hash of its normalised form, and a claim
already there (another account, one since deleted, an earlier email of another account) means
no bonus. Normalised: trimmed and lower-cased, and at gmail.com / googlemail.com (which ignore
dots and everything after a `+` in the local part, and are one domain) without dots and +tags;
other providers' rules differ, so their addresses are taken as written. The hash is an HMAC
under a key derived from SECRET_KEY, so the table names no address and cannot be matched against
a list of addresses without the key (rotating SECRET_KEY therefore forgets the claims).

The ledger transfer keeps its per-account key as well, so no account has the bonus twice even
across a change of SIGNUP_BONUS_ON.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from skillswap import events, ledger
from skillswap.db import UnitOfWork
from skillswap.ledger import SystemAccount, TransferKind, TransferRequest
from skillswap.models import User
from skillswap.models.users import SignupBonusClaim

if TYPE_CHECKING:
    from skillswap.deps import Deps

GMAIL_DOMAINS = ("gmail.com", "googlemail.com")
_KEY_PURPOSE = b"skillswap:signup-bonus-claims:v1"


def signup_bonus_key(user_id: int) -> str:
    """The bonus's idempotency key: one bonus per user, however often it is asked for."""
    return f"signup_bonus:{user_id}"


def normalised_address(email: str) -> str:
    """The form under which two spellings of one mailbox are the same address."""
    address = email.strip().lower()
    local, at, domain = address.rpartition("@")
    if not at:
        return address
    if domain in GMAIL_DOMAINS:
        local = local.split("+", 1)[0].replace(".", "")
        domain = GMAIL_DOMAINS[0]
    return f"{local}@{domain}"


def address_digest(secret_key: str, email: str) -> str:
    """The claim's key for `email`: an HMAC of its normalised form, under a key of its own."""
    key = hmac.new(secret_key.encode(), _KEY_PURPOSE, hashlib.sha256).digest()
    return hmac.new(key, normalised_address(email).encode(), hashlib.sha256).hexdigest()


async def grant_signup_bonus(deps: Deps, uow: UnitOfWork, *, user_id: int) -> None:
    """Open the user's wallet and credit the configured bonus (once per user, ever)."""
    now = deps.clock()
    wallet = await ledger.ensure_wallet(uow.session, user_id, now=now)
    amount = deps.settings.signup_bonus_points
    if amount <= 0:
        return
    await ledger.transfer(
        uow.session,
        TransferRequest(
            key=signup_bonus_key(user_id),
            kind=TransferKind.SIGNUP_BONUS,
            debit_account_id=SystemAccount.SIGNUP_BONUS,
            credit_account_id=wallet,
            amount=amount,
        ),
        now=now,
    )


async def grant_for_verified_email(deps: Deps, uow: UnitOfWork, user: User) -> bool:
    """Credit the bonus to `user`, whose email is verified, unless the address had it already
    (through another account); True when the bonus is theirs."""
    if deps.settings.signup_bonus_points <= 0 or not await _claim_address(deps, uow, user):
        await ledger.ensure_wallet(uow.session, user.id, now=deps.clock())
        return False
    await grant_signup_bonus(deps, uow, user_id=user.id)
    return True


async def _claim_address(deps: Deps, uow: UnitOfWork, user: User) -> bool:
    """Claim the user's address for the bonus: True for its first account only, ever.

    ON CONFLICT DO NOTHING: of two accounts claiming one address at once, PostgreSQL makes the
    second wait for the first's commit and then inserts nothing; SQLite writes one at a time.
    """
    digest = address_digest(deps.settings.secret_key, user.email)
    insert = sqlite.insert if deps.db.is_sqlite else postgresql.insert
    claimed = await uow.session.execute(
        insert(SignupBonusClaim)
        .values(email_digest=digest, user_id=user.id, claimed_at=deps.clock())
        .on_conflict_do_nothing(index_elements=["email_digest"])
    )
    if claimed.rowcount == 1:  # type: ignore[attr-defined]
        return True
    # The same account asking again (its bonus is then a replay of the same ledger key).
    holder = await uow.session.scalar(
        select(SignupBonusClaim.user_id).where(SignupBonusClaim.email_digest == digest)
    )
    return holder == user.id


async def on_user_registered(deps: Deps, uow: UnitOfWork, event: events.UserRegistered) -> None:
    """A new account gets its wallet; the bonus too at signup, or when its email is verified
    already (Google vouches for the address of an account made through Google sign-in)."""
    # Inside the sign-up transaction: no account without its wallet (and bonus, when due).
    if deps.settings.signup_bonus_on == "signup":
        await grant_signup_bonus(deps, uow, user_id=event.user_id)
        return
    user = await uow.session.get(User, event.user_id)
    if user is not None and user.email_verified:
        await grant_for_verified_email(deps, uow, user)
    else:
        await ledger.ensure_wallet(uow.session, event.user_id, now=deps.clock())


async def on_email_verified(deps: Deps, uow: UnitOfWork, event: events.EmailVerified) -> None:
    """A verified address earns the bonus, in the transaction that verifies it."""
    if deps.settings.signup_bonus_on != "verified":
        return
    user = await uow.session.get(User, event.user_id)
    if user is not None:
        await grant_for_verified_email(deps, uow, user)
