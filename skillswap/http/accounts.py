"""Account endpoints: /api/auth/* and public profiles under /api/users/."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import EmailStr, Field, model_validator

from skillswap.accounts import deletion
from skillswap.accounts import services as accounts
from skillswap.accounts.deletion import DELETED_USER
from skillswap.accounts.services import AuthResult, TokenPair
from skillswap.http.base import BaseHandler, limited, path_id, public, route
from skillswap.http.operations import operation
from skillswap.http.schemas import (
    EmailVerified,
    Out,
    PasswordChanged,
    PasswordReset,
    Sent,
    SignedIn,
    Tokens,
    UserPrivate,
    UserPublic,
)
from skillswap.http.validation import Body
from skillswap.i18n import N_, Translator
from skillswap.models import User


def user_public(user: User, translator: Translator | None = None) -> dict[str, Any]:
    """What anyone may see of a user: never email, phone, balance or anything private.

    An erased account (a tombstone) is "a deleted user" in the reader's language (English
    without a `translator`)."""
    display_name = user.display_name
    if user.deleted_at is not None:
        display_name = translator.gettext(DELETED_USER) if translator else DELETED_USER
    return {
        "id": user.id,
        "username": user.username,
        "display_name": display_name,
        "deleted": user.deleted_at is not None,
        "avatar_url": user.avatar_url,
        "bio": user.bio,
        "verified": user.email_verified,
        "is_verified": user.is_verified,
        "rating_average": user.rating_average,
        "rating_count": user.rating_count,
        "joined_at": user.created_at,
    }


def user_private(user: User) -> dict[str, Any]:
    """The owner's own view of the account."""
    return {
        **user_public(user),
        "email": user.email,
        "phone": user.phone,
        "locale": user.locale,
        "timezone": user.timezone,
        "is_admin": user.is_admin,
        "has_password": user.password_hash is not None,
        # Set while a deletion waits out its grace period: the app offers to cancel it.
        "deletion_scheduled_for": user.deletion_scheduled_for,
    }


def token_response(tokens: TokenPair) -> dict[str, Any]:
    """A session's credentials as every sign-in and refresh answers them."""
    return {
        "access": tokens.access,
        "refresh": tokens.refresh,
        "token_type": "Bearer",
        "expires_in": tokens.expires_in,
        "refresh_expires_in": tokens.refresh_expires_in,
    }


def auth_response(result: AuthResult) -> dict[str, Any]:
    """A sign-in's answer: the user's own view and the session's credentials."""
    return {"user": user_private(result.user), **token_response(result.tokens)}


TIMEZONE = "An IANA time zone (e.g. Africa/Cairo): the zone one's lesson times are shown in"


class RegisterBody(Body):
    email: EmailStr = Field(max_length=254)
    username: str = Field(min_length=3, max_length=32)
    password: str = Field(min_length=1, max_length=256)
    display_name: str = Field(default="", max_length=80)
    locale: Literal["en", "ar"] | None = None
    timezone: str | None = Field(default=None, max_length=64, description=TIMEZONE)


class LoginBody(Body):
    email: str | None = Field(default=None, max_length=254)
    username: str | None = Field(default=None, max_length=32)
    password: str = Field(min_length=1, max_length=256)

    @model_validator(mode="after")
    def _one_identifier(self) -> LoginBody:
        if not (self.email or self.username):
            raise ValueError(N_("Give your email or your username."))
        return self


class RefreshBody(Body):
    refresh: str = Field(min_length=1, max_length=200)


class LogoutBody(Body):
    refresh: str | None = Field(default=None, max_length=200)


class ProfileBody(Body):
    username: str = Field(min_length=3, max_length=32)
    display_name: str = Field(max_length=80)
    bio: str = Field(default="", max_length=2000)
    avatar_url: str = Field(default="", max_length=500, pattern=r"^(https?://\S+)?$")
    phone: str = Field(default="", max_length=32, pattern=r"^(\+?[0-9 ()-]{5,32})?$")
    locale: Literal["en", "ar"] = "en"
    timezone: str = Field(default="UTC", max_length=64, description=TIMEZONE)


