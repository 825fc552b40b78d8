"""Google sign-in: an OpenID Connect authorization-code flow with PKCE, state and nonce, ending in
the same token pair as a password sign-in.

The flow's secrets live in the database (`OAuthState`), not in the node's memory or a cookie, so
any node behind the load balancer can finish a flow another node started, and each state is
spent exactly once.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
from oauthlib.oauth2 import WebApplicationClient
from oauthlib.oauth2.rfc6749.errors import InsecureTransportError, OAuth2Error
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from skillswap import events
from skillswap.accounts import services as accounts
from skillswap.accounts.oidc import OpenIDProvider, ProviderMetadata, ProviderUnavailable
from skillswap.accounts.services import USERNAME_RE, AuthResult, normalise_email
from skillswap.auth.tokens import hash_opaque_token
from skillswap.errors import (
    BadRequest,
    Conflict,
    PermissionDenied,
    ServiceUnavailable,
    ValidationFailed,
)
from skillswap.i18n import N_, SUPPORTED_LOCALES, lazy
from skillswap.models import OAuthState, User
from skillswap.settings import Settings

if TYPE_CHECKING:
    from skillswap.deps import Deps

log = logging.getLogger(__name__)

PROVIDER = "google"
CALLBACK_PATH = "/api/auth/oauth/google/callback/"
SCOPES = ("openid", "email", "profile")
STATE_TTL = timedelta(minutes=10)
# Spent and expired states stay a while so that a late replay is still named as one; then the
# next sign-in start clears them.
PURGE_AFTER = timedelta(hours=1)
# Retries of the account step when a concurrent callback for the same person (or a sign-up that
# took the same username) commits first; looking again then finds what it wrote.
ACCOUNT_ATTEMPTS = 3


class OAuthNotConfigured(ServiceUnavailable):
    code = "oauth_not_configured"
    title = N_("Google sign-in is not available")
    default_detail = N_("Google sign-in is not configured on this server.")


class GoogleSignInFailed(BadRequest):
    code = "oauth_failed"
    title = N_("Google sign-in failed")


@dataclass(frozen=True)
class AuthorizationRequest:
    """Where to send the person, and the state the callback will bring back."""

    authorization_url: str
    state: str


@dataclass(frozen=True)
class GoogleIdentity:
    """Who the verified ID token says the person is."""

    sub: str
    email: str
    email_verified: bool
    name: str
    locale: str | None
    picture: str

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> GoogleIdentity:
        """Read the claims Google sends with the `openid email profile` scopes."""
        email = claims.get("email")
        verified = claims.get("email_verified")
        name = claims.get("name")
        picture = claims.get("picture")
        return cls(
            sub=str(claims["sub"]),
            email=normalise_email(email) if isinstance(email, str) else "",
            # Some providers send the flag as the string "true".
            email_verified=verified is True or verified == "true",
            name=name.strip() if isinstance(name, str) else "",
            locale=supported_locale(claims.get("locale")),
            picture=picture
            if isinstance(picture, str) and picture.startswith("https://") and len(picture) <= 500
            else "",
        )


def supported_locale(value: object) -> str | None:
    """`en`, `ar` from a BCP 47 tag such as `ar-EG` or `en_GB`; None for anything else."""
    if not isinstance(value, str):
        return None
    primary = re.split(r"[-_]", value.strip(), maxsplit=1)[0].lower()
    return primary if primary in SUPPORTED_LOCALES else None


def redirect_uri_for(settings: Settings, *, request_base: str) -> str:
    """The callback URL registered with Google: OAUTH_REDIRECT_URL, else under PUBLIC_URL, else
    under the URL this request came in on."""
    if settings.oauth_redirect_url:
        return settings.oauth_redirect_url
    base = (settings.public_url or request_base).rstrip("/")
    return base + CALLBACK_PATH


def provider_for(deps: Deps) -> OpenIDProvider:
    """This process's view of Google (its discovery document and keys are cached in it)."""
    providers = deps.oidc_providers
    url = deps.settings.google_discovery_url
    if url not in providers:
        providers[url] = OpenIDProvider(deps.http, url)
    return providers[url]


def _require_configured(settings: Settings) -> None:
    if not settings.google_client_id:
        raise OAuthNotConfigured()


async def start_google_sign_in(deps: Deps, *, request_base: str) -> AuthorizationRequest:
    """Begin a sign-in: remember a fresh state, PKCE verifier and nonce, and build Google's URL."""
    settings = deps.settings
    _require_configured(settings)
    metadata = await provider_for(deps).metadata()
    client = WebApplicationClient(settings.google_client_id)
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(32)
    code_verifier = client.create_code_verifier(64)
    redirect_uri = redirect_uri_for(settings, request_base=request_base)
    try:
        url = client.prepare_request_uri(
            metadata.authorization_endpoint,
            redirect_uri=redirect_uri,
            scope=list(SCOPES),
            state=state,
            code_challenge=client.create_code_challenge(code_verifier, "S256"),
            code_challenge_method="S256",
            nonce=nonce,
        )
    except InsecureTransportError:
        log.error("the authorization endpoint %s is not HTTPS", metadata.authorization_endpoint)
        raise ProviderUnavailable() from None
    now = deps.clock()
    async with deps.db.uow() as uow:
        await uow.session.execute(
            delete(OAuthState).where(OAuthState.expires_at < now - PURGE_AFTER)
        )
        uow.session.add(
            OAuthState(
                state_hash=hash_opaque_token(state),
                provider=PROVIDER,
                code_verifier=code_verifier,
                nonce=nonce,
                redirect_uri=redirect_uri,
                created_at=now,
                expires_at=now + STATE_TTL,
            )
        )
        await uow.commit()
    return AuthorizationRequest(authorization_url=url, state=state)


