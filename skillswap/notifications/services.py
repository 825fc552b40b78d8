"""Notifications: how any feature tells a user something - stored with the change, then live.

`notify` writes the row inside the caller's unit of work, so a notification exists exactly when
the change that caused it committed; it reaches the user's open connections (on any node) only
after that commit. The text is kept as its English source and parameters and rendered in the
reader's locale each time it is read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Table, delete, func, insert, select, update

from skillswap.api.encoding import iso
from skillswap.db import CompiledStatement, UnitOfWork
from skillswap.errors import NotFound
from skillswap.i18n import Message, Translator, lazy
from skillswap.models import Notification, User
from skillswap.models.notifications import NotificationKind
from skillswap.notifications.outgoing import enqueue_notification, needs_delivery

if TYPE_CHECKING:
    from skillswap.deps import Clock, Deps, Publisher

NotificationRecord = dict[str, Any]


def notification_record(notification: Notification) -> NotificationRecord:
    """The stored notification as plain JSON data (what crosses nodes and is rendered later)."""
    return {
        "id": notification.id,
        "user_id": notification.user_id,
        "kind": notification.kind,
        "msgid": notification.msgid,
        "msgid_plural": notification.msgid_plural,
        "params": notification.params or {},
        "payload": notification.payload or {},
        "created_at": iso(notification.created_at),
        "read_at": iso(notification.read_at),
    }


def notification_view(record: NotificationRecord, translator: Translator) -> dict[str, Any]:
    """What the owner sees: the text in their language, the machine payload, read state."""
    params = dict(record.get("params") or {})
    plural = record.get("msgid_plural")
    n = params.get("n") if plural else None
    text = Message(record["msgid"], params, plural, n if isinstance(n, int) else None)
    return {
        "id": record["id"],
        "kind": record["kind"],
        "text": text.render(translator),
        "payload": record.get("payload") or {},
        "read": record.get("read_at") is not None,
        "created_at": record["created_at"],
        "read_at": record.get("read_at"),
    }


_notifications: Table = Notification.__table__  # type: ignore[assignment]
_INSERT_NOTIFICATION = CompiledStatement(insert(_notifications).returning(_notifications.c.id))


class Notifying(Protocol):
    """What `notify` needs: the time, and live delivery after the commit (a `Deps` is one)."""

    @property
    def clock(self) -> Clock: ...

    @property
    def publisher(self) -> Publisher: ...

    @property
    def pushes(self) -> bool:
        """Whether push is configured (else a kind without a mail needs no delivery row)."""
        ...


async def notify(
    deps: Notifying,
    uow: UnitOfWork,
    *,
    user_id: int,
    kind: NotificationKind,
    text: Message,
    payload: dict[str, Any] | None = None,
    group_key: str | None = None,
) -> NotificationRecord:
    """Store a notification in the caller's transaction; deliver it live once that commits.

    Its mail and push are an outbox row of the same transaction, run by a worker.
    """
    values = notification_values(
        deps, user_id=user_id, kind=kind, text=text, payload=payload, group_key=group_key
    )
    # One constant Core statement with bound values, no ORM: it runs inside other features'
    # hot transactions, and a statement built per call would be re-keyed for the compile cache.
    conn = await uow.session.connection()
    notification_id = await _INSERT_NOTIFICATION.scalar(conn, values)
    if needs_delivery(kind, pushes=deps.pushes):
        await enqueue_notification(uow, notification_id, now=values["created_at"])
    return announce(deps, uow, notification_id, values)


def notification_values(
    deps: Notifying,
    *,
    user_id: int,
    kind: NotificationKind,
    text: Message,
    payload: dict[str, Any] | None = None,
    group_key: str | None = None,
) -> dict[str, Any]:
    """Every column of a new notification but its id."""
    return {
        "user_id": user_id,
        "kind": kind,
        "msgid": text.msgid,
        "msgid_plural": text.plural,
        "params": dict(text.params),
        "payload": payload or {},
        "group_key": group_key,
        "created_at": deps.clock(),
    }


def announce(
    deps: Notifying, uow: UnitOfWork, notification_id: int, values: dict[str, Any]
) -> NotificationRecord:
    """The stored notification's record, delivered live once the caller's transaction commits.

    For `notify`, and for a statement of the caller's that stored the notification `values`
    (and its outbox row, if `needs_delivery`) among other writes.
    """
    user_id = values["user_id"]
    record: NotificationRecord = {
        "id": notification_id,
        "user_id": user_id,
        "kind": values["kind"],
        "msgid": values["msgid"],
        "msgid_plural": values["msgid_plural"],
        "params": values["params"],
        "payload": values["payload"],
        "created_at": iso(values["created_at"]),
        "read_at": None,
    }

    async def deliver() -> None:
        deps.publisher.publish_notification(user_id, record)

    uow.after_commit(deliver)
    return record


async def take_unread_group(
    uow: UnitOfWork, *, user_id: int, group_key: str
) -> list[dict[str, Any]]:
    """Remove the user's unread notifications of `group_key` (to be replaced by a newer one).

    Returns their parameters, so the replacement can say how many it stands for.
    """
    result = await uow.session.execute(
        delete(Notification)
        .where(
            Notification.user_id == user_id,
            Notification.group_key == group_key,
            Notification.read_at.is_(None),
        )
        .returning(Notification.params)
    )
    return [dict(params or {}) for (params,) in result]


async def list_notifications(
    deps: Deps, *, actor: User, offset: int, limit: int, unread_only: bool = False
) -> tuple[int, list[NotificationRecord]]:
    """The actor's notifications, newest first, with the total count."""
    conditions = [Notification.user_id == actor.id]
    if unread_only:
        conditions.append(Notification.read_at.is_(None))
    async with deps.db.read() as session:
        count = await session.scalar(
            select(func.count()).select_from(Notification).where(*conditions)
        )
        rows = await session.scalars(
            select(Notification)
            .where(*conditions)
            .order_by(Notification.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return int(count or 0), [notification_record(n) for n in rows]


async def unread_count(deps: Deps, *, actor: User) -> int:
    """How many of the actor's notifications are unread."""
    async with deps.db.read() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.user_id == actor.id, Notification.read_at.is_(None))
        )
    return int(count or 0)


async def mark_read(deps: Deps, *, actor: User, notification_id: int) -> NotificationRecord:
    """Mark one of the actor's notifications read (someone else's is not found)."""
    async with deps.db.uow() as uow:
        notification = await uow.session.scalar(
            select(Notification).where(
                Notification.id == notification_id, Notification.user_id == actor.id
            )
        )
        if notification is None:
            raise NotFound(lazy("No such notification."), code="notification_not_found")
        if notification.read_at is None:
            notification.read_at = deps.clock()
        record = notification_record(notification)
        await uow.commit()
    return record


async def mark_all_read(deps: Deps, *, actor: User) -> int:
    """Mark every unread notification of the actor read; returns how many changed."""
    async with deps.db.uow() as uow:
        result = await uow.session.execute(
            update(Notification)
            .where(Notification.user_id == actor.id, Notification.read_at.is_(None))
            .values(read_at=deps.clock())
        )
        await uow.commit()
    return int(getattr(result, "rowcount", 0) or 0)
