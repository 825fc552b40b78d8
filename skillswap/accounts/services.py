"""Account use cases: sign-up, sign-in, token rotation, sign-out, profiles, email and password."""

from __future__ import annotations

import functools
import hashlib
import re
import uuid
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from skillswap import events
from skillswap.accounts import signin_throttle
from skillswap.auth.passwords import password_problems
from skillswap.auth.tokens import (
    AccessClaims,
    hash_opaque_token,
    new_opaque_token,
    rotation_successor,
)
from skillswap.db import UnitOfWork
from skillswap.errors import (
    BadRequest,
    Conflict,
    InvalidCredentials,
    InvalidToken,
    NotFound,
    ValidationFailed,
)
from skillswap.i18n import N_, SUPPORTED_LOCALES, lazy, one_of
from skillswap.models import OneTimeToken, RefreshToken, User
from skillswap.models.users import TokenPurpose
from skillswap.notifications import outgoing

if TYPE_CHECKING:
    from skillswap.deps import Deps

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,32}$")


class InvalidCode(BadRequest):
    """A mistyped, spent or expired emailed code: the caller's input, not its sign-in (a 401
    would send clients' refresh-and-retry logic after the wrong thing)."""

    code = "invalid_code"
    title = N_("Invalid code")
    default_detail = N_("This code is not valid, was already used or has expired.")

    def __init__(self) -> None:
        super().__init__(errors={"token": [lazy(self.default_detail)]})


@dataclass(frozen=True)
class TokenPair:
    """A signed-in session's credentials and how many seconds each still lives."""

    access: str
    refresh: str
    expires_in: int
    refresh_expires_in: int


@dataclass(frozen=True)
class AuthResult:
    user: User
    tokens: TokenPair


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _seconds_left(until: float, now: datetime) -> int:
    # Whole seconds on both sides, as the tokens' own `iat`/`exp` are.
    return max(0, int(until) - int(now.timestamp()))


async def _issue_tokens(
    deps: Deps,
    session: AsyncSession,
    user: User,
    *,
    family_id: str | None = None,
    rotated_from: str | None = None,
    now: datetime | None = None,
) -> TokenPair:
    """A new pair for `user`: a new session, or the next pair of `family_id` when rotating
    `rotated_from` (whose successor is derived, see tokens.rotation_successor)."""
    now = now or deps.clock()
    family = family_id or uuid.uuid4().hex
    jti: str | None = None
    if rotated_from is None:
        refresh, digest = new_opaque_token()
    else:
        refresh, jti = rotation_successor(deps.settings.secret_key, rotated_from)
        digest = hash_opaque_token(refresh)
    access, claims = deps.keys.issue_access(
        user.id, now=now.timestamp(), session_id=family, jti=jti
    )
    expires_at = now + timedelta(seconds=deps.settings.refresh_token_ttl_seconds)
    session.add(
        RefreshToken(
            token_hash=digest,
            user_id=user.id,
            family_id=family,
            created_at=now,
            expires_at=expires_at,
        )
    )
    return TokenPair(
        access=access,
        refresh=refresh,
        expires_in=_seconds_left(claims.expires_at, now),
        refresh_expires_in=_seconds_left(expires_at.timestamp(), now),
    )


