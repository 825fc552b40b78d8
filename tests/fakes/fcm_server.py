"""A local Firebase Cloud Messaging (HTTP v1) that answers like Google's, for push tests.

A real Tornado app on an unused port with a service account of its own (`account_file()`
writes the JSON key file FCM_CREDENTIALS_FILE names). It serves:

- `POST /token`, Google's OAuth token endpoint for the JWT-bearer grant: the assertion must be
  RS256, signed by the account's key (checked against its public key), from the account's
  `client_email`, for this `token_uri`, with the FCM scope, an `exp` at most an hour after
  `iat` and not past. It answers an access token valid `token_lifetime` seconds; anything
  else is a 400 `invalid_grant`, counted in `refused_assertions`.
- `POST /v1/projects/{project_id}/messages:send`: the bearer token must be one it issued and
  unexpired (401 UNAUTHENTICATED otherwise), the project the account's. The message must name
  a token, have string data values (400 INVALID_ARGUMENT naming the field, as FCM does) and be
  at most 4096 bytes. `errors[token] = "UNREGISTERED"` (or any code of `ERRORS`) makes every
  send to that token fail the way FCM fails it, with `retry_after` as Retry-After on 429/503.

What arrived is in `messages`; `token_requests` counts exchanges. `reset()` puts all back.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import tornado.httpserver
import tornado.testing
import tornado.web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"

# FCM error code -> (HTTP status, canonical status, message), as FCM answers them.
ERRORS: dict[str, tuple[int, str, str]] = {
    "UNREGISTERED": (404, "NOT_FOUND", "Requested entity was not found."),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED", "SenderId mismatch"),
    "INVALID_ARGUMENT": (
        400,
        "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token",
    ),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED", "Quota exceeded for sending messages."),
    "UNAVAILABLE": (503, "UNAVAILABLE", "The service is currently unavailable."),
    "INTERNAL": (500, "INTERNAL", "Internal error encountered."),
    "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED", "Auth error from APNS or Web Push"),
}


def new_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


@dataclass
class FakeFcm:
    project_id: str = "skillswap-test"
    client_email: str = "push@skillswap-test.iam.gserviceaccount.com"
    key: rsa.RSAPrivateKey = field(default_factory=new_private_key, repr=False)
    base_url: str = ""
    token_lifetime: int = 3600
    retry_after: int = 30
    errors: dict[str, str] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    token_requests: int = 0
    refused_assertions: list[str] = field(default_factory=list)
    issued: dict[str, float] = field(default_factory=dict)  # access token -> expiry

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    def account(self, **overrides: Any) -> dict[str, Any]:
        """The service-account key file's content (a test may give another key or email)."""
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": "fake-key-1",
            "private_key": pem(self.key),
            "client_email": self.client_email,
            "client_id": "1234567890",
            "token_uri": self.token_uri,
            **overrides,
        }

    def account_file(self, **overrides: Any) -> str:
        path = Path(tempfile.mkdtemp(prefix="skillswap-fcm-")) / "service-account.json"
        path.write_text(json.dumps(self.account(**overrides)), encoding="utf-8")
        return str(path)

    def reset(self) -> None:
        self.token_lifetime = 3600
        self.retry_after = 30
        self.errors.clear()
        self.messages.clear()
        self.token_requests = 0
        self.refused_assertions.clear()
        self.issued.clear()

    def received(self, token: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["token"] == token]


