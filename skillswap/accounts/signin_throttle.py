"""Failed sign-ins slow the guesser without locking the owner out.

Failures are counted per (account, address) pair and per address, never per account alone:
counting per account let anyone lock a user out by typing their username. After
LOGIN_MAX_FAILURES failures from one pair (LOGIN_MAX_FAILURES_PER_IP from one address, whatever
the accounts: the looser bound against trying many usernames), each further attempt from there
waits LOGIN_DELAY_BASE_SECONDS after the last, doubled at each failure up to
LOGIN_DELAY_MAX_SECONDS, and is refused with 429 and Retry-After until then, before any password
is checked. So a correct password from an address that has not been failing always gets in,
even while the account is being guessed from elsewhere; and from the guessing address too, once
its delay has passed. A sign-in clears its pair's failures (not its address's: one account of
one's own must not wash an address clean).

The account is the user the identifier names (its email and username are one account), or the
identifier itself when it names nobody, so that unknown accounts answer alike. The address is
the client's, an IPv6 one by its /64. Shared by every node through Redis (skillswap.auth.throttles);
in memory on the embedded default. Delays are measured on the app's clock.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from skillswap.auth.ratelimits import subject_for
from skillswap.auth.throttles import Backoff
from skillswap.errors import TooManyRequests
from skillswap.i18n import Message, lazy_plural

if TYPE_CHECKING:
    from skillswap.deps import Deps


@dataclass(frozen=True)
class SignInAttempt:
    """The throttle keys of one sign-in attempt."""

    pair: str
    address: str | None

    @classmethod
    def of(cls, account: str, client_ip: str | None) -> SignInAttempt:
        """`account`: the user's id (`user:42`) or the identifier typed, lower-cased."""
        address = subject_for(None, client_ip) if client_ip else None
        pair = hashlib.sha256(f"{account}\n{address or ''}".encode()).hexdigest()
        return cls(pair="login:pair:" + pair, address=f"login:{address}" if address else None)


def _pair_backoff(deps: Deps) -> Backoff:
    settings = deps.settings
    return Backoff(
        free=settings.login_max_failures,
        base=settings.login_delay_base_seconds,
        cap=settings.login_delay_max_seconds,
        forget_after=settings.login_failure_window_seconds,
    )


def _address_backoff(deps: Deps) -> Backoff:
    settings = deps.settings
    return Backoff(
        free=settings.login_max_failures_per_ip,
        base=settings.login_delay_base_seconds,
        cap=settings.login_delay_max_seconds,
        forget_after=settings.login_failure_window_seconds,
    )


async def wait_for_turn(deps: Deps, attempt: SignInAttempt) -> None:
    """Refuse the attempt (429) while its address or its pair must still wait."""
    now = deps.clock().timestamp()
    wait = 0.0
    if attempt.address:
        wait = await deps.limiter.wait_before_attempt(
            attempt.address, now=now, backoff=_address_backoff(deps)
        )
    if not wait:
        wait = await deps.limiter.wait_before_attempt(
            attempt.pair, now=now, backoff=_pair_backoff(deps)
        )
    if wait:
        seconds = max(1, math.ceil(wait))
        raise TooManyRequests(
            _try_again_in(seconds),
            code="too_many_login_attempts",
            headers={"Retry-After": str(seconds)},
        )


def _try_again_in(seconds: int) -> Message:
    if seconds < 60:
        return lazy_plural(
            "Too many failed sign-in attempts. Try again in {n} second.",
            "Too many failed sign-in attempts. Try again in {n} seconds.",
            seconds,
        )
    minutes = math.ceil(seconds / 60)
    return lazy_plural(
        "Too many failed sign-in attempts. Try again in {n} minute.",
        "Too many failed sign-in attempts. Try again in {n} minutes.",
        minutes,
    )


async def record_failure(deps: Deps, attempt: SignInAttempt) -> None:
    """Count a failed attempt against its pair and its address."""
    now = deps.clock().timestamp()
    await deps.limiter.record_failure(attempt.pair, now=now, backoff=_pair_backoff(deps))
    if attempt.address:
        await deps.limiter.record_failure(attempt.address, now=now, backoff=_address_backoff(deps))


async def record_success(deps: Deps, attempt: SignInAttempt) -> None:
    """Forget the pair's failures: the owner got in from there."""
    await deps.limiter.reset(attempt.pair)