async def finish_google_sign_in(
    deps: Deps,
    *,
    state: str | None,
    code: str | None,
    error: str | None = None,
    issuer: str | None = None,
) -> AuthResult:
    """Complete a sign-in from Google's callback: spend the state, exchange the code, verify the
    ID token, then sign in the linked account, link one by verified email, or create one."""
    settings = deps.settings
    _require_configured(settings)
    if error:
        if state:
            # The state is spent either way, so a refused attempt cannot be resumed later.
            with contextlib.suppress(GoogleSignInFailed):
                await _consume_state(deps, state)
        if error == "access_denied":
            raise GoogleSignInFailed(
                lazy("You did not allow SkillSwap to use your Google account."),
                code="oauth_access_denied",
            )
        raise GoogleSignInFailed(
            lazy("Google could not complete the sign-in. Try again."),
            code="oauth_provider_error",
            extra={"provider_error": error[:100]},
        )
    if not state:
        raise _invalid_state()
    # The state is spent in its own transaction, before the code goes to Google: no transaction
    # is held open across the network, and a flow that fails later cannot be finished twice.
    pending = await _consume_state(deps, state)
    if not code:
        raise ValidationFailed(errors={"code": [lazy("This field is required.")]})
    oidc = provider_for(deps)
    metadata = await oidc.metadata()
    # RFC 9207: a callback naming another issuer was meant for another provider (mix-up attack).
    if issuer is not None and issuer not in metadata.accepted_issuers:
        raise GoogleSignInFailed(
            lazy("The sign-in response came from an unexpected provider."),
            code="oauth_issuer_mismatch",
        )
    id_token = await _exchange_code(deps, metadata, code=code, pending=pending)
    claims = await oidc.verify_id_token(
        id_token, client_ids=(settings.google_client_id,), nonce=pending.nonce
    )
    return await _sign_in_claims(deps, claims)


async def sign_in_with_id_token(deps: Deps, *, id_token: str, nonce: str | None) -> AuthResult:
    """Native sign-in: an ID token a mobile app got from Google's SDK, issued to one of
    GOOGLE_CLIENT_ID and GOOGLE_CLIENT_IDS, signs in (links, creates) as the web flow does.

    `nonce` is the one the app gave the SDK, if it gave one: the token must then carry it.
    """
    audiences = deps.settings.google_audiences
    if not audiences:
        raise OAuthNotConfigured()
    claims = await provider_for(deps).verify_id_token(id_token, client_ids=audiences, nonce=nonce)
    return await _sign_in_claims(deps, claims)


async def _sign_in_claims(deps: Deps, claims: dict[str, Any]) -> AuthResult:
    """Sign in the person verified claims name, looking again if a concurrent sign-in wins."""
    identity = GoogleIdentity.from_claims(claims)
    attempt = 1
    while True:
        try:
            return await _sign_in_identity(deps, identity)
        except IntegrityError:
            if attempt >= ACCOUNT_ATTEMPTS:
                raise
            attempt += 1
            log.info("google sign-in for %s raced another writer; looking again", identity.sub)


def _invalid_state() -> GoogleSignInFailed:
    return GoogleSignInFailed(
        lazy("This sign-in link is not valid. Start again."), code="oauth_state_invalid"
    )


