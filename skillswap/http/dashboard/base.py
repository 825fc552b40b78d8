"""The dashboard's base handler: a signed-in administrator, xsrf on every form, HTML pages.

Unlike the JSON API (bearer tokens, problem+json), the dashboard is a browser's: a session
cookie, Tornado's `_xsrf` checked on every POST, a strict Content-Security-Policy, and errors
rendered as pages. Actions call the same service functions as the API and show the service's
refusal, translated, on the page of the form that asked.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlencode

import tornado.web
from markupsafe import Markup

from skillswap.admin import audit
from skillswap.api.problems import request_id_for
from skillswap.deps import Deps
from skillswap.errors import AppError
from skillswap.http.base import decode_argument_text
from skillswap.http.dashboard import session as sessions
from skillswap.http.dashboard.formatting import Formats
from skillswap.http.dashboard.labels import Labels
from skillswap.i18n import N_, SUPPORTED_LOCALES, Translator, negotiate_locale
from skillswap.models import User

LANG_COOKIE = "skillswap_admin_lang"
FLASH_COOKIE = "skillswap_admin_flash"
PAGE_SIZE = 25
MAX_PAGE = 1_000_000

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

# What a successful form says on the page it returns to (the cookie names the key only).
DONE_MESSAGES = {
    "saved": N_("Saved."),
    "banned": N_("The user is banned."),
    "unbanned": N_("The user is active again."),
    "deletion_scheduled": N_("The account's deletion is scheduled."),
    "reinstated": N_("The account is kept: its deletion is called off."),
    "refunded": N_("The payment is refunded."),
    "resolved": N_("The dispute is resolved."),
    "adjusted": N_("The wallet is adjusted."),
    "hidden": N_("The skill is hidden."),
    "restored": N_("The skill is listed again."),
    "closed": N_("The report is closed."),
}

_STATUS_TITLES = {
    400: N_("Bad request"),
    403: N_("Permission denied"),
    404: N_("Not found"),
    405: N_("Method not allowed"),
}
_XSRF_REFUSED = N_(
    "This form has expired or did not come from this dashboard. Reload the page and try again."
)


class DashboardHandler(tornado.web.RequestHandler):
    """A dashboard page: only active administrators, signed in by the session cookie."""

    openapi_exclude = True  # pages for people, not part of the API

    # The sign-in page is the one page a signed-out visitor may see.
    signed_out_allowed = False
    nav = ""  # the menu entry this page belongs to
    admin: User | None = None
    dashboard_session: sessions.DashboardSession | None = None
    translator: Translator
    problem: AppError | None = None

    @property
    def deps(self) -> Deps:
        deps: Deps = self.application.settings["deps"]
        return deps

    @property
    def actor(self) -> User:
        """The signed-in administrator (prepare has refused everyone else)."""
        assert self.admin is not None
        return self.admin

    @functools.cached_property
    def request_id(self) -> str:
        return request_id_for(self.request)

    @functools.cached_property
    def fmt(self) -> Formats:
        return Formats(self.translator.locale)

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Referrer-Policy", "same-origin")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def set_cookie(  # type: ignore[override]  # every dashboard cookie gets the same flags
        self, name: str, value: str | bytes, **kwargs: Any
    ) -> None:
        """Every cookie the dashboard sets (the xsrf one too): its path only, HttpOnly,
        SameSite=Strict, and Secure whenever the request came over https."""
        kwargs.update(
            path=sessions.COOKIE_PATH,
            httponly=True,
            samesite="Strict",
            secure=self.request.protocol == "https",
        )
        super().set_cookie(name, value, **kwargs)

    def clear_cookie(self, name: str, **kwargs: Any) -> None:
        super().clear_cookie(name, path=sessions.COOKIE_PATH)

    def decode_argument(self, value: bytes, name: str | None = None) -> str:
        return decode_argument_text(value, name)

    async def prepare(self) -> None:
        self.set_header("X-Request-ID", self.request_id)
        audit.REQUEST_ID.set(self.request_id)
        self.translator = self.deps.catalogs.get(self._choose_locale(None))
        allowed_hosts = self.deps.settings.allowed_hosts
        if allowed_hosts and self.request.host_name not in allowed_hosts:
            raise tornado.web.HTTPError(400)
        if self.request.method == "POST":
            self.check_xsrf_cookie()  # the app does not check it for the bearer-token API
        await self._resume_session()
        if self.admin is not None:
            self.translator = self.deps.catalogs.get(self._choose_locale(self.admin))
        elif not self.signed_out_allowed:
            if self.request.method in ("GET", "HEAD"):
                self.redirect("/admin/login?" + urlencode({"next": self.request.uri or ""}))
                return
            raise tornado.web.HTTPError(403)

    async def _resume_session(self) -> None:
        """Who the session cookie signs in (refreshing its last use), or nobody."""
        found = sessions.unsign(self.deps.settings, self.get_cookie(sessions.COOKIE_NAME))
        if found is None:
            return
        now = int(self.deps.clock().timestamp())
        admin = await sessions.signed_in_admin(self.deps, found, now)
        if admin is None:
            self.clear_cookie(sessions.COOKIE_NAME)
            return
        self.admin = admin
        self.start_session(found.seen(now))

    def start_session(self, session: sessions.DashboardSession) -> None:
        self.dashboard_session = session
        self.set_cookie(sessions.COOKIE_NAME, sessions.sign(self.deps.settings, session))

    def _choose_locale(self, admin: User | None) -> str:
        """`?lang=` (remembered), else the remembered choice, else the admin's, else the browser's."""
        asked = self.get_query_argument("lang", None)
        if asked in SUPPORTED_LOCALES:
            self.set_cookie(LANG_COOKIE, asked)
            return asked
        remembered = self.get_cookie(LANG_COOKIE)
        if remembered in SUPPORTED_LOCALES:
            return str(remembered)
        return negotiate_locale(
            user_locale=admin.locale if admin else None,
            accept_language=self.request.headers.get("Accept-Language"),
            default=self.deps.settings.default_locale,
        )

    # -- input ---------------------------------------------------------------------------------

    def page_number(self) -> int:
        raw = self.get_query_argument("page", "1")
        return int(raw) if raw.isdecimal() and 0 < len(raw) <= 7 and int(raw) > 0 else 1

    def offset(self) -> int:
        return (self.page_number() - 1) * PAGE_SIZE

    def query_text(self, name: str) -> str | None:
        """A filter's value from the query string; empty is no filter."""
        value = self.get_query_argument(name, "").strip()
        return value or None

    def query_id(self, name: str) -> int | None:
        value = self.get_query_argument(name, "").strip()
        return int(value) if value.isdecimal() and len(value) <= 18 else None

    def form(self, *names: str) -> dict[str, str]:
        """The named form fields that were sent (stripped); absent ones are left out."""
        values = {}
        for name in names:
            value = self.get_body_argument(name, None)
            if value is not None:
                values[name] = value.strip()
        return values

    def form_id(self, name: str) -> int:
        """An id from a hidden form field; anything else is 0, which no row has (a 404)."""
        value = (self.get_body_argument(name, "") or "").strip()
        return int(value) if value.isdecimal() and len(value) <= 18 else 0

    # -- output --------------------------------------------------------------------------------

    def url_with(self, **changes: Any) -> str:
        """This page's URL with some query arguments changed (None removes one)."""
        args = {k: self.get_query_argument(k) for k in self.request.query_arguments}
        args.pop("lang", None)
        for name, value in changes.items():
            if value is None or value == "":
                args.pop(name, None)
            else:
                args[name] = str(value)
        query = urlencode(args)
        return self.request.path + ("?" + query if query else "")

    def render_page(self, template: str, **context: Any) -> None:
        """Render `template` inside the layout, in the reader's language."""
        self.finish(self.render_text(template, **context))

    def render_text(self, template: str, **context: Any) -> str:
        translator = self.translator
        jinja = self.application.settings["jinja"]
        flash = self._take_flash()
        return str(
            jinja.get_template(template).render(
                _=translator.gettext,
                gettext=translator.gettext,
                ngettext=translator.ngettext,
                fmt=self.fmt,
                labels=Labels(translator),
                render=translator.text,
                locale=translator.locale,
                direction=translator.direction,
                admin=self.admin,
                nav=self.nav,
                xsrf_form_html=Markup(self.xsrf_form_html()),
                static_url=self.static_url,
                url_with=self.url_with,
                path=self.request.path,
                page=self.page_number(),
                page_size=PAGE_SIZE,
                flash=translator.gettext(DONE_MESSAGES[flash]) if flash else None,
                problem=self._problem_view(),
                **context,
            )
        )

    def _take_flash(self) -> str | None:
        key = self.get_cookie(FLASH_COOKIE)
        if key is None:
            return None
        self.clear_cookie(FLASH_COOKIE)
        return key if key in DONE_MESSAGES else None

    def _problem_view(self) -> dict[str, Any] | None:
        if self.problem is None:
            return None
        translator = self.translator
        return {
            "title": translator.gettext(self.problem.title),
            "detail": translator.text(self.problem.detail),
            "fields": {
                field: [translator.text(m) for m in messages]
                for field, messages in _flat_errors(self.problem.errors).items()
            },
        }

    async def act(self, action: Awaitable[Any], *, done: str, back: str | None = None) -> None:
        """Run a service call for a form: on success back to the page with `done` said; on a
        refusal the same page again, with the refusal (and its status)."""
        try:
            await action
        except AppError as exc:
            self.problem = exc
            self.set_status(exc.status)
            await self.show()
            return
        self.set_cookie(FLASH_COOKIE, done)
        self.redirect(back or self.request.uri or self.request.path, status=303)

    async def show(self) -> None:
        """The page the forms of this handler are on (what GET answers)."""
        raise NotImplementedError

    async def get(self, *args: str) -> None:
        await self.show()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        exc = exc_info[1] if exc_info else None
        if not hasattr(self, "translator"):
            self.translator = self.deps.catalogs.get(self.deps.settings.default_locale)
        if isinstance(exc, AppError):
            status, title, detail = exc.status, exc.title, self.translator.text(exc.detail)
        else:
            status = status_code
            title = _STATUS_TITLES.get(status_code, N_("Something went wrong"))
            detail = self.translator.gettext(
                _XSRF_REFUSED
                if isinstance(exc, tornado.web.HTTPError) and "xsrf" in (exc.log_message or "")
                else N_("The page could not be shown. The error was logged.")
                if status >= 500
                else title
            )
        self.clear()
        self.set_status(status)
        self.set_header("X-Request-ID", self.request_id)
        self.problem = None
        self.finish(
            self.render_text(
                "admin/error.html",
                status=status,
                title=self.translator.gettext(title),
                detail=detail,
                request_id=self.request_id,
            )
        )


def _flat_errors(errors: dict[str, Any], prefix: str = "") -> dict[str, list[Any]]:
    """Field errors as `field.sub: [messages]` (the services may nest them)."""
    flat: dict[str, list[Any]] = {}
    for name, value in errors.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            flat.update(_flat_errors(value, key + "."))
        else:
            flat[key] = list(value) if isinstance(value, list | tuple) else [value]
    return flat
