"""The unread-chat digest: who gets one (away, unread past the delay, email wanted), how often
(one per room an hour, nothing mailed twice), and what it says over real SMTP in each language."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from skillswap.bootstrap import bootstrap
from skillswap.chat import digest
from skillswap.chat.services import mark_read
from skillswap.deps import Deps
from skillswap.mail.smtp import SmtpMailer
from skillswap.models import ChatMember, ChatMessage, ChatRoom, OutboxRow, User
from skillswap.models.chat import RoomKind
from skillswap.models.notifications import NotificationKind
from skillswap.notifications.preferences import update_preferences
from skillswap.tasks import jobs, outbox
from skillswap.tasks.definitions import run_outbox_row
from tests.conftest import own_database
from tests.factories import unique_name
from tests.query_recorder import QueryRecorder
from tests.smtp_server import ReceivedMail, SmtpServer

START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
DELAY = 600
PUBLIC_URL = "https://skillswap.test"


class FrozenClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@dataclass
class Chat:
    deps: Deps
    clock: FrozenClock
    smtp: SmtpServer

    async def user(self, display_name: str, *, locale: str = "en") -> User:
        username = unique_name()
        now = self.clock()
        user = User(
            email=f"{username}@example.com",
            username=username,
            username_key=username.lower(),
            display_name=display_name,
            locale=locale,
            email_verified=True,
            created_at=now,
            updated_at=now,
        )
        async with self.deps.db.uow() as uow:
            uow.session.add(user)
            await uow.commit()
        return user

    async def room(self, a: User, b: User) -> int:
        low, high = sorted((a.id, b.id))
        now = self.clock()
        async with self.deps.db.uow() as uow:
            room = ChatRoom(
                kind=RoomKind.DIRECT,
                direct_key=f"{low}:{high}",
                last_activity_at=now,
                created_at=now,
            )
            uow.session.add(room)
            await uow.session.flush()
            uow.session.add_all(
                [ChatMember(room_id=room.id, user_id=u, joined_at=now) for u in (low, high)]
            )
            await uow.commit()
        return room.id

    async def send(self, sender: User, room_id: int, body: str) -> int:
        """A message through the service's own writer (at the clock's time); its id."""
        sent = await self.deps.messages.submit(
            actor=sender, room_id=room_id, body=body, client_id=None
        )
        return int(sent.message["id"])

    async def insert_message(self, sender: User, room_id: int, body: str) -> None:
        """A message's rows written directly: no live delivery, so nothing runs after it."""
        now = self.clock()
        async with self.deps.db.uow() as uow:
            room = await uow.session.get(ChatRoom, room_id)
            assert room is not None
            room.last_seq += 1
            room.last_activity_at = now
            sender_member = await uow.session.get(ChatMember, (room_id, sender.id))
            assert sender_member is not None
            sender_member.last_read_seq = room.last_seq  # writing reads, as the writer does
            uow.session.add(
                ChatMessage(
                    room_id=room_id,
                    seq=room.last_seq,
                    sender_id=sender.id,
                    body=body,
                    created_at=now,
                )
            )
            await uow.commit()

    async def run_job(self) -> None:
        await jobs.chat_digest(self.deps, self.clock())

    async def digest_rows(self) -> list[OutboxRow]:
        async with self.deps.db.read() as session:
            rows = await session.scalars(
                select(OutboxRow).where(OutboxRow.kind == digest.DIGEST_KIND).order_by(OutboxRow.id)
            )
            return list(rows)

    async def deliver(self) -> list[str]:
        """Run every due outbox row through the digest handler; each outcome."""
        claimed = await outbox.claim_due(
            self.deps.db, limit=100, lease_seconds=60, now=self.clock()
        )
        return [
            await run_outbox_row(self.deps, digest.HANDLERS, job.id, job.attempts)
            for job in claimed
        ]

    async def member(self, room_id: int, user: User) -> ChatMember:
        async with self.deps.db.read() as session:
            member = await session.get(ChatMember, (room_id, user.id))
        assert member is not None
        return member


@contextlib.asynccontextmanager
async def chat_with_mail(smtp: SmtpServer, **overrides: Any) -> AsyncIterator[Chat]:
    """A database of its own, SMTP to the test server (bootstrap's own mailer), a frozen clock."""
    async with own_database() as own:
        clock = FrozenClock()
        settings = own.with_overrides(
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_tls="none",
            smtp_timeout_seconds=5,
            email_from="SkillSwap <no-reply@skillswap.test>",
            public_url=PUBLIC_URL,
            chat_digest_delay_seconds=DELAY,
            chat_digest_interval_seconds=1,
            **overrides,
        )
        deps = await bootstrap(settings, clock=clock)
        assert isinstance(deps.mailer, SmtpMailer)
        try:
            yield Chat(deps, clock, smtp)
        finally:
            await deps.close()


