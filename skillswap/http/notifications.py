"""Notification endpoints: the signed-in user's notifications, in their language.

The same notifications arrive live on the WebSocket (`{"type": "notification", ...}`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from skillswap.http.base import BaseHandler, idempotent, path_id, route, takes_query
from skillswap.http.operations import operation
from skillswap.http.query import PageQuery
from skillswap.http.schemas import DeviceOut, NotificationOut, Page, PreferencesOut, Updated
from skillswap.http.validation import Body
from skillswap.models.delivery import DEVICE_TOKEN_MAX_LENGTH, DevicePlatform
from skillswap.models.notifications import NotificationKind
from skillswap.notifications import devices
from skillswap.notifications import preferences as prefs
from skillswap.notifications import services as notifications


class NotificationQuery(PageQuery):
    unread: bool = Field(default=False, description="Only unread notifications")


class NotificationsHandler(BaseHandler):
    @operation("listNotifications", tag="Notifications", response=Page[NotificationOut], paged=True)
    @takes_query(NotificationQuery)
    async def get(self) -> None:
        """Your notifications, newest first (`?unread=true` for unread only)."""
        query = self.query(NotificationQuery)
        params = self.page_params()
        count, records = await notifications.list_notifications(
            self.deps,
            actor=self.user,
            offset=params.offset,
            limit=params.page_size,
            unread_only=query.unread,
        )
        self.send_page(
            params,
            count=count,
            results=[notifications.notification_view(r, self.translator) for r in records],
        )


class NotificationReadHandler(BaseHandler):
    @operation(
        "markNotificationRead", tag="Notifications", response=NotificationOut, problems=(404,)
    )
    async def post(self, notification_id: str) -> None:
        """Mark one notification read."""
        record = await notifications.mark_read(
            self.deps, actor=self.user, notification_id=path_id(notification_id)
        )
        self.send(notifications.notification_view(record, self.translator))


class NotificationsReadAllHandler(BaseHandler):
    @operation("markAllNotificationsRead", tag="Notifications", response=Updated)
    async def post(self) -> None:
        """Mark every notification read."""
        updated = await notifications.mark_all_read(self.deps, actor=self.user)
        self.send({"updated": updated})


# -- devices -------------------------------------------------------------------------------------


class DeviceBody(Body):
    token: str = Field(
        min_length=1,
        max_length=DEVICE_TOKEN_MAX_LENGTH,
        pattern=r"^[\x21-\x7e]+$",
        description="The app's push token (FCM registration token)",
    )
    platform: Literal["android", "ios", "web"]


class DevicesHandler(BaseHandler):
    @operation("listDevices", tag="Notifications", response=Page[DeviceOut], paged=True)
    @takes_query(PageQuery)
    async def get(self) -> None:
        """Your devices that receive push notifications, the latest registered first."""
        params = self.page_params()
        count, found = await devices.list_devices(
            self.deps, actor=self.user, offset=params.offset, limit=params.page_size
        )
        self.send_page(params, count=count, results=[devices.device_view(d) for d in found])

    @operation(
        "registerDevice",
        tag="Notifications",
        body=DeviceBody,
        response=DeviceOut,
        status=201,
        also={200: DeviceOut},
    )
    @idempotent
    async def post(self) -> None:
        """Register this app's push token (again: 200). A token registered by someone else
        before moves to you; they stop receiving pushes on it."""
        body = self.parse_body(DeviceBody)
        registered = await devices.register_device(
            self.deps, actor=self.user, token=body.token, platform=DevicePlatform(body.platform)
        )
        view = devices.device_view(registered.device)
        self.send(view, status=201 if registered.created else 200, location=self.location_of(view))

    def location_of(self, created: Any) -> str:
        return f"/api/notifications/devices/{created['id']}/"


class DeviceHandler(BaseHandler):
    @operation("getDevice", tag="Notifications", response=DeviceOut, problems=(404,))
    async def get(self, device_id: str) -> None:
        """One of your devices."""
        device = await devices.get_device(self.deps, actor=self.user, device_id=path_id(device_id))
        self.send(devices.device_view(device))

    @operation("deleteDevice", tag="Notifications", status=204, problems=(404,))
    async def delete(self, device_id: str) -> None:
        """Stop push notifications to one of your devices (e.g. on signing out of the app)."""
        await devices.remove_device(self.deps, actor=self.user, device_id=path_id(device_id))
        self.set_status(204)


# -- preferences ---------------------------------------------------------------------------------


class ChannelsBody(Body):
    email: bool
    push: bool


class ChannelsPatchBody(Body):
    email: bool | None = None
    push: bool | None = None


def _kinds_body(name: str, channels: type[BaseModel], doc: str) -> type[Body]:
    fields: dict[str, Any] = {kind.value: (channels | None, None) for kind in NotificationKind}
    built: type[Body] = create_model(name, __base__=Body, __doc__=doc, **fields)
    return built


KindChoices = _kinds_body("KindChoices", ChannelsBody, "Kinds left out return to their defaults.")
KindChanges = _kinds_body("KindChanges", ChannelsPatchBody, "Only the channels given change.")


class ReplacePreferencesBody(Body):
    preferences: KindChoices  # type: ignore[valid-type]


class UpdatePreferencesBody(Body):
    preferences: KindChanges  # type: ignore[valid-type]


def _choices(kinds: BaseModel) -> prefs.Choices:
    given = kinds.model_dump(exclude_unset=True)
    return {
        NotificationKind(kind): {ch: v for ch, v in channels.items() if v is not None}
        for kind, channels in given.items()
    }


def preferences_view(found: prefs.Preferences) -> dict[str, Any]:
    return {
        "preferences": {kind.value: channels.as_dict() for kind, channels in found.items()},
        "fixed": {kind.value: channels.as_dict() for kind, channels in prefs.FIXED.items()},
    }


class PreferencesHandler(BaseHandler):
    @operation("getNotificationPreferences", tag="Notifications", response=PreferencesOut)
    async def get(self) -> None:
        """Which channels (email, push) each kind of notification reaches you on; the live
        WebSocket stream and the list here always get every notification."""
        self.send(preferences_view(await prefs.get_preferences(self.deps, actor=self.user)))

    @operation(
        "replaceNotificationPreferences",
        tag="Notifications",
        body=ReplacePreferencesBody,
        response=PreferencesOut,
    )
    async def put(self) -> None:
        """Set the channels of every kind; kinds left out return to their defaults.
        Security mails (email verification, password reset) cannot be turned off."""
        body = self.parse_body(ReplacePreferencesBody)
        await self._update(_choices(body.preferences), replace=True)

    @operation(
        "updateNotificationPreferences",
        tag="Notifications",
        body=UpdatePreferencesBody,
        response=PreferencesOut,
    )
    async def patch(self) -> None:
        """Change the channels given and keep the others."""
        body = self.parse_body(UpdatePreferencesBody)
        await self._update(_choices(body.preferences), replace=False)

    async def _update(self, choices: prefs.Choices, *, replace: bool) -> None:
        found = await prefs.update_preferences(
            self.deps,
            actor=self.user,
            choices=choices,
            replace=replace,
            error_prefix="preferences.",
        )
        self.send(preferences_view(found))


routes = [
    route("/api/notifications/", NotificationsHandler),
    route("/api/notifications/read-all/", NotificationsReadAllHandler),
    route(r"/api/notifications/(\d+)/read/", NotificationReadHandler),
    route("/api/notifications/devices/", DevicesHandler),
    route(r"/api/notifications/devices/(\d+)/", DeviceHandler),
    route("/api/notifications/preferences/", PreferencesHandler),
]