async def register(
    deps: Deps,
    *,
    email: str,
    username: str,
    password: str,
    display_name: str = "",
    locale: str | None = None,
    timezone: str | None = None,
) -> AuthResult:
    """Create an account, send the verification email, and sign the new user in."""
    email = normalise_email(email)
    errors: dict[str, Any] = {}
    if not USERNAME_RE.match(username):
        errors["username"] = [lazy("Use 3 to 32 letters, digits, dots, dashes or underscores.")]
    problems = password_problems(
        password,
        min_length=deps.settings.password_min_length,
        personal=(email.split("@")[0], username),
    )
    if problems:
        errors["password"] = problems
    if locale is not None and locale not in SUPPORTED_LOCALES:
        errors["locale"] = [lazy("Must be one of: {choices}.", choices=one_of(SUPPORTED_LOCALES))]
    if timezone is not None and not is_time_zone(timezone):
        errors["timezone"] = [lazy(NOT_A_TIME_ZONE)]
    if errors:
        raise ValidationFailed(errors=errors)
    password_hash = await deps.hasher.hash(password)
    async with deps.db.uow() as uow:
        session = uow.session
        clash = (
            await session.execute(
                select(User.email, User.username_key).where(
                    or_(User.email == email, User.username_key == username.lower())
                )
            )
        ).first()
        if clash is not None:
            raise _duplicate_error(email_taken=clash.email == email)
        user = User(
            email=email,
            username=username,
            username_key=username.lower(),
            password_hash=password_hash,
            display_name=display_name or username,
            locale=locale or deps.settings.default_locale,
            timezone=timezone or "UTC",
        )
        session.add(user)
        try:
            await session.flush()
        except IntegrityError:
            # Lost a race with a concurrent sign-up for the same email or username.
            raise _duplicate_error(email_taken=None) from None
        await events.emit(deps, uow, events.UserRegistered(user_id=user.id))
        tokens = await _issue_tokens(deps, session, user)
        verify_token = await _new_one_time_token(deps, session, user, TokenPurpose.VERIFY_EMAIL)
        await _queue_email(deps, uow, user, TokenPurpose.VERIFY_EMAIL, verify_token)
        await uow.commit()
    return AuthResult(user=user, tokens=tokens)


def _duplicate_error(*, email_taken: bool | None) -> Conflict:
    if email_taken is None:
        return Conflict(
            lazy("An account with this email or username already exists."), code="account_exists"
        )
    if email_taken:
        return Conflict(
            lazy("An account with this email already exists."),
            code="email_taken",
            errors={"email": [lazy("An account with this email already exists.")]},
        )
    return Conflict(
        lazy("This username is taken."),
        code="username_taken",
        errors={"username": [lazy("This username is taken.")]},
    )


async def login(
    deps: Deps, *, identifier: str, password: str, client_ip: str | None = None
) -> AuthResult:
    """Sign in by email or username; every failure is the same generic 401.

    Failures slow the guesser with growing delays per (account, address) and per address
    (429 before any password is checked, on every node), never locking the owner out: see
    signin_throttle.
    """
    key = identifier.strip().lower()
    async with deps.db.read() as session:
        user = await session.scalar(
            select(User).where(or_(User.email == key, User.username_key == key))
        )
    attempt = signin_throttle.SignInAttempt.of(
        f"user:{user.id}" if user is not None else key, client_ip
    )
    await signin_throttle.wait_for_turn(deps, attempt)
    ok = await deps.hasher.verify(user.password_hash if user else None, password)
    if user is None or not ok or not user.is_active:
        await signin_throttle.record_failure(deps, attempt)
        raise InvalidCredentials()
    await signin_throttle.record_success(deps, attempt)
    async with deps.db.uow() as uow:
        if user.password_hash and deps.hasher.needs_rehash(user.password_hash):
            new_hash = await deps.hasher.hash(password)
            await uow.session.execute(
                update(User).where(User.id == user.id).values(password_hash=new_hash)
            )
        tokens = await _issue_tokens(deps, uow.session, user)
        await uow.commit()
    return AuthResult(user=user, tokens=tokens)


async def sign_in_user(deps: Deps, uow: UnitOfWork, user: User) -> TokenPair:
    """Issue a token pair for `user` inside the caller's unit of work (used by Google sign-in)."""
    return await _issue_tokens(deps, uow.session, user)


