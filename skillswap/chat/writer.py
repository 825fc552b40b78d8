"""The chat message writer: every message persisted before anyone hears of it, at a high rate.

Sends are group-committed. Each node runs a few writer lanes (a room always uses the same
lane, so one room's messages are written in the order they were sent); a lane takes everything
queued while its previous transaction ran and writes it in one transaction:

1. lock the rooms involved, which serialises every writer of a room (the seq invariant of
   models/chat.py): a batch of one room locks it and takes its seqs in one UPDATE ... RETURNING;
   a batch of several locks them in id order first (so concurrent batches cannot deadlock);
2. insert the new messages with consecutive seqs, move each room's `last_seq`, move each
   sender's read position, and notify members connected nowhere - all in that transaction;
3. commit, then publish each message (locally and to the bridge) and resolve the senders.

A `client_id` repeated within a batch stores one message. One stored by an earlier batch (a
retried send) makes the insert fail on UNIQUE(room_id, sender_id, client_id): the batch is then
written again, looking stored client ids up after the lock (so a concurrent batch's commit is
visible), and the retried send gets the stored message back. Retries are rare, so the common
path does not pay for the lookup.

A batch whose transaction fails for any other reason is written again message by message, so
that one message the database refuses (its room deleted meanwhile, a constraint) fails alone and
the other senders of the batch, in other rooms, are not affected. Nothing of a failed
transaction is published. Text the database cannot store never gets this far: chat.py refuses
it before it joins a batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from skillswap.api.encoding import iso
from skillswap.chat.services import MessageRecord, message_record, read_only, room_not_found
from skillswap.errors import AppError
from skillswap.i18n import lazy_plural
from skillswap.models import ChatMember, ChatMessage, ChatRoom, User
from skillswap.models.notifications import NotificationKind
from skillswap.notifications import services as notifications

if TYPE_CHECKING:
    from skillswap.db import Database
    from skillswap.deps import Clock, Presence, Publisher

log = logging.getLogger("skillswap.chat.services")

MAX_BATCH = 256
MEMBER_CACHE_SIZE = 10_000

rooms_table = cast(Table, ChatRoom.__table__)
members_table = cast(Table, ChatMember.__table__)
messages_table = cast(Table, ChatMessage.__table__)


@dataclass(frozen=True)
class SentMessage:
    message: MessageRecord
    created: bool  # False: this client_id was already stored, and that message is returned


@dataclass(slots=True)
class _Pending:
    actor_id: int
    actor_is_admin: bool
    actor_name: str
    room_id: int
    body: str
    client_id: str | None
    future: asyncio.Future[SentMessage]


@dataclass(frozen=True)
class _Notifying:
    clock: Clock
    publisher: Publisher
    pushes: bool


def _number(rows: list[dict[str, Any]], last_seq: dict[int, int]) -> dict[int, int]:
    """Give each row the next seq of its room, in batch order; each room's newest seq."""
    next_seq = dict(last_seq)
    for row in rows:
        next_seq[row["room_id"]] += 1
        row["seq"] = next_seq[row["room_id"]]
    return next_seq


async def _insert_messages(
    session: AsyncSession, rows: list[dict[str, Any]], now: datetime
) -> list[MessageRecord]:
    """Insert the numbered rows in one statement: the messages as records, in row order."""
    result = await session.execute(
        insert(messages_table).returning(messages_table.c.id, sort_by_parameter_order=True),
        rows,
    )
    created_at = iso(now)
    return [
        {
            "id": message_id,
            "room": row["room_id"],
            "seq": row["seq"],
            "sender": row["sender_id"],
            "body": row["body"],
            "created_at": created_at,
            "client_id": row["client_id"],
        }
        for (message_id,), row in zip(result, rows, strict=True)
    ]


async def _save_last_seqs(session: AsyncSession, moved: dict[int, int], now: datetime) -> None:
    """Raise the last seq of the rooms locked before numbering (one executemany)."""
    await session.execute(
        update(rooms_table)
        .where(rooms_table.c.id == bindparam("room"))
        .values(last_seq=bindparam("seq"), last_activity_at=bindparam("now")),
        [{"room": r, "seq": s, "now": now} for r, s in moved.items()],
    )


