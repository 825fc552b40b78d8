"""Signing in to the dashboard and out of it: /admin/login and /admin/logout."""

from __future__ import annotations

from skillswap.accounts import services as accounts
from skillswap.auth.ratelimits import subject_for
from skillswap.errors import InvalidCredentials, TooManyRequests
from skillswap.http.base import route
from skillswap.http.dashboard import session as sessions
from skillswap.http.dashboard.base import DashboardHandler
from skillswap.i18n import lazy

# One answer for a wrong email, a wrong password and a user who is not an administrator.
NOT_SIGNED_IN = lazy("Wrong email or password, or not an administrator.")


def _next_page(target: str | None) -> str:
    """Where to go once signed in: a dashboard page only (never another site)."""
    if target and target.startswith("/admin") and not target.startswith("/admin/login"):
        return target
    return "/admin/"


class LoginHandler(DashboardHandler):
    signed_out_allowed = True

    async def show(self) -> None:
        """The sign-in form (a signed-in administrator goes straight on)."""
        if self.admin is not None and self.problem is None:
            self.redirect(_next_page(self.get_query_argument("next", None)))
            return
        self.render_page(
            "admin/login.html",
            email=self.get_body_argument("email", "") if self.request.method == "POST" else "",
            next=self.get_query_argument("next", ""),
        )

    async def post(self) -> None:
        """Sign in with the API's password check and its throttle; administrators only."""
        email = self.get_body_argument("email", "") or ""
        password = self.get_body_argument("password", "") or ""
        # The API's `login` policy, by address: one budget for both ways of signing in.
        decision = await self.deps.rate_limits.take(
            "login", subject_for(None, self.request.remote_ip)
        )
        if decision is not None:
            for name, value in decision.headers().items():
                self.set_header(name, value)
            if not decision.allowed:
                await self._refuse(decision.refusal())
                return
        try:
            signed = await accounts.login(
                self.deps, identifier=email, password=password, client_ip=self.request.remote_ip
            )
        except TooManyRequests as exc:
            await self._refuse(exc)
            return
        except InvalidCredentials:
            await self._refuse(InvalidCredentials(NOT_SIGNED_IN))
            return
        claims = self.deps.keys.verify_access(signed.tokens.access)
        if not signed.user.is_admin:
            # Signed in to the API's satisfaction, but not allowed here: end what that began.
            await accounts.logout(self.deps, actor=signed.user, access=claims, refresh=None)
            await self._refuse(InvalidCredentials(NOT_SIGNED_IN))
            return
        now = int(self.deps.clock().timestamp())
        self.start_session(sessions.DashboardSession(signed.user.id, claims.session_id, now, now))
        self.redirect(_next_page(self.get_query_argument("next", None)), status=303)

    async def _refuse(self, error: InvalidCredentials | TooManyRequests) -> None:
        self.problem = error
        self.set_status(error.status)
        if "Retry-After" in error.headers:  # not the API's WWW-Authenticate: this is a form
            self.set_header("Retry-After", error.headers["Retry-After"])
        self.admin = None
        await self.show()


class LogoutHandler(DashboardHandler):
    async def post(self) -> None:
        """Sign out: the session id is denied everywhere, so a copy of the cookie dies too."""
        session = self.dashboard_session
        assert session is not None
        await accounts.logout(
            self.deps,
            actor=self.actor,
            access=session.as_claims(self.deps.settings),
            refresh=None,
        )
        await sessions.end_session(self.deps, session)
        self.clear_cookie(sessions.COOKIE_NAME)
        self.redirect("/admin/login", status=303)


routes = [
    route("/admin/login", LoginHandler),
    route("/admin/logout", LogoutHandler),
]