class ProfilePatchBody(Body):
    username: str | None = Field(default=None, min_length=3, max_length=32)
    display_name: str | None = Field(default=None, max_length=80)
    bio: str | None = Field(default=None, max_length=2000)
    avatar_url: str | None = Field(default=None, max_length=500, pattern=r"^(https?://\S+)?$")
    phone: str | None = Field(default=None, max_length=32, pattern=r"^(\+?[0-9 ()-]{5,32})?$")
    locale: Literal["en", "ar"] | None = None
    timezone: str | None = Field(default=None, max_length=64, description=TIMEZONE)


class TokenBody(Body):
    token: str = Field(min_length=1, max_length=200)


class EmailBody(Body):
    email: EmailStr = Field(max_length=254)


class ResetConfirmBody(Body):
    token: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=1, max_length=256)


class PasswordChangeBody(Body):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


class RegisterHandler(BaseHandler):
    # Not @idempotent: the stored response would hold live tokens in plain text. A repeated
    # sign-up is already refused by the unique email and username.
    @operation(
        "register",
        tag="Accounts",
        body=RegisterBody,
        response=SignedIn,
        status=201,
        problems=(409,),
    )
    @limited("register")
    @public
    async def post(self) -> None:
        """Create an account and sign it in."""
        body = self.parse_body(RegisterBody)
        result = await accounts.register(
            self.deps,
            email=body.email,
            username=body.username,
            password=body.password,
            display_name=body.display_name,
            locale=body.locale,
            timezone=body.timezone,
        )
        self.send(auth_response(result), status=201, location=f"/api/users/{result.user.id}/")


class LoginHandler(BaseHandler):
    @operation("login", tag="Accounts", body=LoginBody, response=SignedIn, problems=(401, 429))
    @limited("login")
    @public
    async def post(self) -> None:
        """Sign in with email or username and password."""
        body = self.parse_body(LoginBody)
        result = await accounts.login(
            self.deps,
            identifier=body.email or body.username or "",
            password=body.password,
            client_ip=self.request.remote_ip,
        )
        self.send(auth_response(result))


class RefreshHandler(BaseHandler):
    @operation("refreshTokens", tag="Accounts", body=RefreshBody, response=Tokens, problems=(401,))
    @public
    async def post(self) -> None:
        """Exchange a refresh token for a new pair (the same pair again within the grace window)."""
        body = self.parse_body(RefreshBody)
        pair = await accounts.refresh_tokens(self.deps, refresh=body.refresh)
        self.send(token_response(pair))


class LogoutHandler(BaseHandler):
    @operation("logout", tag="Accounts", body=LogoutBody, status=204)
    async def post(self) -> None:
        """Sign out: end this session (and the refresh token's, if given), access tokens included."""
        body = self.parse_body(LogoutBody)
        await accounts.logout(
            self.deps, actor=self.user, access=self.access_claims, refresh=body.refresh
        )
        self.set_status(204)


class DeleteAccountBody(Body):
    password: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Required unless the account signs in with Google only (then sign in anew)",
    )


class DeletionScheduledOut(Out):
    """A deletion asked for: when it will be carried out (cancellable until then)."""

    deletion_requested_at: datetime
    deletion_scheduled_for: datetime


def deletion_json(user: User) -> dict[str, Any]:
    return {
        "deletion_requested_at": user.deletion_requested_at,
        "deletion_scheduled_for": user.deletion_scheduled_for,
    }


