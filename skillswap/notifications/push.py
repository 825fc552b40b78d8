"""Push notifications through Firebase Cloud Messaging's HTTP v1 API.

`FcmClient` holds a service account (FCM_CREDENTIALS_FILE): it signs an RS256 JWT assertion
with the account's key, exchanges it at the account's `token_uri` for an OAuth access token
(the JWT-bearer grant), keeps that token until shortly before it expires, and posts each
message to `{FCM_API_BASE}/v1/projects/{project_id}/messages:send`.

FCM's answers decide what happens to a device: `UNREGISTERED` and `SENDER_ID_MISMATCH` (and
`INVALID_ARGUMENT` when the token is what is invalid) mean the token is dead, and its device
is removed; `QUOTA_EXCEEDED`, `UNAVAILABLE` and `INTERNAL` (and a lost connection) are
transient: `PushRetryable`, with FCM's `Retry-After`, for the caller to retry with backoff.
Anything else is `PushRejected`: retrying would get the same answer.

`push_to_user` and `push_notification` are what a task calls: they ask the user's
preferences, render the title and body in the user's language, send to each device, remove
dead ones, and raise `PushRetryable` naming the devices already reached.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import jwt

from skillswap.i18n import Message, lazy
from skillswap.models import Notification, User
from skillswap.models.notifications import NotificationKind
from skillswap.notifications import devices as device_store
from skillswap.notifications.mailing import translator_for
from skillswap.notifications.preferences import channels_for
from skillswap.notifications.services import notification_record
from skillswap.settings import ConfigError, Settings

if TYPE_CHECKING:
    from skillswap.deps import Deps

log = logging.getLogger("skillswap.push")

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
ASSERTION_LIFETIME_SECONDS = 3600  # the longest Google accepts
TOKEN_REFRESH_MARGIN_SECONDS = 60  # a cached access token is renewed this long before it ends
# FCM refuses a message over 4096 bytes; the margin covers FCM's own encoding of it.
MAX_PAYLOAD_BYTES = 4000
DEAD_TOKEN_CODES = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH"})
TRANSIENT_CODES = frozenset({"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"})
# Data keys FCM reserves (it refuses a message that uses them).
_RESERVED_KEYS = frozenset({"from", "notification", "message_type"})
_RESERVED_PREFIXES = ("google", "gcm")
ELLIPSIS = "…"

# The title of a push, by kind (the body is the notification's own text).
TITLES: Mapping[NotificationKind, Message] = {
    NotificationKind.ORDER_PLACED: lazy("New order"),
    NotificationKind.ORDER_ACCEPTED: lazy("Order accepted"),
    NotificationKind.ORDER_REJECTED: lazy("Order rejected"),
    NotificationKind.ORDER_DELIVERED: lazy("Order delivered"),
    NotificationKind.ORDER_COMPLETED: lazy("Order completed"),
    NotificationKind.ORDER_CANCELLED: lazy("Order cancelled"),
    NotificationKind.ORDER_CHANGES_REQUESTED: lazy("Changes requested"),
    NotificationKind.ORDER_DISPUTED: lazy("Order disputed"),
    NotificationKind.ORDER_RESOLVED: lazy("Dispute resolved"),
    NotificationKind.ORDER_EXPIRED: lazy("Order expired"),
    NotificationKind.ORDER_UPDATED: lazy("Order updated"),
    NotificationKind.CHAT_MESSAGE: lazy("New message"),
    NotificationKind.REVIEW_RECEIVED: lazy("New review"),
    NotificationKind.LESSON_REMINDER: lazy("Lesson reminder"),
}
DEFAULT_TITLE = "SkillSwap"


class PushError(Exception):
    """A push that did not go out."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class PushRetryable(PushError):
    """A transient failure: try again later (not before `retry_after` seconds, when given)."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        retry_after: float | None = None,
        delivered: Collection[int] = (),
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after
        # The devices a retry must skip: they already have the message.
        self.delivered = tuple(delivered)


class PushRejected(PushError):
    """A refusal that a retry would meet again (the message, or our credentials, at fault)."""


class DeadToken(PushError):
    """The push service no longer knows the token: its device goes."""


@dataclass(frozen=True)
class ServiceAccount:
    """The fields of a Google service-account key file that FCM needs."""

    project_id: str
    client_email: str
    private_key: str = field(repr=False)
    token_uri: str
    private_key_id: str = ""

    @classmethod
    def from_file(cls, path: str | Path) -> ServiceAccount:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"FCM_CREDENTIALS_FILE {path}: cannot read it ({exc})") from exc
        missing = [
            name
            for name in ("project_id", "client_email", "private_key", "token_uri")
            if not isinstance(data.get(name), str) or not data.get(name)
        ]
        if missing:
            raise ConfigError(f"FCM_CREDENTIALS_FILE {path}: missing {', '.join(missing)}")
        return cls(
            project_id=data["project_id"],
            client_email=data["client_email"],
            private_key=data["private_key"],
            token_uri=data["token_uri"],
            private_key_id=str(data.get("private_key_id") or ""),
        )


@dataclass(frozen=True)
class PushMessage:
    """What one device is sent: a visible title and body, and string-valued data for the app."""

    title: str
    body: str
    data: Mapping[str, str] = field(default_factory=dict)


def data_strings(data: Mapping[str, Any]) -> dict[str, str]:
    """`data` as FCM takes it: every value a string (None left out), no reserved key."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = str(key)
        if name in _RESERVED_KEYS or name.lower().startswith(_RESERVED_PREFIXES):
            continue
        if value is None:
            continue
        if isinstance(value, str):
            out[name] = value
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, int | float):
            out[name] = str(value)
        else:
            out[name] = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return out


