"""SIGTERM under load: real `serve` and `worker` processes, counted afterwards.

A node told to stop closes its listening socket, answers every request it had taken, closes its
WebSockets with 1001 and exits 0 within SHUTDOWN_TIMEOUT_SECONDS; the clients of those sockets
resume on another node with their last id and miss nothing. A worker told to stop finishes its
running tasks, or hands the rows it cuts off back to the outbox at once. The embedded default's
`serve`, with its in-process worker and scheduler, stops the same way.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from skillswap.db import Database, create_engine
from skillswap.models import ChatMessage
from skillswap.settings import Settings
from tests.chat_support import WsClient, wait_for, ws_connect
from tests.conftest import free_port, node_env, own_database
from tests.e2e.test_nothing_lost import (
    deployment,
    duplicates,
    every_address_mailed,
    every_row_done,
    fast_outbox_env,
    message_id_of,
    sign_up,
)
from tests.factories import order_room, unique_name
from tests.processes import Child, skillswap
from tests.smtp_server import SmtpServer

SHUTDOWN_TIMEOUT = 10


async def started_node(name: str, env: dict[str, str], logs: Path) -> tuple[Child, str]:
    """`skillswap serve` on a free port, once it answers."""
    port = free_port()
    child = await skillswap(name, "serve", "--port", str(port), "--no-migrate", env=env, logs=logs)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(timeout=1) as client:

        async def healthy() -> bool:
            if not child.running:
                raise RuntimeError(f"{name} exited:\n{child.log()}")
            try:
                return (await client.get(url + "/healthz")).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_for(healthy, within=60, every=0.1)
    return child, url


@dataclass
class Sent:
    body: str
    started: float
    ended: float
    status: int = 0  # 0: no answer
    message_id: int | None = None
    error: str = ""


@dataclass
class Sender:
    """One client sending chat messages over REST until the node refuses its connections."""

    name: str
    url: str
    token: str
    room: int
    keep_alive: bool
    sent: list[Sent] = field(default_factory=list)

    async def run(self, stop_after_refusal: asyncio.Event) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        if not self.keep_alive:
            headers["Connection"] = "close"  # a new connection per request
        async with httpx.AsyncClient(base_url=self.url, timeout=30, headers=headers) as client:
            for n in range(10_000):
                body = f"{self.name}-{n}"
                started = time.monotonic()
                try:
                    response = await client.post(
                        f"/api/chat/rooms/{self.room}/send/", json={"body": body}
                    )
                except httpx.ConnectError:
                    stop_after_refusal.set()
                    return  # refused: never taken, the proxy sends it to another node
                except httpx.TransportError as exc:
                    self.sent.append(Sent(body, started, time.monotonic(), error=repr(exc)))
                    continue
                message_id = response.json().get("id") if response.status_code == 201 else None
                self.sent.append(
                    Sent(body, started, time.monotonic(), response.status_code, message_id)
                )


async def collect_until_closed(ws: WsClient, got: list[int]) -> int | None:
    """Every message id the socket hears, until the server closes it; its close code."""
    while True:
        try:
            frame = await ws.next(within=60)
        except ConnectionError:
            return ws.conn.close_code
        if frame.get("type") == "message":
            got.append(frame["message"]["id"])


async def stored_messages(settings: Settings, room: int) -> dict[str, int]:
    db = Database(create_engine(settings))
    try:
        async with db.read() as session:
            rows = await session.execute(
                select(ChatMessage.body, ChatMessage.id).where(ChatMessage.room_id == room)
            )
            return {body: message_id for body, message_id in rows}
    finally:
        await db.dispose()


@pytest.mark.postgres
@pytest.mark.redis
async def test_sigterm_under_load_answers_every_request_taken_and_websockets_resume_elsewhere(
    settings, api, deps, make_user, tmp_path
):
    env = {
        **node_env(settings),
        "RATE_LIMITS": "off",
        "SHUTDOWN_TIMEOUT_SECONDS": str(SHUTDOWN_TIMEOUT),
        "LOG_LEVEL": "INFO",
    }
    buyer, seller = await make_user(), await make_user()
    room = await order_room(api, deps, buyer, seller)
    (one, one_url), (two, two_url) = await asyncio.gather(
        started_node("one", env, tmp_path), started_node("two", env, tmp_path)
    )
    try:
        listeners = [await ws_connect(one_url, user.access) for user in (buyer, seller, seller)]
        for ws in listeners:
            assert (await ws.subscribe(room))["type"] == "subscribed"
        heard: list[list[int]] = [[] for _ in listeners]
        hearing = [
            asyncio.create_task(collect_until_closed(ws, ids))
            for ws, ids in zip(listeners, heard, strict=True)
        ]
        refused = asyncio.Event()
        senders = [
            Sender(f"s{i}", one_url, (buyer, seller)[i % 2].access, room, keep_alive=i % 3 != 0)
            for i in range(24)
        ]
        sending = [asyncio.create_task(s.run(refused)) for s in senders]

        await wait_for(lambda: sum(len(s.sent) for s in senders) >= 150, within=60)
        sigterm_at = time.monotonic()
        one.process.send_signal(signal.SIGTERM)
        status = await asyncio.wait_for(one.process.wait(), timeout=SHUTDOWN_TIMEOUT + 15)
        stopped_in = time.monotonic() - sigterm_at
        await asyncio.wait_for(asyncio.gather(*sending), timeout=30)
        close_codes = await asyncio.wait_for(asyncio.gather(*hearing), timeout=10)

        assert status == 0, one.log()
        assert stopped_in < SHUTDOWN_TIMEOUT, (stopped_in, one.log())
        assert close_codes == [1001, 1001, 1001], one.log()

        sent = [s for sender in senders for s in sender.sent]
        answered = [s for s in sent if s.status]
        # Every answer is whole and a success: nothing was cut off half-way or failed.
        assert {s.status for s in answered} == {201}, [s for s in answered if s.status != 201]
        in_flight_at_sigterm = [s for s in answered if s.started < sigterm_at < s.ended]
        stored = await stored_messages(settings, room)
        # Taken means answered: a request on a connection the node accepted, before or after
        # the signal, new or kept alive, got its answer; only connections refused after the
        # listening socket closed went unanswered (and a proxy sends those to another node).
        cut_off = [s for s in sent if not s.status]
        assert cut_off == []
        acknowledged = {s.body: s.message_id for s in answered}
        assert all(stored[body] == message_id for body, message_id in acknowledged.items())
        assert set(stored) == set(acknowledged)
        assert in_flight_at_sigterm, "no request was in flight at SIGTERM: the load is too light"

        # Every socket resumes on the other node from its last id and then has every message.
        everything = sorted(stored.values())
        for ids, user in zip(heard, (buyer, seller, seller), strict=True):
            moved = await ws_connect(two_url, user.access)
            assert (await moved.subscribe(room, ids[-1] if ids else None))["type"] == "subscribed"
            missing = [i for i in everything if i not in set(ids)]
            replayed = [m["id"] for m in await moved.messages(room, len(missing), within=15)]
            assert replayed == missing
            assert sorted(ids + replayed) == everything
            moved.close()
        print(
            f"SIGTERM with {len(in_flight_at_sigterm)} requests in flight, {len(answered)} "
            f"answered of {len(sent)} sent, "
            f"stopped in {stopped_in:.1f} s"
        )
        assert "stopped in" in one.log()
    finally:
        for child in (one, two):
            if child.running:
                await child.stop()


@pytest.mark.postgres
@pytest.mark.redis
async def test_a_worker_stopped_with_mails_in_flight_finishes_them_and_none_is_lost(tmp_path):
    with SmtpServer() as smtp:
        smtp.answer_delay = 0.3  # each mail is held a moment: a stop always finds some running
        async with own_database() as own:
            env = {
                **fast_outbox_env(own, smtp),
                "RATE_LIMITS": "off",  # 20 sign-ups from one address
                "WORKER_SHUTDOWN_TIMEOUT_SECONDS": "10",
            }
            async with deployment(own, env, tmp_path) as running:
                worker = running.children["worker"]
                signing_up = [asyncio.create_task(sign_up(running.client)) for _ in range(20)]
                await wait_for(
                    lambda: len(smtp.received) >= 5 and smtp.answering > 0, within=30, every=0.005
                )
                assert await worker.stop() == 0, worker.log()
                sign_ups = await asyncio.gather(*signing_up)
                assert [s.status for s in sign_ups] == [201] * 20, [s.body for s in sign_ups]
                addresses = [s.address for s in sign_ups]
                # Every mail it had taken was sent and recorded done before it exited.
                rows = await running.mail_rows()
                done = {message_id_of(key) for key, status in rows.items() if status == "done"}
                assert {mail.message_id for mail in smtp.received} == done
                await running.start("worker-2", "worker")
                await every_address_mailed(smtp, addresses, within=30)
                await every_row_done(running, count=20, within=20)
                assert duplicates(list(smtp.received)) == {}
                assert len(smtp.received) == 20


@pytest.mark.postgres
@pytest.mark.redis
async def test_a_worker_cut_off_by_its_shutdown_timeout_hands_its_rows_back_at_once(tmp_path):
    with SmtpServer() as smtp:
        smtp.answer_delay = 5.0  # longer than the worker's shutdown timeout
        async with own_database() as own:
            env = {
                **fast_outbox_env(own, smtp),
                "RATE_LIMITS": "off",
                "WORKER_SHUTDOWN_TIMEOUT_SECONDS": "1",
                # Leases and stream redelivery far beyond the test: only the hand-back can
                # bring the cut-off rows back in time.
                "OUTBOX_LEASE_SECONDS": "300",
                "TASK_IDLE_TIMEOUT_SECONDS": "600",
            }
            async with deployment(own, env, tmp_path) as running:
                worker = running.children["worker"]
                sign_ups = await asyncio.gather(*(sign_up(running.client) for _ in range(3)))
                assert [s.status for s in sign_ups] == [201] * 3
                await wait_for(lambda: smtp.answering == 3, within=30, every=0.01)
                stopping_at = time.monotonic()
                assert await worker.stop() == 0, worker.log()
                assert time.monotonic() - stopping_at < 8, worker.log()
                assert "3 outbox rows cut off by the shutdown were handed back" in worker.log()
                assert set((await running.mail_rows()).values()) == {"pending"}
                # Taken by the server, never answered: these are the mails that come twice.
                unconfirmed = {mail.message_id for mail in smtp.received}
                smtp.answer_delay = 0.0
                handed_back_at = time.monotonic()
                await running.start("worker-2", "worker")
                await every_row_done(running, count=3, within=20)
                assert time.monotonic() - handed_back_at < 20
                repeated = duplicates(list(smtp.received))
                assert set(repeated) <= unconfirmed
                assert {mail.message_id for mail in smtp.received} == {
                    message_id_of(key) for key in await running.mail_rows()
                }


async def test_the_embedded_serve_stops_cleanly_with_requests_and_a_websocket_open(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "PORT"}}
    env |= {
        "DATA_DIR": str(tmp_path / "data"),
        "LOG_LEVEL": "INFO",
        "RATE_LIMITS": "off",
        "SHUTDOWN_TIMEOUT_SECONDS": str(SHUTDOWN_TIMEOUT),
    }
    port = free_port()
    serve = await skillswap("serve", "serve", "--port", str(port), env=env, logs=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:

            async def answers() -> bool:
                if not serve.running:
                    raise RuntimeError(serve.log())
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_for(answers, within=60, every=0.2)
            name = unique_name()
            registered = await client.post(
                "/api/auth/register/",
                json={
                    "email": f"{name}@example.com",
                    "username": name,
                    "password": "correct horse battery",
                },
            )
            assert registered.status_code == 201, registered.text
            ws = await ws_connect(url, registered.json()["access"])
            statuses: list[int] = []

            async def browse() -> None:
                async with httpx.AsyncClient(base_url=url, timeout=30) as own:
                    while True:
                        try:
                            statuses.append((await own.get("/api/skills/")).status_code)
                        except httpx.ConnectError:
                            return

            browsing = [asyncio.create_task(browse()) for _ in range(8)]
            await wait_for(lambda: len(statuses) >= 40, within=30)
            stopping_at = time.monotonic()
            serve.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(serve.process.wait(), timeout=SHUTDOWN_TIMEOUT + 15) == 0
            assert time.monotonic() - stopping_at < SHUTDOWN_TIMEOUT
            await asyncio.wait_for(asyncio.gather(*browsing), timeout=10)
            assert set(statuses) == {200}
            assert await ws.closed() == 1001
        assert "stopped in" in serve.log()
    finally:
        if serve.running:
            await serve.kill()