def _outcomes(
    plan: list[tuple[_Pending, int | MessageRecord]], records: list[MessageRecord]
) -> list[tuple[_Pending, MessageRecord, bool]]:
    """Each send with its message, and whether it is new (not a retry of a stored one)."""
    outcomes: list[tuple[_Pending, MessageRecord, bool]] = []
    seen: set[int] = set()
    for pending, ref in plan:
        record = records[ref] if isinstance(ref, int) else ref
        # A message stored twice in one batch (same client_id) is new only once.
        outcomes.append((pending, record, isinstance(ref, int) and record["id"] not in seen))
        seen.add(record["id"])
    return outcomes


class MessageWriter:
    """Group commit of chat messages, one queue and task per lane."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock,
        presence: Presence,
        publisher: Publisher,
        pushes: bool = False,
        lanes: int | None = None,
    ) -> None:
        self._db = db
        self._presence = presence
        # What the away members' notifications need (the same shape `notify` takes from Deps).
        self._notifying = _Notifying(clock, publisher, pushes)
        self._lanes = lanes or (1 if db.is_sqlite else 2)
        self._queues: list[asyncio.Queue[_Pending]] = [asyncio.Queue() for _ in range(self._lanes)]
        self._tasks: list[asyncio.Task[None] | None] = [None] * self._lanes
        # Members never change after a room is made, so they can be remembered.
        self._members: OrderedDict[int, frozenset[int]] = OrderedDict()
        self._closed = False
        self._inflight = 0
        self._settled = asyncio.Event()
        self._settled.set()

    def submit(
        self, *, actor: User, room_id: int, body: str, client_id: str | None
    ) -> asyncio.Future[SentMessage]:
        """Queue a validated message; the future resolves once it is committed."""
        future: asyncio.Future[SentMessage] = asyncio.get_running_loop().create_future()
        if self._closed:
            future.set_exception(RuntimeError("the message writer is closed"))
            return future
        self._inflight += 1
        self._settled.clear()
        future.add_done_callback(self._one_settled)
        lane = room_id % self._lanes
        self._queues[lane].put_nowait(
            _Pending(
                actor.id,
                actor.is_admin,
                actor.display_name or actor.username,
                room_id,
                body,
                client_id,
                future,
            )
        )
        task = self._tasks[lane]
        if task is None or task.done():
            self._tasks[lane] = asyncio.create_task(self._run(self._queues[lane]))
        return future

    def _one_settled(self, _future: asyncio.Future[SentMessage]) -> None:
        self._inflight -= 1
        if self._inflight == 0:
            self._settled.set()

    async def _run(self, queue: asyncio.Queue[_Pending]) -> None:
        while True:
            batch = [await queue.get()]
            while len(batch) < MAX_BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                for pending in batch:
                    if not pending.future.done():
                        pending.future.cancel()
                raise
            except Exception as exc:
                log.exception("writing %d chat messages failed", len(batch))
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)

    async def _room_members(self, room_ids: list[int]) -> dict[int, frozenset[int]]:
        known = {r: self._members[r] for r in room_ids if r in self._members}
        missing = [r for r in room_ids if r not in known]
        if missing:
            found: dict[int, set[int]] = defaultdict(set)
            async with self._db.read() as session:
                for room_id, user_id in await session.execute(
                    select(members_table.c.room_id, members_table.c.user_id).where(
                        members_table.c.room_id.in_(missing)
                    )
                ):
                    found[room_id].add(user_id)
            for room_id, users in found.items():
                known[room_id] = self._members[room_id] = frozenset(users)
            while len(self._members) > MEMBER_CACHE_SIZE:
                self._members.popitem(last=False)
        return known

    async def _write(self, batch: list[_Pending]) -> None:
        members = await self._room_members(sorted({p.room_id for p in batch}))
        accepted: list[_Pending] = []
        for pending in batch:
            room_members = members.get(pending.room_id)
            if room_members is not None and pending.actor_id in room_members:
                accepted.append(pending)
                continue
            error: AppError = (
                read_only()
                if room_members is not None and pending.actor_is_admin
                else room_not_found()
            )
            pending.future.set_exception(error)
        if not accepted:
            return
        others = {user for p in accepted for user in members[p.room_id] if user != p.actor_id}
        online = await self._presence.online(others)
        if len(accepted) > 1:
            try:
                written = await self._commit_batch(accepted, members, online)
            except Exception:
                log.warning(
                    "a batch of %d chat messages failed; writing them one by one",
                    len(accepted),
                    exc_info=True,
                )
            else:
                self._deliver(*written)
                return
        # Alone (or after the batch failed): only a message that cannot be written fails.
        for pending in accepted:
            try:
                written = await self._commit_batch([pending], members, online)
            except AppError as exc:
                pending.future.set_exception(exc)
            except Exception as exc:
                log.exception("writing a chat message to room %d failed", pending.room_id)
                pending.future.set_exception(exc)
            else:
                self._deliver(*written)

    async def _commit_batch(
        self, accepted: list[_Pending], members: dict[int, frozenset[int]], online: set[int]
    ) -> tuple[list[tuple[_Pending, MessageRecord, bool]], list[MessageRecord]]:
        try:
            return await self._commit(accepted, members, online, look_up_client_ids=False)
        except IntegrityError:
            # A client_id stored by an earlier batch (a retried send): write the batch again,
            # this time looking stored client ids up once the rooms are locked.
            return await self._commit(accepted, members, online, look_up_client_ids=True)

    def _deliver(
        self,
        outcomes: list[tuple[_Pending, MessageRecord, bool]],
        records: list[MessageRecord],
    ) -> None:
        """After the commit: publish the new messages, then resolve their senders."""
        for record in records:
            self._notifying.publisher.publish_message(record)
        for pending, record, created in outcomes:
            if not pending.future.done():
                pending.future.set_result(SentMessage(record, created))

    def _room_gone(self, room_ids: list[int], found: set[int]) -> None:
        """Raise room_not_found if a room of the batch no longer exists (deleted meanwhile)."""
        gone = [room_id for room_id in room_ids if room_id not in found]
        if gone:
            for room_id in gone:
                self._members.pop(room_id, None)
            raise room_not_found()

    async def _commit(
        self,
        accepted: list[_Pending],
        members: dict[int, frozenset[int]],
        online: set[int],
        *,
        look_up_client_ids: bool,
    ) -> tuple[list[tuple[_Pending, MessageRecord, bool]], list[MessageRecord]]:
        """One transaction for the batch: lock, number, insert, advance, notify, commit."""
        now = self._notifying.clock()
        async with self._db.uow() as uow:
            session = uow.session
            room_ids = sorted({p.room_id for p in accepted})
            stored: dict[tuple[int, int, str], MessageRecord] = {}
            last_seq: dict[int, int] | None = None
            if look_up_client_ids or len(room_ids) > 1:
                last_seq = await self._lock_rooms(session, room_ids)
                if look_up_client_ids:
                    stored = await self._stored_client_ids(session, accepted)
            rows, plan = self._plan(accepted, stored, now)
            if last_seq is None:
                last_seq = await self._take_seqs_of_one_room(session, rows, now)
            next_seq = _number(rows, last_seq)
            records: list[MessageRecord] = []
            if rows:
                records = await _insert_messages(session, rows, now)
                if len(room_ids) > 1 or look_up_client_ids:
                    moved = {r: s for r, s in next_seq.items() if s != last_seq[r]}
                    await _save_last_seqs(session, moved, now)
                await self._advance_readers(session, records)
                await self._notify_away_members(uow, plan, records, members, online)
            outcomes = _outcomes(plan, records)
            await uow.commit()
        return outcomes, records

    async def _lock_rooms(self, session: AsyncSession, room_ids: list[int]) -> dict[int, int]:
        """Lock every room in id order (concurrent batches cannot deadlock): their last seqs.

        A client id stored by a batch that committed meanwhile is visible after the lock.
        """
        last_seq = dict(
            (
                await session.execute(
                    select(rooms_table.c.id, rooms_table.c.last_seq)
                    .where(rooms_table.c.id.in_(room_ids))
                    .order_by(rooms_table.c.id)
                    .with_for_update()
                )
            ).all()
        )
        self._room_gone(room_ids, set(last_seq))
        return last_seq

    async def _take_seqs_of_one_room(
        self, session: AsyncSession, rows: list[dict[str, Any]], now: datetime
    ) -> dict[int, int]:
        """One room: lock it and take its seqs in a single statement; its last seq before."""
        new_in_room: dict[int, int] = defaultdict(int)
        for row in rows:
            new_in_room[row["room_id"]] += 1
        ((room_id, count),) = new_in_room.items()
        newest = (
            await session.execute(
                update(rooms_table)
                .where(rooms_table.c.id == room_id)
                .values(last_seq=rooms_table.c.last_seq + count, last_activity_at=now)
                .returning(rooms_table.c.last_seq)
            )
        ).scalar_one_or_none()
        self._room_gone([room_id], set() if newest is None else {room_id})
        assert newest is not None
        return {room_id: newest - count}

    def _plan(
        self,
        accepted: list[_Pending],
        stored: dict[tuple[int, int, str], MessageRecord],
        now: datetime,
    ) -> tuple[list[dict[str, Any]], list[tuple[_Pending, int | MessageRecord]]]:
        """The rows to insert (seqs still to number), and for each send its row or stored message."""
        rows: list[dict[str, Any]] = []
        plan: list[tuple[_Pending, int | MessageRecord]] = []
        first_of_key: dict[tuple[int, int, str], int] = {}
        for pending in accepted:
            key = (
                (pending.room_id, pending.actor_id, pending.client_id)
                if pending.client_id
                else None
            )
            if key is not None and key in stored:
                plan.append((pending, stored[key]))
                continue
            if key is not None and key in first_of_key:
                plan.append((pending, first_of_key[key]))
                continue
            rows.append(
                {
                    "room_id": pending.room_id,
                    "seq": 0,
                    "sender_id": pending.actor_id,
                    "body": pending.body,
                    "client_id": pending.client_id,
                    "created_at": now,
                }
            )
            if key is not None:
                first_of_key[key] = len(rows) - 1
            plan.append((pending, len(rows) - 1))
        return rows, plan

    async def _stored_client_ids(
        self, session: Any, batch: list[_Pending]
    ) -> dict[tuple[int, int, str], MessageRecord]:
        keyed = [p for p in batch if p.client_id]
        if not keyed:
            return {}
        wanted = {(p.room_id, p.actor_id, p.client_id or "") for p in keyed}
        rows = await session.scalars(
            select(ChatMessage).where(
                ChatMessage.room_id.in_({p.room_id for p in keyed}),
                ChatMessage.client_id.in_({p.client_id for p in keyed}),
            )
        )
        found: dict[tuple[int, int, str], MessageRecord] = {}
        for message in rows:
            key = (message.room_id, message.sender_id, message.client_id or "")
            if key in wanted:
                found[key] = message_record(message)
        return found

    async def _advance_readers(self, session: Any, records: list[MessageRecord]) -> None:
        # Writing in a room means having read it up to one's own message.
        read_upto: dict[tuple[int, int], MessageRecord] = {}
        for record in records:
            read_upto[(record["room"], record["sender"])] = record
        await session.execute(
            update(members_table)
            .where(
                members_table.c.room_id == bindparam("room"),
                members_table.c.user_id == bindparam("user"),
                members_table.c.last_read_seq < bindparam("seq"),
            )
            .values(last_read_seq=bindparam("seq"), last_read_id=bindparam("mid")),
            [
                {"room": r, "user": u, "seq": rec["seq"], "mid": rec["id"]}
                for (r, u), rec in read_upto.items()
            ],
        )

    async def _notify_away_members(
        self,
        uow: Any,
        plan: list[tuple[_Pending, int | MessageRecord]],
        records: list[MessageRecord],
        members: dict[int, frozenset[int]],
        online: set[int],
    ) -> None:
        # Members connected nowhere hear of new messages by notification: one unread
        # notification per room, replaced by a newer one that counts them all.
        news: dict[tuple[int, int], list[tuple[_Pending, MessageRecord]]] = defaultdict(list)
        for pending, ref in plan:
            if not isinstance(ref, int):
                continue
            record = records[ref]
            for user in members[pending.room_id]:
                if user != pending.actor_id and user not in online:
                    news[(user, pending.room_id)].append((pending, record))
        for (user, room_id), items in news.items():
            group = f"chat:{room_id}"
            earlier = await notifications.take_unread_group(uow, user_id=user, group_key=group)
            count = len(items) + sum(int(p.get("n", 1)) for p in earlier)
            sender, last = items[-1]
            await notifications.notify(
                self._notifying,
                uow,
                user_id=user,
                kind=NotificationKind.CHAT_MESSAGE,
                text=lazy_plural(
                    "{sender} sent you a message.",
                    "{sender} sent you {n} messages.",
                    count,
                    sender=sender.actor_name,
                ),
                payload={"room": room_id, "message_id": last["id"], "sender": sender.actor_id},
                group_key=group,
            )

    async def close(self) -> None:
        """Finish what is queued (bounded), then stop the lanes."""
        self._closed = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self._settled.wait()
        tasks = [t for t in self._tasks if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