def _payload_size(title: str, body: str, data: Mapping[str, str]) -> int:
    document = {"notification": {"title": title, "body": body}, "data": data}
    return len(json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def fit_message(title: str, body: str, data: Mapping[str, Any]) -> PushMessage:
    """A message under FCM's size limit: the body (then the title) cut short with an ellipsis."""
    strings = data_strings(data)
    if _payload_size(title, "", strings) > MAX_PAYLOAD_BYTES:
        raise PushRejected("the push's data alone is over the size limit", code="TOO_BIG")
    if _payload_size(title, body, strings) <= MAX_PAYLOAD_BYTES:
        return PushMessage(title, body, strings)
    # The longest prefix that fits, found by bisection over characters.
    low, high = 0, len(body)
    while low < high:
        middle = (low + high + 1) // 2
        if _payload_size(title, body[:middle].rstrip() + ELLIPSIS, strings) <= MAX_PAYLOAD_BYTES:
            low = middle
        else:
            high = middle - 1
    return PushMessage(title, body[:low].rstrip() + ELLIPSIS, strings)


def retry_after_seconds(value: str | None, *, now: float) -> float | None:
    """A `Retry-After` header (seconds, or an HTTP date) as seconds from now."""
    if not value:
        return None
    value = value.strip()
    if value.isdecimal():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True)
class FcmFailure:
    """FCM's error answer, read: the FCM error code (else the status) and what it blames."""

    status_code: int
    code: str
    message: str
    token_at_fault: bool


def read_failure(response: httpx.Response) -> FcmFailure:
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    if not isinstance(error, dict):
        error = {}
    code = str(error.get("status") or "")
    fields: list[str] = []
    for detail in error.get("details") or []:
        if not isinstance(detail, dict):
            continue
        if detail.get("@type") == FCM_ERROR_TYPE and detail.get("errorCode"):
            code = str(detail["errorCode"])
        if detail.get("@type") == BAD_REQUEST_TYPE:
            fields += [str(v.get("field", "")) for v in detail.get("fieldViolations") or []]
    message = str(error.get("message") or response.reason_phrase)
    # "The registration token is not a valid FCM registration token" names no field; a bad
    # value elsewhere in the message names its field (`message.data[0].value`).
    token_at_fault = "message.token" in fields or (
        not fields and "registration token" in message.lower()
    )
    if not code:
        code = {429: "QUOTA_EXCEEDED", 503: "UNAVAILABLE"}.get(response.status_code, "")
        if not code and response.status_code >= 500:
            code = "INTERNAL"
    return FcmFailure(response.status_code, code, message, token_at_fault)


