"""The one error hierarchy: every failure a client may see, with a stable code and status."""

from __future__ import annotations

from typing import Any

from skillswap.i18n import N_, Message, Translator, lazy

FieldErrors = dict[str, list[Message]]
PROBLEM_TYPE_BASE = "https://skillswap.dev/problems/"
# The members RFC 9457 defines, and the two every problem here adds: `extra` never replaces them.
PROBLEM_MEMBERS = frozenset(
    {"type", "title", "status", "detail", "instance", "code", "request_id", "errors"}
)


class AppError(Exception):
    """A failure with a stable machine `code`, an HTTP status and a translatable text."""

    status: int = 400
    code: str = "bad_request"
    title: str = N_("Bad request")
    default_detail: str = N_("The request could not be processed.")

    def __init__(
        self,
        detail: Message | str | None = None,
        *,
        errors: FieldErrors | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        self.detail: Message = (
            detail if isinstance(detail, Message) else lazy(detail or self.default_detail)
        )
        self.errors = errors or {}
        self.extra = extra or {}
        clashes = PROBLEM_MEMBERS.intersection(self.extra)
        if clashes:
            raise ValueError(f"extra members would replace problem members: {sorted(clashes)}")
        self.headers = headers or {}
        if code:
            self.code = code
        super().__init__(self.detail.msgid)


class ValidationFailed(AppError):
    status = 400
    code = "validation_error"
    title = N_("Invalid input")
    default_detail = N_("Some fields are not valid.")


class BadRequest(AppError):
    status = 400
    code = "bad_request"


class NotAuthenticated(AppError):
    status = 401
    code = "not_authenticated"
    title = N_("Authentication required")
    default_detail = N_("Sign in to continue.")

    def __init__(self, detail: Message | str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": 'Bearer realm="skillswap"'})
        super().__init__(detail, **kwargs)


class InvalidCredentials(NotAuthenticated):
    code = "invalid_credentials"
    title = N_("Invalid credentials")
    default_detail = N_("The email, username or password is not correct.")


class InvalidToken(NotAuthenticated):
    code = "invalid_token"
    title = N_("Invalid token")
    default_detail = N_("The token is invalid, expired or revoked.")
    # RFC 6750 3.1: a token was presented and refused (no `error` when none was presented).
    www_authenticate = 'Bearer realm="skillswap", error="invalid_token"'

    def __init__(self, detail: Message | str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": self.www_authenticate})
        super().__init__(detail, **kwargs)


class TokenExpired(InvalidToken):
    """A genuine access token past its expiry: refresh it (anything else: sign in again)."""

    code = "token_expired"
    title = N_("Token expired")
    default_detail = N_("The access token has expired. Refresh it and try again.")
    www_authenticate = (
        'Bearer realm="skillswap", error="invalid_token", error_description="expired"'
    )


class PaymentRequired(AppError):
    status = 402
    code = "insufficient_points"
    title = N_("Not enough points")


class PermissionDenied(AppError):
    status = 403
    code = "permission_denied"
    title = N_("Permission denied")
    default_detail = N_("You are not allowed to do this.")


class NotFound(AppError):
    status = 404
    code = "not_found"
    title = N_("Not found")
    default_detail = N_("The requested resource does not exist.")


class MethodNotAllowed(AppError):
    status = 405
    code = "method_not_allowed"
    title = N_("Method not allowed")
    default_detail = N_("This method is not allowed on this resource.")


class Conflict(AppError):
    status = 409
    code = "conflict"
    title = N_("Conflict")
    default_detail = N_("The request conflicts with the current state.")


class PayloadTooLarge(AppError):
    status = 413
    code = "payload_too_large"
    title = N_("Request too large")
    default_detail = N_("The request body is larger than allowed.")


class RequestHeadersTooLarge(AppError):
    status = 431
    code = "request_headers_too_large"
    title = N_("Request headers too large")
    default_detail = N_("The request headers are larger than allowed.")


class UnsupportedMediaType(AppError):
    status = 415
    code = "unsupported_media_type"
    title = N_("Unsupported media type")
    default_detail = N_("Send the body as application/json.")


class TooManyRequests(AppError):
    status = 429
    code = "rate_limited"
    title = N_("Too many requests")
    default_detail = N_("Slow down and try again shortly.")


class ServiceUnavailable(AppError):
    status = 503
    code = "service_unavailable"
    title = N_("Service unavailable")
    default_detail = N_("A service this request needs is not available.")


def problem_document(
    error: AppError, translator: Translator, *, instance: str, request_id: str | None
) -> dict[str, Any]:
    """`error` as an RFC 9457 problem in the caller's language."""
    t = translator
    document: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + error.code,
        "title": t.gettext(error.title),
        "status": error.status,
        "detail": t.text(error.detail),
        "code": error.code,
        "instance": instance,
        "request_id": request_id,
    }
    if error.errors:
        document["errors"] = {
            name: [t.text(message) for message in messages]
            for name, messages in error.errors.items()
        }
    for name, value in error.extra.items():
        document.setdefault(name, value)  # never replaces a member above
    return document
