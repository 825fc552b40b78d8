"""Notification endpoints: the signed-in user's notifications, in their language.

The same notifications arrive live on the WebSocket (`{"type": "notification", ...}`).
"""

from __future__ import annotations

from pydantic import Field

from skillswap.http.base import BaseHandler, path_id, route, takes_query
from skillswap.http.operations import operation
from skillswap.http.query import PageQuery
from skillswap.http.schemas import NotificationOut, Page, Updated
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


routes = [
    route("/api/notifications/", NotificationsHandler),
    route("/api/notifications/read-all/", NotificationsReadAllHandler),
    route(r"/api/notifications/(\d+)/read/", NotificationReadHandler),
]
