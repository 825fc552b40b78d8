"""A copy of one's data (GDPR articles 15 and 20): asked for, built by a worker, fetched once.

`request_export` records the request (at most one a day: 429 `export_limited` with Retry-After)
and an outbox row; the worker's `build_export` writes a zip to storage (`data.json`, a document
of everything about the person, and `images/`, the files they uploaded), marks it ready and
mails a link valid DATA_EXPORT_TTL_SECONDS. The link's token is derived from the export and
SECRET_KEY, so a retried mail carries the same link; only its hash is stored. Fetching it once
uses it up; `sweep_exports` deletes the files of used and expired exports (in storage, local
disk or S3 alike; the local media handler never serves `exports/`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import logging
import secrets
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from skillswap import ledger
from skillswap.accounts.deletion import DELETED_USER
from skillswap.api.encoding import dumps
from skillswap.auth.tokens import hash_opaque_token
from skillswap.errors import NotFound, TooManyRequests
from skillswap.i18n import Message, lazy
from skillswap.mail.render import MailKind, links_base, render_email
from skillswap.models import (
    ChatMember,
    ChatMessage,
    ChatRoom,
    DataExport,
    Device,
    LedgerEntry,
    LedgerTransfer,
    Notification,
    NotificationPreference,
    Order,
    OrderTransition,
    Payment,
    Review,
    Skill,
    SkillImage,
    User,
)
from skillswap.models.users import ExportStatus
from skillswap.notifications.mailing import deliver_mail, mail_id, translator_for
from skillswap.tasks import outbox
from skillswap.tasks.definitions import OutboxHandler

if TYPE_CHECKING:
    from skillswap.deps import Deps
    from skillswap.i18n import Translator
    from skillswap.tasks.outbox import OutboxJob

log = logging.getLogger("skillswap.accounts.exports")

BUILD_EXPORT = "account.export"
EXPORTS_PREFIX = "exports/"
ONE_A_DAY = timedelta(days=1)
_TOKEN_PURPOSE = b"skillswap:data-export:v1"


@dataclass(frozen=True)
class ExportFile:
    """A downloaded export: its bytes and the name it is saved under."""

    data: bytes
    filename: str


def export_json(export: DataExport) -> dict[str, Any]:
    return {
        "id": export.id,
        "status": export.status,
        "created_at": export.created_at,
        "expires_at": export.expires_at,
    }


async def request_export(deps: Deps, *, actor: User) -> DataExport:
    """Start building a copy of the actor's data; refused (429) within a day of the last."""
    now = deps.clock()
    async with deps.db.uow() as uow:
        # The user's row locked: two requests at once are one export, not two.
        await uow.session.get(User, actor.id, with_for_update=not deps.db.is_sqlite)
        latest = await uow.session.scalar(
            select(DataExport.created_at)
            .where(DataExport.user_id == actor.id)
            .order_by(DataExport.created_at.desc())
            .limit(1)
        )
        if latest is not None and now - latest < ONE_A_DAY:
            wait = int((latest + ONE_A_DAY - now).total_seconds()) + 1
            raise TooManyRequests(
                lazy("You can ask for one copy of your data a day."),
                code="export_limited",
                headers={"Retry-After": str(wait)},
            )
        export = DataExport(user_id=actor.id, status=ExportStatus.BUILDING, created_at=now)
        uow.session.add(export)
        await uow.session.flush()
        await outbox.enqueue(
            uow, BUILD_EXPORT, f"export:{export.id}", {"export_id": export.id}, now=now
        )
        await uow.commit()
    return export