async def _consume_state(deps: Deps, state: str) -> OAuthState:
    """Mark the pending flow of `state` used, or refuse an unknown, spent or expired one."""
    now = deps.clock()
    digest = hash_opaque_token(state)
    async with deps.db.uow() as uow:
        pending = await uow.session.get(OAuthState, digest)
        if pending is None or pending.provider != PROVIDER:
            raise _invalid_state()
        if pending.used_at is None and pending.expires_at <= now:
            raise GoogleSignInFailed(
                lazy("This sign-in link has expired. Start again."), code="oauth_state_expired"
            )
        # Conditional update: of two callbacks racing with one state, exactly one goes on.
        claimed = await uow.session.execute(
            update(OAuthState)
            .where(OAuthState.state_hash == digest, OAuthState.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            raise GoogleSignInFailed(
                lazy("This sign-in link was already used. Start again."), code="oauth_state_used"
            )
        await uow.commit()
    return pending


async def _exchange_code(
    deps: Deps, metadata: ProviderMetadata, *, code: str, pending: OAuthState
) -> str:
    """Trade the authorization code for tokens at the token endpoint; returns the ID token."""
    settings = deps.settings
    client = WebApplicationClient(settings.google_client_id)
    extra: dict[str, str] = {}
    if settings.google_client_secret:
        extra["client_secret"] = settings.google_client_secret
    body = client.prepare_request_body(
        code=code,
        redirect_uri=pending.redirect_uri,
        include_client_id=True,
        code_verifier=pending.code_verifier,
        **extra,
    )
    try:
        response = await deps.http.post(
            metadata.token_endpoint,
            content=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
        )
    except httpx.HTTPError as exc:
        log.error("google token endpoint unreachable: %s", exc)
        raise ProviderUnavailable() from exc
    if response.status_code >= 500:
        log.error("google token endpoint answered %s", response.status_code)
        raise ProviderUnavailable()
    try:
        token = client.parse_request_body_response(response.text)
    except (OAuth2Error, ValueError) as exc:
        log.info("google refused the authorization code: %s", exc)
        raise GoogleSignInFailed(
            lazy("Google did not accept this sign-in. Start again."), code="oauth_code_rejected"
        ) from None
    id_token = token.get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise GoogleSignInFailed(
            lazy("Google did not send an identity token."), code="oauth_code_rejected"
        )
    return id_token


async def _sign_in_identity(deps: Deps, identity: GoogleIdentity) -> AuthResult:
    """One unit of work: find, link or create the account, then issue its token pair."""
    async with deps.db.uow() as uow:
        session = uow.session
        user = await session.scalar(select(User).where(User.google_sub == identity.sub))
        created = False
        if user is None:
            user = await session.scalar(select(User).where(User.email == identity.email))
            if user is None:
                user, created = await _new_user(deps, session, identity), True
        was_verified = created or user.email_verified
        if not created:
            if not user.is_active:
                raise PermissionDenied(lazy("This account is disabled."), code="account_inactive")
            if user.google_sub != identity.sub and await _link_by_email(user, identity):
                await accounts.end_every_session(deps, uow, user.id)
        await session.flush()
        if created:
            # Verified at once (Google vouches for the address): the bonus comes with it.
            await events.emit(deps, uow, events.UserRegistered(user_id=user.id))
        elif not was_verified and user.email_verified:
            await events.emit(deps, uow, events.EmailVerified(user_id=user.id))
        tokens = await accounts.sign_in_user(deps, uow, user)
        await uow.commit()
    return AuthResult(user=user, tokens=tokens)


def _email_unverified() -> GoogleSignInFailed:
    return GoogleSignInFailed(
        lazy("Google has not verified the email address of this account."),
        code="oauth_email_unverified",
    )


async def _link_by_email(user: User, identity: GoogleIdentity) -> bool:
    """Link `user` to the Google account; True when its existing sessions must end."""
    # Only an address Google vouches for may take over an existing account.
    if not identity.email_verified:
        raise _email_unverified()
    if user.google_sub is not None:
        raise Conflict(
            lazy("This email belongs to an account linked to another Google account."),
            code="oauth_account_conflict",
        )
    if not user.email_verified:
        # Someone may have registered this address before its owner, never proving it was
        # theirs; the owner now proves it through Google, so that person's password and
        # sessions must not keep working on the owner's account.
        user.password_hash = None
        user.google_sub = identity.sub
        user.email_verified = True
        return True
    user.google_sub = identity.sub
    user.email_verified = True
    return False


async def _new_user(deps: Deps, session: AsyncSession, identity: GoogleIdentity) -> User:
    # A new account needs an address that reaches its owner: an unverified one would keep the
    # real owner from ever signing up with it.
    if not identity.email or not identity.email_verified:
        raise _email_unverified()
    username = await _free_username(session, identity)
    user = User(
        email=identity.email,
        email_verified=True,
        username=username,
        username_key=username.lower(),
        password_hash=None,
        display_name=identity.name[:80] or username,
        avatar_url=identity.picture,
        locale=identity.locale or deps.settings.default_locale,
        google_sub=identity.sub,
    )
    session.add(user)
    return user


def username_base(identity: GoogleIdentity) -> str:
    """A username stem from the email's local part (or the name), in the allowed characters."""
    for source in (identity.email.split("@")[0], identity.name.replace(" ", ".")):
        stem = re.sub(r"[^A-Za-z0-9_.-]", "", source).strip(".-_")[:32]
        if len(stem) >= 3:
            return stem
    return "user"


async def _free_username(session: AsyncSession, identity: GoogleIdentity) -> str:
    base = username_base(identity)
    candidates = [base] + [f"{base[:27]}_{secrets.randbelow(10_000):04d}" for _ in range(8)]
    candidates = [c for c in candidates if USERNAME_RE.match(c)]
    taken = set(
        (
            await session.scalars(
                select(User.username_key).where(
                    User.username_key.in_([c.lower() for c in candidates])
                )
            )
        ).all()
    )
    for candidate in candidates:
        if candidate.lower() not in taken:
            return candidate
    # Nine names taken at once is next to impossible; a long random one always fits.
    return f"user_{secrets.token_hex(6)}"