async def test_an_away_member_gets_one_digest_in_their_language_over_smtp(smtp: SmtpServer):
    async with chat_with_mail(smtp) as chat:
        lina, sam = await chat.user("Lina"), await chat.user("Sam", locale="ar")
        omar, nour = await chat.user("Omar"), await chat.user("Nour")
        arabic_room = await chat.room(lina, sam)
        english_room = await chat.room(omar, nour)
        for body in ("Hello!", "Are you there?", "I finished  the\nfirst draft.", "x" * 250):
            await chat.send(lina, arabic_room, body)
        await chat.send(omar, english_room, "One question about the order.")
        chat.clock.advance(DELAY)
        await chat.run_job()
        rows = await chat.digest_rows()
        assert sorted((r.key, r.payload["upto_seq"]) for r in rows) == sorted(
            [
                (f"chat-digest:{arabic_room}:{sam.id}:2030-01-01T12", 4),
                (f"chat-digest:{english_room}:{nour.id}:2030-01-01T12", 1),
            ]
        )
        assert await chat.deliver() == ["done", "done"]
        to_sam = await smtp.wait_for(sam.email)
        to_nour = await smtp.wait_for(nour.email)
        assert to_sam.subject == "4 رسائل غير مقروءة من Lina"
        assert to_sam.text == (
            "مرحبًا Sam،\n\n"
            "أرسل إليك Lina 4 رسائل.\n\n"
            "أحدث 3 رسائل:\n"
            "Lina: Are you there?\n"
            "Lina: I finished the first draft.\n"
            f"Lina: {'x' * 199}…\n\n"
            f"أو افتح هذا الرابط: {PUBLIC_URL}/chat/{arabic_room}\n"
        )
        assert '<html lang="ar" dir="rtl">' in to_sam.html
        assert '<span dir="auto">I finished the first draft.</span>' in to_sam.html
        assert f'href="{PUBLIC_URL}/chat/{arabic_room}"' in to_sam.html
        assert "افتح المحادثة" in to_sam.html
        assert to_nour.subject == "1 unread message from Omar"
        assert to_nour.text == (
            "Hello Nour,\n\n"
            "Omar sent you a message.\n\n"
            "Omar: One question about the order.\n\n"
            f"Or open this link: {PUBLIC_URL}/chat/{english_room}\n"
        )
        assert '<html lang="en" dir="ltr">' in to_nour.html
        assert "Open the conversation" in to_nour.html
        # The senders read everything they wrote: nobody else is mailed, and a rerun adds nothing.
        await chat.run_job()
        assert len(await chat.digest_rows()) == 2
        assert [m.to for m in smtp.to(lina.email) + smtp.to(omar.email)] == []


async def test_no_digest_within_the_delay_and_none_while_the_member_is_online(smtp: SmtpServer):
    async with chat_with_mail(smtp) as chat:
        lina, sam = await chat.user("Lina"), await chat.user("Sam")
        room = await chat.room(lina, sam)
        await chat.send(lina, room, "First")
        chat.clock.advance(DELAY - 1)
        await chat.send(lina, room, "Second")
        await chat.run_job()
        assert await chat.digest_rows() == []  # the oldest unread is not old enough yet
        chat.clock.advance(1)
        presence = chat.deps.realtime.presence
        presence.connected(sam.id)
        try:
            await chat.run_job()
            assert await chat.digest_rows() == []  # connected somewhere: they may read it now
        finally:
            presence.disconnected(sam.id)
        await chat.run_job()
        (row,) = await chat.digest_rows()
        assert row.payload == {"room": room, "user": sam.id, "from_seq": 0, "upto_seq": 2}
        member = await chat.member(room, sam)
        assert (member.digested_seq, member.digested_at) == (2, chat.clock())


async def test_no_digest_for_a_member_who_read_or_wants_no_chat_mail(smtp: SmtpServer):
    async with chat_with_mail(smtp) as chat:
        lina, sam, nour = await chat.user("Lina"), await chat.user("Sam"), await chat.user("Nour")
        read_room, quiet_room = await chat.room(lina, sam), await chat.room(lina, nour)
        last = await chat.send(lina, read_room, "Did you see this?")
        await chat.send(lina, quiet_room, "And you?")
        await mark_read(chat.deps, actor=sam, room_id=read_room, message_id=last)
        await update_preferences(
            chat.deps,
            actor=nour,
            choices={NotificationKind.CHAT_MESSAGE: {"email": False}},
            replace=False,
        )
        chat.clock.advance(DELAY)
        await chat.run_job()
        assert await chat.digest_rows() == []
        assert (await chat.member(quiet_room, nour)).digested_seq == 0  # nothing was covered