async def refresh_tokens(deps: Deps, *, refresh: str) -> TokenPair:
    """Rotate a refresh token.

    Presented again within REFRESH_REUSE_GRACE_SECONDS of its rotation (an app refreshing from
    two places at once) it gets the same new pair; later it is a replay, which ends the whole
    session: its refresh tokens and, through the denylist, its access tokens.
    """
    digest = hash_opaque_token(refresh)
    now = deps.clock()
    grace = timedelta(seconds=deps.settings.refresh_reuse_grace_seconds)
    async with deps.db.uow() as uow:
        session = uow.session
        token = await session.get(RefreshToken, digest)
        if token is None or token.revoked_at is not None or token.expires_at <= now:
            raise InvalidToken()
        rotated_at = token.used_at
        if rotated_at is None:
            # Conditional update: of two concurrent refreshes with one token, only one rotates;
            # on PostgreSQL the other's UPDATE waits for that one's commit and matches nothing.
            claimed = await session.execute(
                update(RefreshToken)
                .where(RefreshToken.token_hash == digest, RefreshToken.used_at.is_(None))
                .values(used_at=now)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount == 1:  # type: ignore[attr-defined]
                user = await session.get(User, token.user_id)
                if user is None or not user.is_active:
                    raise InvalidToken()
                pair = await _issue_tokens(
                    deps, session, user, family_id=token.family_id, rotated_from=refresh, now=now
                )
                await uow.commit()
                return pair
            # Lost that race: read the winner's committed rotation time (a new statement sees it).
            row = (
                await session.execute(
                    select(RefreshToken.used_at, RefreshToken.revoked_at).where(
                        RefreshToken.token_hash == digest
                    )
                )
            ).one()
            if row.revoked_at is not None or row.used_at is None:
                raise InvalidToken()
            rotated_at = row.used_at
        if grace and now - rotated_at <= grace:
            repeated = await _repeat_rotation(
                deps, session, token, refresh=refresh, rotated_at=rotated_at, now=now
            )
            if repeated is not None:
                return repeated
        await _revoke_family(session, token.family_id, now)
        await uow.commit()
    await _end_access_tokens(deps, {token.family_id})
    raise InvalidToken(
        lazy("This refresh token was already used; sign in again."), code="token_reused"
    )


async def _repeat_rotation(
    deps: Deps,
    session: AsyncSession,
    token: RefreshToken,
    *,
    refresh: str,
    rotated_at: datetime,
    now: datetime,
) -> TokenPair | None:
    """The pair that rotating `token` at `rotated_at` issued, again; None when that pair is
    gone (its session ended, or it was issued before successors were derived)."""
    successor, jti = rotation_successor(deps.settings.secret_key, refresh)
    row = (
        await session.execute(
            select(RefreshToken.family_id, RefreshToken.expires_at, RefreshToken.revoked_at).where(
                RefreshToken.token_hash == hash_opaque_token(successor)
            )
        )
    ).first()
    if row is None or row.family_id != token.family_id or row.revoked_at is not None:
        return None
    user = await session.get(User, token.user_id)
    if user is None or not user.is_active:
        raise InvalidToken()
    # Same claims, same signature: the access token is the one the first rotation returned.
    access, claims = deps.keys.issue_access(
        user.id, now=rotated_at.timestamp(), session_id=token.family_id, jti=jti
    )
    return TokenPair(
        access=access,
        refresh=successor,
        expires_in=_seconds_left(claims.expires_at, now),
        refresh_expires_in=_seconds_left(row.expires_at.timestamp(), now),
    )


async def _revoke_family(
    session: AsyncSession, family_id: str, now: datetime, *, user_id: int | None = None
) -> None:
    statement = update(RefreshToken).where(
        RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None)
    )
    if user_id is not None:
        statement = statement.where(RefreshToken.user_id == user_id)
    await session.execute(statement.values(revoked_at=now))


async def _end_access_tokens(deps: Deps, families: set[str]) -> None:
    """Deny every access token issued to these sessions, until the newest would expire."""
    for family_id in families:
        await deps.denylist.revoke_session(family_id, ttl=session_denial_seconds(deps))


def session_denial_seconds(deps: Deps) -> int:
    """How long an ended sign-in stays denied: as long as anything it issued could be used, an
    access token or a dashboard session (which outlives a token when the admin keeps using it)."""
    settings = deps.settings
    return max(settings.access_token_ttl_seconds, settings.admin_session_max_seconds)


async def logout(deps: Deps, *, actor: User, access: AccessClaims, refresh: str | None) -> None:
    """End the session of the access token (and the one `refresh` belongs to, if another):
    its refresh tokens, and every access token issued to it, the current one included."""
    now = deps.clock()
    families = {access.session_id} if access.session_id else set()
    if refresh:
        async with deps.db.read() as session:
            family_id = await session.scalar(
                select(RefreshToken.family_id).where(
                    RefreshToken.token_hash == hash_opaque_token(refresh),
                    RefreshToken.user_id == actor.id,
                )
            )
        if family_id is not None:
            families.add(family_id)
    if families:
        async with deps.db.uow() as uow:
            for family_id in families:
                await _revoke_family(uow.session, family_id, now, user_id=actor.id)
            await uow.commit()
        await _end_access_tokens(deps, families)
    # Tokens issued before sessions were named carry no session id: deny this one by itself.
    await deps.denylist.revoke(access.jti, expires_at=access.expires_at)


