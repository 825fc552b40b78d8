"""The unread-chat digest: one mail about a room's messages to a member who left them unread.

The scheduler's `chat_digest` job (`enqueue_digests`) picks the members to mail: messages
unread in a room (its `last_seq` past the member's `last_read_seq`), the oldest of those not yet
covered by a digest older than CHAT_DIGEST_DELAY_SECONDS (someone online reads them before
that), no digest for that room in the last hour, email wanted for chat messages, and no
connection open right now. Presence is the realtime service's: in Redis, shared by every node,
so the scheduler process sees who is connected anywhere; on the embedded default the scheduler
runs inside `serve` and its own counts are the truth. (A separate `skillswap scheduler` on
SQLite without Redis sees no one online and relies on the delay and the unread state alone.)

For each member picked it moves `digested_seq` to the room's newest message and writes a
"mail.chat_digest" outbox row, in one transaction: a message is covered by one digest at most
(it triggers and is quoted in that one only), and what arrives afterwards goes in the next one.
The row's key names the room, the member and the hour, so a doubled run adds nothing. The
handler (`send_chat_digest`) reads, when it runs, what is still unread of what the digest covers
and how many messages are unread in all, and sends nothing if the member read the covered ones
meanwhile (or turned chat mails off).

One run reads its candidates a page at a time (one query, one presence lookup and one write
per page, never a query per member) and enqueues at most CHAT_DIGEST_BATCH_SIZE mails.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import ColumnElement, Table, and_, bindparam, case, or_, select, update

from skillswap.mail.render import MailKind, links_base, render_email
from skillswap.models import ChatMember, ChatMessage, ChatRoom, NotificationPreference, User
from skillswap.models.notifications import NotificationKind
from skillswap.notifications.mailing import deliver_mail, mail_id, translator_for
from skillswap.notifications.preferences import channels_for, default_channels
from skillswap.tasks import outbox
from skillswap.tasks.definitions import OutboxHandler, PermanentTaskError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from skillswap.deps import Deps
    from skillswap.tasks.outbox import OutboxJob

DIGEST_KIND = "mail.chat_digest"
DIGEST_GAP = timedelta(hours=1)  # one digest per member and room within this, at most
# Rooms quiet for longer are not looked at (the room index keeps the scan to recent activity):
# what was left unread then, while its reader was online throughout, is too old to mail.
QUIET_ROOM = timedelta(days=2)
MAX_PAGES = 10  # candidate pages one run reads (online members do not fill a mail's place)
PREVIEW_MESSAGES = 3  # the latest messages a digest quotes
PREVIEW_CHARS = 200  # each quoted message is cut to this
MAX_SENDERS = 3  # names a digest lists as having written

_members = cast(Table, ChatMember.__table__)
_rooms = cast(Table, ChatRoom.__table__)
_messages = cast(Table, ChatMessage.__table__)
_users = cast(Table, User.__table__)
_preferences = cast(Table, NotificationPreference.__table__)


@dataclass(frozen=True)
class Candidate:
    """A member with messages unread and not yet digested, the oldest past the delay."""

    room_id: int
    user_id: int
    last_seq: int  # the room's newest message: what this digest covers up to
    covered_seq: int  # what earlier digests (or the member's reading) covered already


def digest_key(room_id: int, user_id: int, now: datetime) -> str:
    """The outbox key of a digest: one per room, member and hour."""
    return f"chat-digest:{room_id}:{user_id}:{now:%Y-%m-%dT%H}"


async def _candidates(
    session: AsyncSession,
    *,
    now: datetime,
    delay: timedelta,
    after: tuple[int, int] | None,
    limit: int,
) -> list[Candidate]:
    """One page of candidates in (room, member) order, after `after`."""
    m, r, msg, u, p = _members.c, _rooms.c, _messages.c, _users.c, _preferences.c
    covered = case((m.digested_seq > m.last_read_seq, m.digested_seq), else_=m.last_read_seq)
    wants_email: ColumnElement[bool] = p.email.is_(True)
    if default_channels(NotificationKind.CHAT_MESSAGE).email:
        wants_email = or_(p.user_id.is_(None), wants_email)
    statement = (
        select(m.room_id, m.user_id, r.last_seq, covered)
        .select_from(_members)
        .join(_rooms, r.id == m.room_id)
        # The oldest message not yet read nor digested (seqs are dense: it is the next one).
        .join(_messages, and_(msg.room_id == m.room_id, msg.seq == covered + 1))
        .join(_users, u.id == m.user_id)
        .outerjoin(
            _preferences,
            and_(p.user_id == m.user_id, p.kind == NotificationKind.CHAT_MESSAGE.value),
        )
        .where(
            r.last_activity_at >= now - QUIET_ROOM,
            r.last_seq > covered,
            msg.created_at <= now - delay,
            or_(m.digested_at.is_(None), m.digested_at <= now - DIGEST_GAP),
            u.is_active.is_(True),
            wants_email,
        )
        .order_by(m.room_id, m.user_id)
        .limit(limit)
    )
    if after is not None:
        room_id, user_id = after
        statement = statement.where(
            or_(m.room_id > room_id, and_(m.room_id == room_id, m.user_id > user_id))
        )
    return [Candidate(*row) for row in await session.execute(statement)]


async def _enqueue(deps: Deps, due: list[Candidate], now: datetime) -> None:
    """Mark what each digest covers and write its outbox row, in one transaction."""
    async with deps.db.uow() as uow:
        await uow.session.execute(
            update(_members)
            .where(
                _members.c.room_id == bindparam("room"),
                _members.c.user_id == bindparam("user"),
                _members.c.digested_seq < bindparam("seq"),
            )
            .values(digested_seq=bindparam("seq"), digested_at=bindparam("now")),
            [{"room": c.room_id, "user": c.user_id, "seq": c.last_seq, "now": now} for c in due],
        )
        await outbox.enqueue_many(
            uow,
            DIGEST_KIND,
            [
                (
                    digest_key(c.room_id, c.user_id, now),
                    {
                        "room": c.room_id,
                        "user": c.user_id,
                        "from_seq": c.covered_seq,
                        "upto_seq": c.last_seq,
                    },
                )
                for c in due
            ],
            now=now,
        )
        await uow.commit()


async def enqueue_digests(deps: Deps, *, now: datetime) -> int:
    """The `chat_digest` job: a digest row for each member due one; how many were written."""
    settings = deps.settings
    delay = timedelta(seconds=settings.chat_digest_delay_seconds)
    limit = settings.chat_digest_batch_size
    after: tuple[int, int] | None = None
    enqueued = 0
    for _ in range(MAX_PAGES):
        async with deps.db.read() as session:
            page = await _candidates(session, now=now, delay=delay, after=after, limit=limit)
        if not page:
            break
        online = await deps.realtime.presence.online({c.user_id for c in page})
        due = [c for c in page if c.user_id not in online][: limit - enqueued]
        if due:
            await _enqueue(deps, due, now)
            enqueued += len(due)
        if len(page) < limit or enqueued >= limit:
            break
        after = (page[-1].room_id, page[-1].user_id)
    return enqueued


# -- the mail ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Digest:
    """What a digest mail says, as it stands when it is sent."""

    user: User
    room_id: int
    count: int  # messages unread in the room, up to the newest this digest covers
    senders: list[str]  # who wrote the messages this digest covers
    messages: list[dict[str, str]]  # the latest few of those, oldest first: sender and text


def _name(display_name: str, username: str) -> str:
    return display_name or username


def _preview(body: str) -> str:
    text = " ".join(body.split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1].rstrip() + "…"


async def read_digest(
    deps: Deps, *, room_id: int, user_id: int, from_seq: int, upto_seq: int
) -> Digest | None:
    """The digest of room `room_id` for `user_id` about messages `from_seq` < seq <= `upto_seq`
    (those no earlier digest covered); None when none of them is unread any more, the member or
    their account is gone, or they no longer want chat mails."""
    async with deps.db.read() as session:
        user = await session.get(User, user_id)
        last_read = await session.scalar(
            select(ChatMember.last_read_seq).where(
                ChatMember.room_id == room_id, ChatMember.user_id == user_id
            )
        )
        if (
            user is None
            or not user.is_active
            or last_read is None
            or max(last_read, from_seq) >= upto_seq
        ):
            return None
        if "email" not in await channels_for(session, user_id, NotificationKind.CHAT_MESSAGE):
            return None
        unread = and_(
            ChatMessage.room_id == room_id,
            ChatMessage.seq > max(last_read, from_seq),
            ChatMessage.seq <= upto_seq,
        )
        latest = (
            await session.execute(
                select(ChatMessage.body, User.display_name, User.username)
                .join(User, User.id == ChatMessage.sender_id)
                .where(unread)
                .order_by(ChatMessage.seq.desc())
                .limit(PREVIEW_MESSAGES)
            )
        ).all()
        senders = (
            await session.execute(
                select(User.display_name, User.username)
                .where(User.id.in_(select(ChatMessage.sender_id).where(unread)))
                .order_by(User.id)
                .limit(MAX_SENDERS)
            )
        ).all()
    return Digest(
        user=user,
        room_id=room_id,
        # Seqs are dense, so the unread messages are exactly the seqs between.
        count=upto_seq - last_read,
        senders=[_name(*row) for row in senders],
        messages=[
            {"sender": _name(display, username), "text": _preview(body)}
            for body, display, username in reversed(latest)
        ],
    )


def _payload(job: OutboxJob) -> tuple[int, int, int, int]:
    payload = job.payload
    try:
        return (
            int(payload["room"]),
            int(payload["user"]),
            int(payload["from_seq"]),
            int(payload["upto_seq"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentTaskError(f"malformed chat digest payload: {job.payload!r}") from exc


async def send_chat_digest(deps: Deps, job: OutboxJob) -> None:
    """The "mail.chat_digest" handler: mail what is still unread, in the member's language."""
    room_id, user_id, from_seq, upto_seq = _payload(job)
    digest = await read_digest(
        deps, room_id=room_id, user_id=user_id, from_seq=from_seq, upto_seq=upto_seq
    )
    if digest is None:
        return
    context: dict[str, Any] = {
        "name": _name(digest.user.display_name, digest.user.username),
        "room": digest.room_id,
        "sender": ", ".join(digest.senders),
        "count": digest.count,
        "messages": digest.messages,
    }
    message = render_email(
        MailKind.CHAT_DIGEST,
        to=digest.user.email,
        translator=translator_for(deps, digest.user),
        base_url=links_base(deps.settings),
        context=context,
        message_id=mail_id(deps, job),
    )
    await deliver_mail(deps, job, message)


HANDLERS: dict[str, OutboxHandler] = {DIGEST_KIND: send_chat_digest}