async def test_a_digest_whose_messages_were_read_before_it_was_sent_sends_nothing(
    smtp: SmtpServer,
):
    async with chat_with_mail(smtp) as chat:
        lina, sam = await chat.user("Lina"), await chat.user("Sam")
        room = await chat.room(lina, sam)
        last = await chat.send(lina, room, "Ping")
        chat.clock.advance(DELAY)
        await chat.run_job()
        assert len(await chat.digest_rows()) == 1
        await mark_read(chat.deps, actor=sam, room_id=room, message_id=last)
        assert await chat.deliver() == ["done"]
        assert smtp.to(sam.email) == []


async def test_one_digest_per_room_an_hour_though_the_job_runs_every_second(smtp: SmtpServer):
    async with chat_with_mail(smtp) as chat:
        lina, sam = await chat.user("Lina"), await chat.user("Sam")
        room = await chat.room(lina, sam)
        await chat.send(lina, room, "One")
        chat.clock.advance(DELAY)
        # An hour of the job every second, with a message from Lina every ten minutes.
        for second in range(3600):
            if second % 600 == 300:
                await chat.send(lina, room, f"More at {second}")
            await chat.run_job()
            chat.clock.advance(1)
        (first,) = await chat.digest_rows()
        assert first.payload["upto_seq"] == 1
        assert await chat.deliver() == ["done"]
        mail = await smtp.wait_for(sam.email)
        assert mail.subject == "1 unread message from Lina"
        # The hour is over: the next digest covers what came after the first, and only that.
        await chat.run_job()
        first_again, second_digest = await chat.digest_rows()
        assert first_again.id == first.id
        assert second_digest.key == f"chat-digest:{room}:{sam.id}:2030-01-01T13"
        assert (second_digest.payload["from_seq"], second_digest.payload["upto_seq"]) == (1, 7)
        assert await chat.deliver() == ["done"]
        mail = await smtp.wait_for(sam.email, count=2)
        assert mail.subject == "7 unread messages from Lina"  # unread in all: the first too
        assert _texts(mail) == ["Lina: More at 2100", "Lina: More at 2700", "Lina: More at 3300"]


def _texts(mail: ReceivedMail) -> list[str]:
    return [line for line in mail.text.splitlines() if line.startswith("Lina: ")]


async def test_a_second_digest_quotes_only_messages_the_first_did_not_cover(smtp: SmtpServer):
    async with chat_with_mail(smtp) as chat:
        lina, sam = await chat.user("Lina"), await chat.user("Sam")
        room = await chat.room(lina, sam)
        await chat.send(lina, room, "Before")
        chat.clock.advance(DELAY)
        await chat.run_job()
        await chat.deliver()
        assert _texts(await smtp.wait_for(sam.email)) == ["Lina: Before"]
        await chat.send(lina, room, "After")
        chat.clock.advance(3600)
        await chat.run_job()
        await chat.deliver()
        mail = await smtp.wait_for(sam.email, count=2)
        assert mail.subject == "2 unread messages from Lina"
        assert mail.text == (
            "Hello Sam,\n\n"
            "Lina sent you 2 messages.\n\n"
            "The latest one:\n"
            "Lina: After\n\n"
            f"Or open this link: {PUBLIC_URL}/chat/{room}\n"
        )


async def test_a_malformed_digest_row_is_dead_lettered(smtp: SmtpServer):
    async with chat_with_mail(smtp) as chat:
        async with chat.deps.db.uow() as uow:
            await outbox.enqueue(
                uow, digest.DIGEST_KIND, "chat-digest:bad", {"room": "x"}, now=chat.clock()
            )
            await uow.commit()
        assert await chat.deliver() == ["failed"]
        (row,) = await chat.digest_rows()
        assert (row.status, row.last_error) == (
            "failed",
            "malformed chat digest payload: {'room': 'x'}",
        )


async def test_a_run_reads_its_candidates_in_one_query_set_and_caps_its_batch(smtp: SmtpServer):
    async with chat_with_mail(smtp, chat_digest_batch_size=4) as chat:
        lina = await chat.user("Lina")
        others = [await chat.user(f"Member {n}") for n in range(6)]
        for other in others:
            await chat.insert_message(lina, await chat.room(lina, other), "Hi")
        chat.clock.advance(DELAY)
        async with QueryRecorder(chat.deps.db) as queries:
            await chat.run_job()
        # A full page of 4 candidates read, then one write of them all; nothing per member.
        statements = [s.summary for s in queries.statements if "pg_notify" not in s.sql]
        assert statements == ["SELECT chat_members", "UPDATE chat_members", "INSERT outbox"], str(
            queries
        )
        assert len(await chat.digest_rows()) == 4
        await chat.run_job()  # the next run takes the rest
        assert len(await chat.digest_rows()) == 6
        async with chat.deps.db.read() as session:
            covered = await session.scalar(
                select(func.count()).select_from(ChatMember).where(ChatMember.digested_seq == 1)
            )
        assert covered == 6