class ProfileHandler(BaseHandler):
    @operation("getProfile", tag="Accounts", response=UserPrivate)
    async def get(self) -> None:
        """The signed-in user's own profile."""
        self.send(user_private(self.user))

    @operation(
        "replaceProfile", tag="Accounts", body=ProfileBody, response=UserPrivate, problems=(409,)
    )
    async def put(self) -> None:
        """Replace the editable profile fields."""
        body = self.parse_body(ProfileBody)
        user = await accounts.update_profile(self.deps, actor=self.user, changes=body.model_dump())
        self.send(user_private(user))

    @operation(
        "updateProfile",
        tag="Accounts",
        body=ProfilePatchBody,
        response=UserPrivate,
        problems=(409,),
    )
    async def patch(self) -> None:
        """Change some profile fields."""
        body = self.parse_body(ProfilePatchBody)
        user = await accounts.update_profile(
            self.deps, actor=self.user, changes=body.model_dump(exclude_unset=True)
        )
        self.send(user_private(user))

    @operation(
        "deleteProfile",
        tag="Accounts",
        body=DeleteAccountBody,
        response=DeletionScheduledOut,
        status=202,
        problems=(403, 409, 429),
    )
    @limited("login")
    async def delete(self) -> None:
        """Schedule the deletion of one's account, as POST /api/auth/account/delete/ does.

        The same body (the password, or `{}` after a fresh Google sign-in) and the same answers:
        202 with the date, 409 `open_orders`, 403 `reauthentication_required`."""
        body = self.parse_body(DeleteAccountBody)
        user = await deletion.request_deletion(
            self.deps, actor=self.user, access=self.access_claims, password=body.password
        )
        self.send(deletion_json(user), status=202)


class PublicProfileHandler(BaseHandler):
    @operation("getUser", tag="Accounts", response=UserPublic, problems=(404,))
    @public
    async def get(self, user_id: str) -> None:
        """Anyone's public profile."""
        user = await accounts.get_public_profile(self.deps, user_id=path_id(user_id))
        self.send(user_public(user))


class VerifyEmailHandler(BaseHandler):
    @operation("verifyEmail", tag="Accounts", body=TokenBody, response=EmailVerified)
    @public
    async def post(self) -> None:
        """Confirm an email address with the emailed code."""
        body = self.parse_body(TokenBody)
        user = await accounts.verify_email(self.deps, token=body.token)
        self.send({"verified": True, "user_id": user.id})


class ResendVerificationHandler(BaseHandler):
    @operation("resendVerification", tag="Accounts", response=Sent, status=202, problems=(409, 429))
    @limited("resend")
    async def post(self) -> None:
        """Send a new verification code to the signed-in user."""
        await accounts.resend_verification(self.deps, actor=self.user)
        self.set_status(202)
        self.send({"sent": True}, status=202)


class PasswordResetHandler(BaseHandler):
    @operation(
        "requestPasswordReset",
        tag="Accounts",
        body=EmailBody,
        response=Sent,
        status=202,
        problems=(429,),
    )
    @limited("resend")
    @public
    async def post(self) -> None:
        """Email a password-reset code (the answer is the same whether the account exists)."""
        body = self.parse_body(EmailBody)
        await accounts.request_password_reset(self.deps, email=body.email)
        self.send({"sent": True}, status=202)


class PasswordResetConfirmHandler(BaseHandler):
    @operation(
        "confirmPasswordReset", tag="Accounts", body=ResetConfirmBody, response=PasswordReset
    )
    @public
    async def post(self) -> None:
        """Choose a new password with a reset code."""
        body = self.parse_body(ResetConfirmBody)
        await accounts.confirm_password_reset(
            self.deps, token=body.token, new_password=body.new_password
        )
        self.send({"reset": True})


class PasswordChangeHandler(BaseHandler):
    @operation(
        "changePassword",
        tag="Accounts",
        body=PasswordChangeBody,
        response=PasswordChanged,
        problems=(403, 429),
    )
    async def post(self) -> None:
        """Change the password, knowing the current one."""
        body = self.parse_body(PasswordChangeBody)
        await accounts.change_password(
            self.deps,
            actor=self.user,
            current_password=body.current_password,
            new_password=body.new_password,
        )
        self.send({"changed": True})


routes = [
    route("/api/auth/register/", RegisterHandler),
    route("/api/auth/login/", LoginHandler),
    route("/api/auth/refresh/", RefreshHandler),
    route("/api/auth/logout/", LogoutHandler),
    route("/api/auth/profile/", ProfileHandler),
    route("/api/auth/verify-email/", VerifyEmailHandler),
    route("/api/auth/verify-email/resend/", ResendVerificationHandler),
    route("/api/auth/password/reset/", PasswordResetHandler),
    route("/api/auth/password/reset/confirm/", PasswordResetConfirmHandler),
    route("/api/auth/password/change/", PasswordChangeHandler),
    route(r"/api/users/(\d+)/", PublicProfileHandler),
]
