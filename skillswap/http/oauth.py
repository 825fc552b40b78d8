"""Google sign-in endpoints: /api/auth/oauth/google/ starts the flow, .../callback/ finishes it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from skillswap import google_signin
from skillswap.http.accounts import auth_response
from skillswap.http.base import BaseHandler, public, route


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
    @public
    async def get(self) -> None:
        """Start Google sign-in: a 302 to Google, or `{authorization_url, state}` as JSON.

        Apps send `Accept: application/json` to get the URL instead of a redirect; either way
        Google sends the browser back to the callback endpoint.
        """
        started = await google_signin.start_google_sign_in(
            self.deps, request_base=f"{self.request.protocol}://{self.request.host}"
        )
        if _accepts_json(self.request.headers.get("Accept", "")):
            self.send({"authorization_url": started.authorization_url, "state": started.state})
            return
        self.redirect(started.authorization_url, status=302)


class GoogleSignInCallbackHandler(BaseHandler):
    @public
    async def get(self) -> None:
        """Finish Google sign-in and answer like a password sign-in: user, access, refresh."""
        query = self.parse_query(CallbackQuery)
        result = await google_signin.finish_google_sign_in(
            self.deps, state=query.state, code=query.code, error=query.error, issuer=query.iss
        )
        self.send(auth_response(result))


routes = [
    route("/api/auth/oauth/google/", GoogleSignInStartHandler),
    route("/api/auth/oauth/google/callback/", GoogleSignInCallbackHandler),
]