PROFILE_FIELDS = ("display_name", "bio", "avatar_url", "phone", "locale", "timezone", "username")
NOT_A_TIME_ZONE = N_("Must be an IANA time zone name, such as Africa/Cairo or UTC.")


@functools.cache
def _time_zones() -> frozenset[str]:
    # A system's zoneinfo folder may hold its own `localtime` and `posixrules` links: no zones.
    return frozenset(zoneinfo.available_timezones()) - {"localtime", "posixrules"}


def is_time_zone(name: object) -> bool:
    """Whether `name` is an IANA time zone this system knows (what `users.timezone` holds:
    the zone reminders and the calendar show a person's times in)."""
    return isinstance(name, str) and name in _time_zones()


async def update_profile(deps: Deps, *, actor: User, changes: dict[str, Any]) -> User:
    """Change the actor's own profile fields."""
    async with deps.db.uow() as uow:
        session = uow.session
        user = await session.get(User, actor.id, with_for_update=not deps.db.is_sqlite)
        if user is None:
            raise NotFound()
        if "timezone" in changes and not is_time_zone(changes["timezone"]):
            raise ValidationFailed(errors={"timezone": [lazy(NOT_A_TIME_ZONE)]})
        if "username" in changes and changes["username"] != user.username:
            username = changes["username"]
            if not USERNAME_RE.match(username):
                raise ValidationFailed(
                    errors={
                        "username": [
                            lazy("Use 3 to 32 letters, digits, dots, dashes or underscores.")
                        ]
                    }
                )
            taken = await session.scalar(
                select(func.count())
                .select_from(User)
                .where(User.username_key == username.lower(), User.id != user.id)
            )
            if taken:
                raise _duplicate_error(email_taken=False)
            user.username_key = username.lower()
        for name, value in changes.items():
            if name in PROFILE_FIELDS:
                setattr(user, name, value)
        try:
            await session.flush()
        except IntegrityError:
            raise _duplicate_error(email_taken=False) from None
        await uow.commit()
    deps.signed_in.forget(user.id)
    return user


async def get_public_profile(deps: Deps, *, user_id: int) -> User:
    async with deps.db.read() as session:
        user = await session.get(User, user_id)
    if user is None or not user.is_active:
        raise NotFound()
    return user


# -- single-use tokens: email verification and password reset --------------------------------


async def _new_one_time_token(
    deps: Deps, session: AsyncSession, user: User, purpose: TokenPurpose
) -> str:
    now = deps.clock()
    ttl = (
        deps.settings.email_token_ttl_seconds
        if purpose == TokenPurpose.VERIFY_EMAIL
        else deps.settings.password_reset_ttl_seconds
    )
    token, digest = new_opaque_token()
    session.add(
        OneTimeToken(
            token_hash=digest,
            user_id=user.id,
            purpose=purpose,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
        )
    )
    return token


async def _queue_email(
    deps: Deps, uow: UnitOfWork, user: User, purpose: TokenPurpose, token: str
) -> None:
    """Mail the code once the transaction commits: an outbox row, run by a worker."""
    await outgoing.enqueue_code_mail(deps, uow, user_id=user.id, purpose=purpose, token=token)