class FcmClient:
    """Sends messages through FCM HTTP v1 with one service account (see the module)."""

    def __init__(
        self,
        account: ServiceAccount,
        http: httpx.AsyncClient,
        *,
        api_base: str = "https://fcm.googleapis.com",
        now: Callable[[], float] = time.time,
    ) -> None:
        self.account = account
        self.http = http
        self.api_base = api_base.rstrip("/")
        self.now = now
        self._access_token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def send_url(self) -> str:
        return f"{self.api_base}/v1/projects/{self.account.project_id}/messages:send"

    def assertion(self) -> str:
        """The signed JWT that asks `token_uri` for an access token to FCM."""
        issued = int(self.now())
        headers = {"kid": self.account.private_key_id} if self.account.private_key_id else None
        return jwt.encode(
            {
                "iss": self.account.client_email,
                "scope": FCM_SCOPE,
                "aud": self.account.token_uri,
                "iat": issued,
                "exp": issued + ASSERTION_LIFETIME_SECONDS,
            },
            self.account.private_key,
            algorithm="RS256",
            headers=headers,
        )

    async def access_token(self) -> str:
        """The cached access token, or a new one when it is about to expire."""
        async with self._lock:  # concurrent sends share one exchange
            if self._access_token and self.now() < self._expires_at - TOKEN_REFRESH_MARGIN_SECONDS:
                return self._access_token
            try:
                response = await self.http.post(
                    self.account.token_uri,
                    data={"grant_type": JWT_BEARER_GRANT, "assertion": self.assertion()},
                )
            except httpx.TransportError as exc:
                raise PushRetryable(
                    f"token endpoint unreachable: {exc}", code="UNAVAILABLE"
                ) from exc
            if response.status_code >= 500 or response.status_code == 429:
                raise PushRetryable(
                    f"token endpoint answered {response.status_code}",
                    code="UNAVAILABLE",
                    retry_after=retry_after_seconds(
                        response.headers.get("Retry-After"), now=self.now()
                    ),
                )
            if response.status_code != 200:
                # invalid_grant and the like: the account or its key is wrong.
                raise PushRejected(
                    f"token endpoint refused the assertion: {response.status_code} "
                    f"{response.text[:200]}",
                    code="AUTHENTICATION",
                )
            try:
                answer = response.json()
                token = str(answer["access_token"])
                expires_in = float(answer.get("expires_in", 3600))
            except (ValueError, KeyError, TypeError):
                raise PushRejected("token endpoint answered no access token") from None
            self._access_token = token
            self._expires_at = self.now() + expires_in
            return token

    def _forget_access_token(self, token: str) -> None:
        if self._access_token == token:
            self._access_token = None

    async def send(self, token: str, message: PushMessage) -> str:
        """Send `message` to one device; FCM's name for the sent message.

        Raises DeadToken, PushRetryable or PushRejected (see the module).
        """
        document = {
            "message": {
                "token": token,
                "notification": {"title": message.title, "body": message.body},
                "data": dict(message.data),
            }
        }
        for attempt in (1, 2):
            access = await self.access_token()
            try:
                response = await self.http.post(
                    self.send_url, json=document, headers={"Authorization": f"Bearer {access}"}
                )
            except httpx.TransportError as exc:
                raise PushRetryable(f"FCM unreachable: {exc}", code="UNAVAILABLE") from exc
            if response.status_code == 200:
                return str(response.json().get("name", ""))
            if response.status_code == 401 and attempt == 1:
                # The access token was revoked or expired early: a new one, once.
                self._forget_access_token(access)
                continue
            raise self._error_for(read_failure(response), response)
        raise AssertionError("unreachable")  # pragma: no cover

    def _error_for(self, failure: FcmFailure, response: httpx.Response) -> PushError:
        text = f"FCM answered {failure.status_code} {failure.code}: {failure.message}"
        if failure.code in DEAD_TOKEN_CODES or (
            failure.code == "INVALID_ARGUMENT" and failure.token_at_fault
        ):
            return DeadToken(text, code=failure.code)
        if failure.code in TRANSIENT_CODES:
            return PushRetryable(
                text,
                code=failure.code,
                retry_after=retry_after_seconds(
                    response.headers.get("Retry-After"), now=self.now()
                ),
            )
        return PushRejected(text, code=failure.code)


