"""SIGTERM under load: real `serve` and `worker` processes, counted afterwards.

A node told to stop closes its listening socket, answers every request it had taken, closes its
WebSockets with 1001 and exits 0 within SHUTDOWN_TIMEOUT_SECONDS; the clients of those sockets
resume on another node with their last id and miss nothing. A worker told to stop finishes its
running tasks, or hands the rows it cuts off back to the outbox at once. The embedded default's
`serve`, with its in-process worker and scheduler, stops the same way.
"""

from __future__ import annotations

import asyncio
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
from tests.conftest import free_port, node_env
from tests.factories import order_room
from tests.processes import Child, skillswap

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
