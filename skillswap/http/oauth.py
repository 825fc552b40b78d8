"""Google sign-in endpoints: /api/auth/oauth/google/ starts the web flow, .../callback/ finishes
it, .../token/ signs in a native app with the ID token Google's SDK gave it."""

from __future__ import annotations

from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field

from skillswap.accounts import google as google_signin
from skillswap.errors import AppError
from skillswap.http.accounts import auth_response, token_response
from skillswap.http.base import BaseHandler, limited, public, route, takes_query
from skillswap.http.operations import operation
from skillswap.http.schemas import GoogleSignInStart, SignedIn
from skillswap.http.validation import Body


class CallbackQuery(BaseModel):
    """What Google appends to the redirect URI; other parameters it adds are ignored."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    code: str | None = Field(default=None, max_length=2048)
    state: str | None = Field(default=None, max_length=256)
    error: str | None = Field(default=None, max_length=256)
    iss: str | None = Field(default=None, max_length=500)


def _accepts_json(accept: str) -> bool:
    return any(
        part.split(";")[0].strip().lower() == "application/json" for part in accept.split(",")
    )


class GoogleSignInStartHandler(BaseHandler):
    @operation(
        "startGoogleSignIn",
        tag="Accounts",
        response=GoogleSignInStart,
        also={302: None},
        problems=(503,),
    )
    @public
    async def get(self) -> None:
        """Start Google sign-in: a 302 to Google, or `{authorization_url, state}` as JSON.

        Apps send `Accept: application/json` to get the URL instead of a redirect; either way
        Google sends the browser back to the callback endpoint.
        """
        started = await google_signin.start_google_sign_in(self.deps, request_base=self.url_base())
        if _accepts_json(self.request.headers.get("Accept", "")):
            self.send({"authorization_url": started.authorization_url, "state": started.state})
            return
        self.redirect(started.authorization_url, status=302)


class GoogleSignInCallbackHandler(BaseHandler):
    @operation(
        "finishGoogleSignIn",
        tag="Accounts",
        response=SignedIn,
        also={302: None},
        problems=(401, 409, 503),
    )
    @limited("login")
    @public
    @takes_query(CallbackQuery)
    async def get(self) -> None:
        """Finish Google sign-in and answer like a password sign-in: user, access, refresh.

        With OAUTH_WEB_REDIRECT_URL set, the browser is sent on to that page of the web app
        instead, with the outcome in the URL fragment (below).
        """
        handoff = self.deps.settings.oauth_web_redirect_url
        try:
            query = self.query(CallbackQuery)
            result = await google_signin.finish_google_sign_in(
                self.deps, state=query.state, code=query.code, error=query.error, issuer=query.iss
            )
        except AppError as exc:
            if not handoff:
                raise
            self._hand_off(handoff, {"error": exc.code})
            return
        if handoff:
            self._hand_off(handoff, {**token_response(result.tokens), "user_id": result.user.id})
            return
        self.send(auth_response(result))

    def _hand_off(self, page: str, outcome: dict[str, object]) -> None:
        # The fragment never leaves the browser (no server log, no Referer): the page reads it,
        # keeps the tokens and clears it from the address bar with history.replaceState.
        self.redirect(f"{page}#{urlencode(outcome)}", status=302)


class IdTokenBody(Body):
    id_token: str = Field(min_length=1, max_length=8192)
    # The nonce the app gave Google's SDK, when it gave one: the token must then carry it.
    nonce: str | None = Field(default=None, min_length=1, max_length=256)


class GoogleIdTokenSignInHandler(BaseHandler):
    @operation(
        "signInWithGoogleIdToken",
        tag="Accounts",
        body=IdTokenBody,
        response=SignedIn,
        problems=(401, 409, 503),
    )
    @limited("login")
    @public
    async def post(self) -> None:
        """Sign in with an ID token from Google's mobile SDK; answers like a password sign-in."""
        body = self.parse_body(IdTokenBody)
        result = await google_signin.sign_in_with_id_token(
            self.deps, id_token=body.id_token, nonce=body.nonce
        )
        self.send(auth_response(result))


routes = [
    route("/api/auth/oauth/google/", GoogleSignInStartHandler),
    route("/api/auth/oauth/google/callback/", GoogleSignInCallbackHandler),
    route("/api/auth/oauth/google/token/", GoogleIdTokenSignInHandler),
]