class _TokenHandler(tornado.web.RequestHandler):
    def initialize(self, fcm: FakeFcm) -> None:
        self.fcm = fcm

    def _refuse(self, reason: str) -> None:
        self.fcm.refused_assertions.append(reason)
        self.set_status(400)
        self.finish({"error": "invalid_grant", "error_description": reason})

    def post(self) -> None:
        fcm = self.fcm
        fcm.token_requests += 1
        if self.get_body_argument("grant_type", "") != JWT_BEARER:
            return self._refuse("unsupported grant_type")
        assertion = self.get_body_argument("assertion", "")
        try:
            claims = jwt.decode(
                assertion,
                fcm.key.public_key(),
                algorithms=["RS256"],
                audience=fcm.token_uri,
                issuer=fcm.client_email,
                options={"require": ["iss", "aud", "iat", "exp", "scope"]},
            )
        except jwt.InvalidTokenError as exc:
            return self._refuse(f"Invalid JWT: {type(exc).__name__}: {exc}")
        if FCM_SCOPE not in str(claims.get("scope", "")).split():
            return self._refuse("Invalid scope")
        if int(claims["exp"]) - int(claims["iat"]) > 3600:
            return self._refuse("Invalid JWT: exp more than an hour after iat")
        access = f"ya29.fake-{secrets.token_urlsafe(24)}"
        fcm.issued[access] = time.time() + fcm.token_lifetime
        self.finish(
            {"access_token": access, "expires_in": fcm.token_lifetime, "token_type": "Bearer"}
        )


class _SendHandler(tornado.web.RequestHandler):
    def initialize(self, fcm: FakeFcm) -> None:
        self.fcm = fcm

    def _error(self, status: int, canonical: str, message: str, details: list[Any]) -> None:
        self.set_status(status)
        self.finish(
            {"error": {"code": status, "message": message, "status": canonical, "details": details}}
        )

    def _fcm_error(self, code: str) -> None:
        status, canonical, message = ERRORS[code]
        if status in (429, 503):
            self.set_header("Retry-After", str(self.fcm.retry_after))
        self._error(status, canonical, message, [{"@type": FCM_ERROR, "errorCode": code}])

    def post(self, project_id: str) -> None:
        fcm = self.fcm
        header = self.request.headers.get("Authorization", "")
        access = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
        if fcm.issued.get(access, 0) <= time.time():
            return self._error(
                401, "UNAUTHENTICATED", "Request had invalid authentication credentials.", []
            )
        if project_id != fcm.project_id:
            return self._error(403, "PERMISSION_DENIED", "Permission denied on the project.", [])
        if len(self.request.body) > 4096 + 200:  # the envelope around the message
            return self._error(400, "INVALID_ARGUMENT", "Message is too big", [])
        message = json.loads(self.request.body).get("message") or {}
        token = message.get("token")
        if not isinstance(token, str) or not token:
            return self._fcm_error("INVALID_ARGUMENT")
        for index, value in enumerate((message.get("data") or {}).values()):
            if not isinstance(value, str):
                where = f"message.data[{index}].value"
                text = f"Invalid value at '{where}' (TYPE_STRING), {value}"
                return self._error(
                    400,
                    "INVALID_ARGUMENT",
                    text,
                    [
                        {
                            "@type": BAD_REQUEST,
                            "fieldViolations": [{"field": where, "description": text}],
                        }
                    ],
                )
        payload = {k: message.get(k) for k in ("notification", "data") if k in message}
        size = len(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode())
        if size > 4096:
            return self._error(400, "INVALID_ARGUMENT", "Message is too big", [])
        code = fcm.errors.get(token)
        if code is not None:
            return self._fcm_error(code)
        fcm.messages.append(message)
        self.finish({"name": f"projects/{project_id}/messages/0:{secrets.token_hex(8)}"})


@contextlib.asynccontextmanager
async def running_fcm() -> AsyncIterator[FakeFcm]:
    """The fake FCM on an unused port of this process."""
    fcm = FakeFcm()
    app = tornado.web.Application(
        [
            (r"/token", _TokenHandler, {"fcm": fcm}),
            (r"/v1/projects/([^/]+)/messages:send", _SendHandler, {"fcm": fcm}),
        ]
    )
    server = tornado.httpserver.HTTPServer(app)
    sock, port = tornado.testing.bind_unused_port()
    server.add_sockets([sock])
    fcm.base_url = f"http://127.0.0.1:{port}"
    try:
        yield fcm
    finally:
        server.stop()
        await server.close_all_connections()