def fcm_client(settings: Settings, http: httpx.AsyncClient) -> FcmClient | None:
    """The process's FCM client from FCM_CREDENTIALS_FILE and FCM_API_BASE; None: push is off."""
    if not settings.fcm_credentials_file:
        return None
    account = ServiceAccount.from_file(settings.fcm_credentials_file)
    return FcmClient(account, http, api_base=settings.fcm_api_base)


# -- sending a user's notifications --------------------------------------------------------------


@dataclass(frozen=True)
class PushReport:
    """What one push to a user did: the devices reached and removed, or why none was tried."""

    sent: tuple[int, ...] = ()
    removed: tuple[int, ...] = ()
    rejected: tuple[int, ...] = ()
    skipped: str | None = None  # "push_off", "not_wanted", "no_devices"


async def push_to_user(
    deps: Deps,
    *,
    user_id: int,
    kind: NotificationKind,
    text: Message,
    data: Mapping[str, Any] | None = None,
    skip_device_ids: Collection[int] = (),
) -> PushReport:
    """Push `text` to every device of the user who wants `kind` pushed, in their language.

    Dead tokens' devices are removed. When a device met a transient failure, PushRetryable is
    raised after the others were tried, with `delivered` naming every device that has the
    message (give them back as `skip_device_ids` on the retry).
    """
    client = deps.push
    if client is None:
        return PushReport(skipped="push_off")
    async with deps.db.read() as session:
        if "push" not in await channels_for(session, user_id, kind):
            return PushReport(skipped="not_wanted")
        user = await session.get(User, user_id)
        targets = [
            d
            for d in await device_store.devices_of(session, user_id)
            if d.id not in skip_device_ids
        ]
    if user is None or not targets:
        return PushReport(skipped="no_devices")
    translator = translator_for(deps, user)
    title = TITLES[kind].render(translator) if kind in TITLES else DEFAULT_TITLE
    message = fit_message(title, text.render(translator), {"kind": kind.value, **(data or {})})
    sent: list[int] = []
    dead: dict[int, str] = {}
    rejected: list[int] = []
    transient: list[PushRetryable] = []
    for device in targets:
        try:
            await client.send(device.token, message)
        except DeadToken as exc:
            log.info("push to device %s: token dead (%s), removing it", device.id, exc.code)
            dead[device.id] = device.token
        except PushRetryable as exc:
            log.warning("push to device %s failed, to retry: %s", device.id, exc)
            transient.append(exc)
        except PushRejected as exc:
            log.error("push to device %s refused: %s", device.id, exc)
            rejected.append(device.id)
        else:
            sent.append(device.id)
    await device_store.forget_tokens(deps.db, dead.values())
    if transient:
        waits = [exc.retry_after for exc in transient if exc.retry_after is not None]
        raise PushRetryable(
            f"{len(transient)} of {len(targets)} devices to retry: {transient[0]}",
            code=transient[0].code,
            retry_after=max(waits) if waits else None,
            delivered=(*skip_device_ids, *sent),
        )
    return PushReport(sent=tuple(sent), removed=tuple(dead), rejected=tuple(rejected))


async def push_notification(
    deps: Deps, notification_id: int, *, skip_device_ids: Collection[int] = ()
) -> PushReport:
    """Push a stored notification to its user's devices (what the push task runs)."""
    async with deps.db.read() as session:
        notification = await session.get(Notification, notification_id)
        record = notification_record(notification) if notification is not None else None
    if record is None:
        return PushReport(skipped="gone")
    try:
        kind = NotificationKind(record["kind"])
    except ValueError:
        return PushReport(skipped="unknown_kind")
    params = dict(record.get("params") or {})
    plural = record.get("msgid_plural")
    n = params.get("n") if plural else None
    text = Message(record["msgid"], params, plural, n if isinstance(n, int) else None)
    return await push_to_user(
        deps,
        user_id=record["user_id"],
        kind=kind,
        text=text,
        data={"notification_id": record["id"], **(record.get("payload") or {})},
        skip_device_ids=skip_device_ids,
    )