async def _consume_one_time_token(
    deps: Deps, session: AsyncSession, *, token: str, purpose: TokenPurpose
) -> User:
    """Spend an emailed code (once, before it expires); the user it was sent to."""
    now = deps.clock()
    digest = hash_opaque_token(token)
    record = await session.get(OneTimeToken, digest)
    if record is None or record.purpose != purpose or record.expires_at <= now:
        raise InvalidCode()
    used = await session.execute(
        update(OneTimeToken)
        .where(OneTimeToken.token_hash == digest, OneTimeToken.used_at.is_(None))
        .values(used_at=now)
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        raise InvalidCode()
    user = await session.get(User, record.user_id)
    if user is None:
        raise InvalidCode()
    return user


async def resend_verification(deps: Deps, *, actor: User) -> None:
    async with deps.db.uow() as uow:
        user = await uow.session.get(User, actor.id)
        if user is None or user.email_verified:
            return
        token = await _new_one_time_token(deps, uow.session, user, TokenPurpose.VERIFY_EMAIL)
        await _queue_email(deps, uow, user, TokenPurpose.VERIFY_EMAIL, token)
        await uow.commit()


async def verify_email(deps: Deps, *, token: str) -> User:
    async with deps.db.uow() as uow:
        user = await _consume_one_time_token(
            deps, uow.session, token=token, purpose=TokenPurpose.VERIFY_EMAIL
        )
        if not user.email_verified:
            user.email_verified = True
            await events.emit(deps, uow, events.EmailVerified(user_id=user.id))
        await uow.commit()
    deps.signed_in.forget(user.id)
    return user


async def request_password_reset(deps: Deps, *, email: str) -> None:
    """Email a reset code if the account exists; the answer never reveals whether it does."""
    address = normalise_email(email)
    sent = await deps.limiter.hit(
        "reset:" + hashlib.sha256(address.encode()).hexdigest(), window_seconds=3600
    )
    if sent > deps.settings.password_reset_max_per_hour:
        return  # quietly: the answer must look the same, and the inbox is not flooded
    async with deps.db.uow() as uow:
        user = await uow.session.scalar(select(User).where(User.email == address))
        if user is None or not user.is_active:
            return
        token = await _new_one_time_token(deps, uow.session, user, TokenPurpose.PASSWORD_RESET)
        await _queue_email(deps, uow, user, TokenPurpose.PASSWORD_RESET, token)
        await uow.commit()


async def confirm_password_reset(deps: Deps, *, token: str, new_password: str) -> None:
    """Set a new password with a reset code; every signed-in session is ended."""
    async with deps.db.uow() as uow:
        user = await _consume_one_time_token(
            deps, uow.session, token=token, purpose=TokenPurpose.PASSWORD_RESET
        )
        await _set_password(deps, uow, user, new_password)
        await uow.commit()


async def change_password(
    deps: Deps, *, actor: User, current_password: str, new_password: str
) -> None:
    if not await deps.hasher.verify(actor.password_hash, current_password):
        raise ValidationFailed(
            errors={"current_password": [lazy("The current password is not correct.")]}
        )
    async with deps.db.uow() as uow:
        user = await uow.session.get(User, actor.id)
        if user is None:
            raise NotFound()
        await _set_password(deps, uow, user, new_password)
        await uow.commit()


async def _set_password(deps: Deps, uow: UnitOfWork, user: User, new_password: str) -> None:
    problems = password_problems(
        new_password,
        min_length=deps.settings.password_min_length,
        personal=(user.email.split("@")[0], user.username),
    )
    if problems:
        raise ValidationFailed(errors={"new_password": problems})
    user.password_hash = await deps.hasher.hash(new_password)
    # A new password ends every existing sign-in (an open socket closes when its token expires).
    await end_every_session(deps, uow, user.id)


async def end_every_session(deps: Deps, uow: UnitOfWork, user_id: int) -> None:
    """End all of a user's sessions: refresh tokens now, access tokens once committed, through
    the denylist on every node. Sessions issued later in this unit of work are not touched."""
    now = deps.clock()
    families = set(
        (
            await uow.session.scalars(
                update(RefreshToken)
                .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=now)
                .returning(RefreshToken.family_id)
                .execution_options(synchronize_session=False)
            )
        ).all()
    )

    async def end_access_tokens() -> None:
        deps.signed_in.forget(user_id)
        # By session, exactly; and by issue time (whole seconds) for tokens issued before
        # access tokens named their session.
        await _end_access_tokens(deps, families)
        await deps.denylist.revoke_user_tokens(
            user_id,
            issued_before=int(now.timestamp()),
            ttl=session_denial_seconds(deps),
        )

    uow.after_commit(end_access_tokens)