def export_token(secret_key: str, export_id: int, file_key: str) -> str:
    """The download token of one built export (the same on every attempt to mail it)."""
    key = hmac.new(secret_key.encode(), _TOKEN_PURPOSE, hashlib.sha256).digest()
    mac = hmac.new(key, f"{export_id}:{file_key}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


# -- building it (a worker) --------------------------------------------------------------------


async def build_export(deps: Deps, job: OutboxJob) -> None:
    """Build the zip (once), store it, mark the export ready and mail the link."""
    export_id = int(job.payload["export_id"])
    async with deps.db.read() as session:
        export = await session.get(DataExport, export_id)
        user = None if export is None else await session.get(User, export.user_id)
    if export is None or user is None:
        return
    if export.status == ExportStatus.BUILDING:
        await _build(deps, export, user)
        async with deps.db.read() as session:
            export = await session.get(DataExport, export_id)
    if export is None or export.status != ExportStatus.READY or export.file_key is None:
        return
    if user.deleted_at is not None:
        return  # erased meanwhile: its address receives nothing
    settings = deps.settings
    message = render_email(
        MailKind.DATA_EXPORT_READY,
        to=user.email,
        translator=translator_for(deps, user),
        base_url=links_base(settings),
        context={
            "name": user.display_name or user.username,
            "token": export_token(settings.secret_key, export.id, export.file_key),
            "ttl_seconds": settings.data_export_ttl_seconds,
        },
        message_id=mail_id(deps, job),
    )
    await deliver_mail(deps, job, message)


async def _build(deps: Deps, export: DataExport, user: User) -> None:
    translator = translator_for(deps, user)
    async with deps.db.read() as session:
        document, images = await collect_data(session, user, translator, now=deps.clock())
    files: list[tuple[str, bytes]] = []
    for path, key in images:
        try:
            files.append((path, await deps.storage.load(key)))
        except FileNotFoundError:
            log.warning("export %d: image %s is missing from storage", export.id, key)
    data = await asyncio.to_thread(_zip, document, files)
    key = f"{EXPORTS_PREFIX}{user.id}/{secrets.token_hex(16)}.zip"
    await deps.storage.save(key, data, content_type="application/zip")
    now = deps.clock()
    token = export_token(deps.settings.secret_key, export.id, key)
    async with deps.db.uow() as uow:
        done = await uow.session.execute(
            update(DataExport)
            .where(DataExport.id == export.id, DataExport.status == ExportStatus.BUILDING)
            .values(
                status=ExportStatus.READY,
                file_key=key,
                token_hash=hash_opaque_token(token),
                expires_at=now + timedelta(seconds=deps.settings.data_export_ttl_seconds),
            )
        )
        await uow.commit()
    if done.rowcount != 1:  # type: ignore[attr-defined]
        await deps.storage.delete(key)  # another run built it first: its file is the one


def _zip(document: dict[str, Any], files: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data.json", dumps(document))
        for path, data in files:
            archive.writestr(path, data)
    return buffer.getvalue()


async def collect_data(
    session: AsyncSession, user: User, translator: Translator, *, now: datetime
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Everything about `user` as one JSON document, and their images as (path in the zip,
    storage key)."""
    skills, images = await _skills(session, user.id)
    document = {
        "exported_at": now,
        "profile": _profile(user),
        "skills": skills,
        "orders": await _orders(session, user.id),
        "reviews_given": await _reviews(session, Review.reviewer_id == user.id),
        "reviews_received": await _reviews(session, Review.reviewee_id == user.id),
        "chat_rooms": await _chat(session, user.id, translator),
        "notifications": await _notifications(session, user.id, translator),
        "payments": await _payments(session, user.id),
        "ledger_entries": await _ledger_entries(session, user.id),
        "devices": await _devices(session, user.id),
        "preferences": await _preferences(session, user.id),
    }
    return document, images


def _profile(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "email_verified": user.email_verified,
        "username": user.username,
        "display_name": user.display_name,
        "bio": user.bio,
        "avatar_url": user.avatar_url,
        "phone": user.phone,
        "locale": user.locale,
        "is_verified": user.is_verified,
        "signs_in_with_google": user.google_sub is not None,
        "rating_average": user.rating_average,
        "rating_count": user.rating_count,
        "created_at": user.created_at,
        "deletion_scheduled_for": user.deletion_scheduled_for,
    }


def _columns(row: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(row, name) for name in names}


_SKILL_FIELDS = (
    "id", "category_id", "title_en", "title_ar", "description_en", "description_ar",
    "price_points", "level", "languages", "tags", "delivery_days", "status",
    "moderation_note", "rating_average", "rating_count", "orders_completed", "created_at",
    "updated_at", "deleted_at",
)  # fmt: skip


async def _skills(
    session: AsyncSession, user_id: int
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    skills = list(
        await session.scalars(select(Skill).where(Skill.owner_id == user_id).order_by(Skill.id))
    )
    found = await session.scalars(
        select(SkillImage)
        .where(SkillImage.skill_id.in_([s.id for s in skills]))
        .order_by(SkillImage.skill_id, SkillImage.position, SkillImage.id)
    )
    by_skill: dict[int, list[SkillImage]] = {}
    for image in found:
        by_skill.setdefault(image.skill_id, []).append(image)
    documents, files = [], []
    for skill in skills:
        shown = []
        for image in by_skill.get(skill.id, []):
            path = f"images/{skill.id}/{image.storage_key.rsplit('/', 1)[-1]}"
            files.append((path, image.storage_key))
            shown.append(
                {
                    "id": image.id,
                    "file": path,
                    "content_type": image.content_type,
                    "width": image.width,
                    "height": image.height,
                    "created_at": image.created_at,
                }
            )
        documents.append({**_columns(skill, _SKILL_FIELDS), "images": shown})
    return documents, files


_ORDER_FIELDS = (
    "id", "buyer_id", "seller_id", "skill_id", "status", "price_points", "requirements",
    "change_requests", "deadline_at", "resolution", "seller_points", "fee_points",
    "refunded_points", "created_at", "updated_at", "completed_at",
)  # fmt: skip
_TRANSITION_FIELDS = ("action", "from_status", "to_status", "actor_id", "note", "created_at")


async def _orders(session: AsyncSession, user_id: int) -> list[dict[str, Any]]:
    orders = list(
        await session.scalars(
            select(Order)
            .where(or_(Order.buyer_id == user_id, Order.seller_id == user_id))
            .order_by(Order.id)
        )
    )
    steps = await session.scalars(
        select(OrderTransition)
        .where(OrderTransition.order_id.in_([o.id for o in orders]))
        .order_by(OrderTransition.order_id, OrderTransition.id)
    )
    history: dict[int, list[dict[str, Any]]] = {}
    for step in steps:
        history.setdefault(step.order_id, []).append(_columns(step, _TRANSITION_FIELDS))
    return [
        {
            **_columns(order, _ORDER_FIELDS),
            "role": "buyer" if order.buyer_id == user_id else "seller",
            "history": history.get(order.id, []),
        }
        for order in orders
    ]


_REVIEW_FIELDS = (
    "id", "order_id", "reviewer_id", "reviewee_id", "skill_id", "reviewer_role", "rating",
    "comment", "created_at",
)  # fmt: skip


async def _reviews(session: AsyncSession, condition: Any) -> list[dict[str, Any]]:
    found = await session.scalars(select(Review).where(condition).order_by(Review.id))
    return [_columns(review, _REVIEW_FIELDS) for review in found]


async def _chat(
    session: AsyncSession, user_id: int, translator: Translator
) -> list[dict[str, Any]]:
    """Each room the user is in, with its members and every message they could read there."""
    rooms = list(
        await session.scalars(
            select(ChatRoom)
            .join(ChatMember, ChatMember.room_id == ChatRoom.id)
            .where(ChatMember.user_id == user_id)
            .order_by(ChatRoom.id)
        )
    )
    room_ids = [room.id for room in rooms]
    members: dict[int, list[dict[str, Any]]] = {}
    for room_id, member in await session.execute(
        select(ChatMember.room_id, User)
        .join(User, User.id == ChatMember.user_id)
        .where(ChatMember.room_id.in_(room_ids))
        .order_by(ChatMember.room_id, User.id)
    ):
        members.setdefault(room_id, []).append(
            {
                "id": member.id,
                "username": member.username,
                "display_name": translator.gettext(DELETED_USER)
                if member.deleted_at is not None
                else member.display_name,
            }
        )
    messages: dict[int, list[dict[str, Any]]] = {}
    for message in await session.scalars(
        select(ChatMessage)
        .where(ChatMessage.room_id.in_(room_ids))
        .order_by(ChatMessage.room_id, ChatMessage.id)
    ):
        messages.setdefault(message.room_id, []).append(
            {
                "id": message.id,
                "sender_id": message.sender_id,
                "mine": message.sender_id == user_id,
                "body": message.body,
                "created_at": message.created_at,
            }
        )
    return [
        {
            "id": room.id,
            "kind": room.kind,
            "order_id": room.order_id,
            "members": members.get(room.id, []),
            "messages": messages.get(room.id, []),
        }
        for room in rooms
    ]


async def _notifications(
    session: AsyncSession, user_id: int, translator: Translator
) -> list[dict[str, Any]]:
    found = await session.scalars(
        select(Notification).where(Notification.user_id == user_id).order_by(Notification.id)
    )
    documents = []
    for notification in found:
        params = dict(notification.params or {})
        plural = notification.msgid_plural
        n = params.get("n") if plural else None
        text = Message(notification.msgid, params, plural, n if isinstance(n, int) else None)
        documents.append(
            {
                "id": notification.id,
                "kind": notification.kind,
                "text": text.render(translator),
                "payload": notification.payload or {},
                "created_at": notification.created_at,
                "read_at": notification.read_at,
            }
        )
    return documents


_PAYMENT_FIELDS = (
    "id", "gateway", "status", "points", "amount_minor", "currency", "refunded_minor",
    "reference", "created_at", "settled_at",
)  # fmt: skip


async def _payments(session: AsyncSession, user_id: int) -> list[dict[str, Any]]:
    found = await session.scalars(
        select(Payment).where(Payment.user_id == user_id).order_by(Payment.id)
    )
    return [_columns(payment, _PAYMENT_FIELDS) for payment in found]


async def _ledger_entries(session: AsyncSession, user_id: int) -> list[dict[str, Any]]:
    wallet_id = await ledger.find_wallet(session, user_id)
    if wallet_id is None:
        return []
    rows = await session.execute(
        select(LedgerEntry, LedgerTransfer)
        .join(LedgerTransfer, LedgerTransfer.id == LedgerEntry.transfer_id)
        .where(LedgerEntry.account_id == wallet_id)
        .order_by(LedgerEntry.id)
    )
    return [
        {
            "id": entry.id,
            "transfer_id": entry.transfer_id,
            "kind": transfer.kind,
            "amount": entry.amount,
            "balance_after": entry.balance_after,
            "order_id": transfer.order_id,
            "payment_id": transfer.payment_id,
            "created_at": entry.created_at,
        }
        for entry, transfer in rows
    ]


async def _devices(session: AsyncSession, user_id: int) -> list[dict[str, Any]]:
    found = await session.scalars(select(Device).where(Device.user_id == user_id))
    return [
        _columns(device, ("id", "platform", "token", "created_at", "last_seen_at"))
        for device in found
    ]


async def _preferences(session: AsyncSession, user_id: int) -> list[dict[str, Any]]:
    found = await session.scalars(
        select(NotificationPreference)
        .where(NotificationPreference.user_id == user_id)
        .order_by(NotificationPreference.kind)
    )
    return [_columns(choice, ("kind", "email", "push")) for choice in found]


# -- fetching it, and the sweep ----------------------------------------------------------------


def export_not_found() -> NotFound:
    return NotFound(
        lazy("This download link is not valid, was already used or has expired."),
        code="export_not_found",
    )


async def download_export(deps: Deps, *, token: str) -> ExportFile:
    """The export the mailed link names, once: the link is spent and the file deleted."""
    now = deps.clock()
    digest = hash_opaque_token(token)
    async with deps.db.read() as session:
        export = await session.scalar(select(DataExport).where(DataExport.token_hash == digest))
    if (
        export is None
        or export.status != ExportStatus.READY
        or export.file_key is None
        or export.expires_at is None
        or export.expires_at <= now
    ):
        raise export_not_found()
    try:
        data = await deps.storage.load(export.file_key)
    except FileNotFoundError:
        raise export_not_found() from None
    async with deps.db.uow() as uow:
        spent = await uow.session.execute(
            update(DataExport)
            .where(DataExport.id == export.id, DataExport.status == ExportStatus.READY)
            .values(status=ExportStatus.USED, used_at=now)
        )
        if spent.rowcount != 1:  # type: ignore[attr-defined]
            raise export_not_found()  # fetched at the same moment by another request
        await uow.commit()
    await _delete_file(deps, export.id, export.file_key)
    return ExportFile(data, f"skillswap-data-{export.user_id}-{now:%Y%m%d}.zip")


async def _delete_file(deps: Deps, export_id: int, key: str) -> None:
    """Delete an export's file, then forget its key (a failure leaves it for the sweep)."""
    await deps.storage.delete(key)
    async with deps.db.uow() as uow:
        await uow.session.execute(
            update(DataExport).where(DataExport.id == export_id).values(file_key=None)
        )
        await uow.commit()


async def sweep_exports(deps: Deps, *, now: datetime) -> int:
    """Ready exports past their time expire; the files of spent and expired ones go."""
    async with deps.db.uow() as uow:
        await uow.session.execute(
            update(DataExport)
            .where(DataExport.status == ExportStatus.READY, DataExport.expires_at <= now)
            .values(status=ExportStatus.EXPIRED)
        )
        await uow.commit()
    async with deps.db.read() as session:
        leftovers = list(
            await session.execute(
                select(DataExport.id, DataExport.file_key).where(
                    and_(
                        DataExport.status.in_((ExportStatus.USED, ExportStatus.EXPIRED)),
                        DataExport.file_key.is_not(None),
                    )
                )
            )
        )
    for export_id, key in leftovers:
        if key is not None:
            await _delete_file(deps, export_id, key)
    return len(leftovers)


HANDLERS: dict[str, OutboxHandler] = {BUILD_EXPORT: build_export}
