"""Real-time chat: connections one node holds, message latency, and the persisted message rate.

    .venv/bin/python bench/realtime_bench.py [--connections 20000] [--client-processes 4]
        [--rooms 500] [--rate 1000] [--seconds 10] [--only connections,latency,throughput]

Creates a scratch PostgreSQL database (dropped at the end), users and rooms in it, and starts
`skillswap serve` node(s) on free ports (with the Redis at BENCH_REDIS_URL, under a prefix of
its own). Clients run in separate processes, speaking the WebSocket protocol over plain
asyncio sockets so that they stay light:

1. connections: client processes open --connections authenticated WebSockets to one node
   (each as its own user) and hold them; the node's resident memory (VmRSS) is read before
   and after, giving the memory per connection.
2. latency: --rooms rooms, both members connected and subscribed; --rate messages per second
   are sent, spread over the rooms; latency is from the send to the delivery to the other
   member (same client process, same clock). First with both members on one node, then with
   them on two different nodes (every message crosses Redis).
3. throughput: every member sends in a closed loop (the next message when the last was
   acknowledged, i.e. committed); the acknowledged rate is the rate one node sustains with
   every message persisted, and the database row count is checked against it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (
    ROOT,
    SECRET,
    percentile,
    run_cli,
    scratch_database,
    server_env,
    server_process,
)

SERVER_SETTINGS = {
    "ACCESS_TOKEN_TTL_SECONDS": "7200",
    # Closed-loop senders go faster than a person: lift the per-connection frame limits.
    "WS_RATE_PER_SECOND": "100000",
    "WS_RATE_BURST": "100000",
    "DB_POOL_SIZE": "10",
}


# -- a minimal WebSocket client (the server is the thing being measured) -----------------------


class Socket:
    """One client WebSocket over asyncio streams: zero mask key, text frames, no extensions."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, token: str) -> Socket:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        writer.write(
            (
                f"GET /ws/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Authorization: Bearer {token}\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            writer.close()
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode())
        return cls(reader, writer)

    def send(self, frame: dict[str, Any]) -> None:
        payload = json.dumps(frame, separators=(",", ":")).encode()
        size = len(payload)
        if size < 126:
            header = struct.pack(">BB", 0x81, 0x80 | size)
        else:
            header = struct.pack(">BBH", 0x81, 0x80 | 126, size)
        # A zero mask key leaves the payload as it is (servers must accept any key).
        self.writer.write(header + b"\0\0\0\0" + payload)

    async def receive(self) -> dict[str, Any] | None:
        """The next text frame as JSON (None when the server closed); answers pings."""
        while True:
            first, second = await self.reader.readexactly(2)
            size = second & 0x7F
            if size == 126:
                size = struct.unpack(">H", await self.reader.readexactly(2))[0]
            elif size == 127:
                size = struct.unpack(">Q", await self.reader.readexactly(8))[0]
            payload = await self.reader.readexactly(size)
            opcode = first & 0x0F
            if opcode == 0x1:
                frame: dict[str, Any] = json.loads(payload)
                return frame
            if opcode == 0x8:
                return None
            if opcode == 0x9:  # ping
                self.writer.write(struct.pack(">BB", 0x8A, 0x80 | size) + b"\0\0\0\0" + payload)

    def close(self) -> None:
        self.writer.close()


# -- client processes ---------------------------------------------------------------------------


async def client_hold(spec: dict[str, Any]) -> None:
    """Open one socket per token, report, and hold them until told to stop."""
    sockets: list[Socket] = []
    failures = 0
    gate = asyncio.Semaphore(32)

    async def one(token: str) -> None:
        nonlocal failures
        for _attempt in range(5):
            try:
                async with gate:
                    sockets.append(await Socket.open(spec["port"], token))
                return
            except (OSError, ConnectionError, asyncio.IncompleteReadError):
                await asyncio.sleep(0.5)
        failures += 1

    await asyncio.gather(*(one(t) for t in spec["tokens"]))
    print(json.dumps({"connected": len(sockets), "failed": failures}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for sock in sockets:
        sock.close()


async def client_chat(spec: dict[str, Any]) -> None:
    """Join the rooms given, then send paced (latency) or closed-loop (throughput) messages."""
    rooms: list[dict[str, Any]] = spec["rooms"]
    sockets: dict[tuple[int, int], Socket] = {}
    for room in rooms:
        for member in room["members"]:
            sockets[(room["id"], member["id"])] = await Socket.open(member["port"], member["token"])
    joined = asyncio.Event()
    waiting = len(sockets)
    latencies: list[float] = []
    counts = {"sent": 0, "delivered": 0, "acked": 0, "errors": 0}
    measuring = {"on": False}
    window = spec.get("window", 1)
    stop = {"now": False}

    def send(room_id: int, user_id: int) -> None:
        sockets[(room_id, user_id)].send(
            {
                "type": "send",
                "room": room_id,
                "body": f"{time.perf_counter_ns()} bench message",
                "client_id": secrets.token_hex(6),
            }
        )
        counts["sent"] += 1

    async def listen(room_id: int, user_id: int, sock: Socket) -> None:
        nonlocal waiting
        sock.send({"type": "subscribe", "room": room_id})
        while True:
            frame = await sock.receive()
            if frame is None:
                return
            kind = frame["type"]
            if kind == "subscribed":
                waiting -= 1
                if waiting == 0:
                    joined.set()
            elif kind == "message" and frame["message"]["sender"] != user_id:
                sent_at = int(frame["message"]["body"].split(" ", 1)[0])
                if measuring["on"]:
                    latencies.append((time.perf_counter_ns() - sent_at) / 1e6)
                    counts["delivered"] += 1
            elif kind == "ack":
                if measuring["on"]:
                    counts["acked"] += 1
                if spec["mode"] == "closed" and not stop["now"]:
                    send(room_id, user_id)
            elif kind == "error":
                counts["errors"] += 1

    listeners = [
        asyncio.create_task(listen(room_id, user_id, sock))
        for (room_id, user_id), sock in sockets.items()
    ]
    await asyncio.wait_for(joined.wait(), 120)
    print(json.dumps({"ready": True}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"
    warmup, seconds = spec["warmup"], spec["seconds"]
    started = time.perf_counter()
    if spec["mode"] == "closed":
        for (room_id, user_id), _sock in sockets.items():
            for _ in range(window):
                send(room_id, user_id)
        await asyncio.sleep(warmup)
        measuring["on"] = True
        measured_from = time.perf_counter()
        await asyncio.sleep(seconds)
        measuring["on"] = False
        elapsed = time.perf_counter() - measured_from
        stop["now"] = True
    else:
        rate = spec["rate"]
        pairs = [(r["id"], m["id"]) for r in rooms for m in r["members"]]
        tick = 0.005
        due = 0.0
        index = 0
        measured_from = started + warmup
        last = started
        while (now := time.perf_counter()) < started + warmup + seconds:
            measuring["on"] = now >= measured_from
            # Owed messages follow the clock, so a slow iteration is caught up, not skipped.
            due += rate * (now - last)
            last = now
            while due >= 1:
                room_id, user_id = pairs[index % len(pairs)]
                index += 1
                send(room_id, user_id)
                due -= 1
            await asyncio.sleep(max(0.0, tick - (time.perf_counter() - now)))
        await asyncio.sleep(1.0)  # let the last deliveries land
        measuring["on"] = False
        elapsed = seconds
    for task in listeners:
        task.cancel()
    print(json.dumps({**counts, "elapsed": elapsed, "latencies": latencies}), flush=True)
    for sock in sockets.values():
        sock.close()


def client_main() -> None:
    spec = json.loads(Path(sys.argv[2]).read_text())
    _raise_file_limit()
    runner = client_hold if spec["role"] == "hold" else client_chat
    asyncio.run(runner(spec))


# -- the orchestration --------------------------------------------------------------------------


def _raise_file_limit() -> int:
    """Raise this process's descriptor limit as far as allowed (children inherit it)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for wanted in (1_048_576, 262_144, 65_536):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Client:
    """A client process fed a JSON spec; it answers with JSON lines."""

    def __init__(self, spec: dict[str, Any]) -> None:
        handle = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)  # noqa: SIM115
        json.dump(spec, handle)
        handle.close()
        self.spec_path = handle.name
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--client", self.spec_path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )

    async def line(self, within: float = 600) -> dict[str, Any]:
        assert self.process.stdout is not None
        text = await asyncio.wait_for(asyncio.to_thread(self.process.stdout.readline), within)
        if not text:
            raise RuntimeError("client process ended early")
        answer: dict[str, Any] = json.loads(text)
        return answer

    def tell(self, word: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(word + "\n")
        self.process.stdin.flush()

    def finish(self) -> None:
        with contextlib.suppress(Exception):
            self.tell("stop")
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.unlink(self.spec_path)


async def make_users_and_rooms(url: str, users: int, rooms: int) -> tuple[list[int], list[int]]:
    """Insert users (no password: they only use tokens) and direct rooms of two members."""
    from sqlalchemy import insert

    from skillswap.db import create_engine
    from skillswap.models import ChatMember, ChatRoom, User
    from skillswap.models.base import utcnow
    from skillswap.settings import Settings

    engine = create_engine(Settings(database_url=url))
    tag = secrets.token_hex(3)
    now = utcnow()
    try:
        async with engine.begin() as conn:
            rows = [
                {
                    "email": f"rt{tag}{i}@example.com",
                    "username": f"rt{tag}{i}",
                    "username_key": f"rt{tag}{i}",
                    "password_hash": None,
                    "display_name": f"Bench {i}",
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(users)
            ]
            result = await conn.execute(
                insert(User.__table__).returning(User.__table__.c.id, sort_by_parameter_order=True),
                rows,
            )
            user_ids = [r[0] for r in result]
            room_rows = [
                {
                    "kind": "direct",
                    "direct_key": f"{user_ids[2 * i]}:{user_ids[2 * i + 1]}",
                    "last_seq": 0,
                    "last_activity_at": now,
                    "created_at": now,
                }
                for i in range(rooms)
            ]
            result = await conn.execute(
                insert(ChatRoom.__table__).returning(
                    ChatRoom.__table__.c.id, sort_by_parameter_order=True
                ),
                room_rows,
            )
            room_ids = [r[0] for r in result]
            await conn.execute(
                insert(ChatMember.__table__),
                [
                    {
                        "room_id": room_id,
                        "user_id": user_ids[2 * i + side],
                        "last_read_id": 0,
                        "last_read_seq": 0,
                        "joined_at": now,
                    }
                    for i, room_id in enumerate(room_ids)
                    for side in (0, 1)
                ],
            )
    finally:
        await engine.dispose()
    return user_ids, room_ids


async def count_messages(url: str) -> int:
    from sqlalchemy import func, select

    from skillswap.db import create_engine
    from skillswap.models import ChatMessage
    from skillswap.settings import Settings

    engine = create_engine(Settings(database_url=url))
    try:
        async with engine.connect() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(ChatMessage))).scalar_one()
            )
    finally:
        await engine.dispose()


def tokens_for(user_ids: list[int]) -> dict[int, str]:
    from skillswap.auth.tokens import KeyRing
    from skillswap.settings import Settings

    keys = KeyRing(Settings(secret_key=SECRET, access_token_ttl_seconds=7200))
    return {user_id: keys.issue_access(user_id)[0] for user_id in user_ids}


async def bench_connections(
    env: dict[str, str], tokens: dict[int, str], wanted: int, processes: int, limit: int
) -> None:
    # The node needs a descriptor per connection plus its database and Redis pools.
    held = min(wanted, limit - 600)
    print(f"\n== 1. concurrent connections held by one node (target {wanted:,}) ==")
    if held < wanted:
        print(
            f"   RLIMIT_NOFILE is capped at {limit:,} here (no permission to raise it): "
            f"holding {held:,}; run as a user allowed a higher limit for the full target"
        )
    chosen = list(tokens.values())[:held]
    with server_process(env) as server:
        # Warm up the code paths with one connection, then take the baseline.
        warm = await Socket.open(server.port, chosen[0])
        warm.close()
        await asyncio.sleep(1.0)
        before = server.rss_kib()
        share = (len(chosen) + processes - 1) // processes
        started = time.perf_counter()
        clients = [
            Client(
                {"role": "hold", "port": server.port, "tokens": chosen[i * share : (i + 1) * share]}
            )
            for i in range(processes)
        ]
        try:
            answers = [await c.line() for c in clients]
            took = time.perf_counter() - started
            connected = sum(a["connected"] for a in answers)
            failed = sum(a["failed"] for a in answers)
            await asyncio.sleep(3.0)
            after = server.rss_kib()
            per = (after - before) * 1024 / max(1, connected)
            print(
                f"   connected {connected:,} WebSockets ({failed} failed) in {took:.1f}s "
                f"({connected / took:,.0f}/s), over {processes} client processes"
            )
            print(
                f"   node VmRSS {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after: "
                f"{per / 1024:.1f} KiB per connection (target < 40 KiB)"
            )
            probe = await Socket.open(server.port, chosen[-1])
            probe.send({"type": "ping"})
            t0 = time.perf_counter()
            assert (await probe.receive()) == {"type": "pong"}
            print(
                f"   a new client still gets a pong in {(time.perf_counter() - t0) * 1000:.1f} ms"
            )
            probe.close()
        finally:
            for c in clients:
                c.finish()


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time used so far by the processes `pids`."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


async def run_chat(
    ports: list[int],
    tokens: dict[int, str],
    rooms: list[dict[str, Any]],
    *,
    mode: str,
    rate: int,
    seconds: float,
    processes: int,
    window: int = 1,
    server_pids: list[int] | None = None,
) -> dict[str, Any]:
    share = (len(rooms) + processes - 1) // processes
    clients = []
    for i in range(processes):
        part = rooms[i * share : (i + 1) * share]
        specs = [
            {
                "id": room["id"],
                "members": [
                    {"id": user_id, "token": tokens[user_id], "port": ports[side % len(ports)]}
                    for side, user_id in enumerate(room["members"])
                ],
            }
            for room in part
        ]
        clients.append(
            Client(
                {
                    "role": "chat",
                    "mode": mode,
                    "rooms": specs,
                    "rate": rate / processes,
                    "seconds": seconds,
                    "warmup": 2.0,
                    "window": window,
                }
            )
        )
    try:
        for c in clients:
            await c.line()
        cpu_before = cpu_seconds(server_pids or [])
        for c in clients:
            c.tell("go")
        results = [await c.line(within=seconds + 120) for c in clients]
        cpu_used = cpu_seconds(server_pids or []) - cpu_before
    finally:
        for c in clients:
            c.finish()
    merged: dict[str, Any] = {"latencies": []}
    for key in ("sent", "delivered", "acked", "errors"):
        merged[key] = sum(r[key] for r in results)
    for r in results:
        merged["latencies"] += r["latencies"]
    merged["elapsed"] = max(r["elapsed"] for r in results)
    # Warm-up, measured window and drain: the node(s) worked through all of it.
    merged["server_cpu"] = cpu_used / (seconds + 3.0)
    return merged


def describe_latency(name: str, result: dict[str, Any], rate: int) -> None:
    values = result["latencies"]
    if not values:
        print(f"   {name}: nothing delivered ({result})")
        return
    achieved = len(values) / result["elapsed"]
    print(
        f"   {name}: {len(values):,} deliveries ({achieved:,.0f}/s measured, {rate:,}/s asked)"
        f" - latency p50 "
        f"{statistics.median(values):.1f} ms, p99 {percentile(values, 0.99):.1f} ms, "
        f"max {max(values):.1f} ms; errors {result['errors']}; "
        f"node CPU {result['server_cpu'] * 100:.0f}% of a core"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=20_000)
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--rooms", type=int, default=500)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--only", default="connections,latency,throughput")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    limit = _raise_file_limit()
    print(f"RLIMIT_NOFILE {limit:,}; {os.cpu_count()} CPUs")
    async with scratch_database() as url:
        env = server_env(url, **SERVER_SETTINGS)
        run_cli("migrate", env=env)
        users = max(args.connections if "connections" in parts else 0, 2 * args.rooms)
        t0 = time.perf_counter()
        user_ids, room_ids = await make_users_and_rooms(url, users, args.rooms)
        tokens = tokens_for(user_ids)
        print(
            f"made {len(user_ids):,} users and {len(room_ids)} rooms in {time.perf_counter() - t0:.1f}s"
        )
        rooms = [
            {"id": room_id, "members": [user_ids[2 * i], user_ids[2 * i + 1]]}
            for i, room_id in enumerate(room_ids)
        ]
        if "connections" in parts:
            await bench_connections(env, tokens, args.connections, args.client_processes, limit)
        if "latency" in parts:
            print(f"\n== 2. message latency, {args.rate:,} msg/s across {len(rooms)} rooms ==")
            with server_process(env) as node:
                result = await run_chat(
                    [node.port],
                    tokens,
                    rooms,
                    mode="paced",
                    rate=args.rate,
                    seconds=args.seconds,
                    processes=2,
                    server_pids=[node.process.pid],
                )
                describe_latency("one node", result, args.rate)
            with server_process(env) as one, server_process(env) as two:
                result = await run_chat(
                    [one.port, two.port],
                    tokens,
                    rooms,
                    mode="paced",
                    rate=args.rate,
                    seconds=args.seconds,
                    processes=2,
                    server_pids=[one.process.pid, two.process.pid],
                )
                describe_latency("two nodes (every message crosses Redis)", result, args.rate)
        if "throughput" in parts:
            print("\n== 3. highest persisted message rate of one node (closed loop) ==")
            with server_process(env) as node:
                before = await count_messages(url)
                result = await run_chat(
                    [node.port],
                    tokens,
                    rooms,
                    mode="closed",
                    rate=0,
                    seconds=args.seconds,
                    processes=2,
                    window=1,
                    server_pids=[node.process.pid],
                )
                await asyncio.sleep(1)
                stored = await count_messages(url) - before
            acked = result["acked"]
            print(
                f"   {acked / result['elapsed']:,.0f} msg/s acknowledged (each committed to "
                f"PostgreSQL first) over {result['elapsed']:.1f}s by {2 * len(rooms)} senders; "
                f"target >= 3,000/s; node CPU {result['server_cpu'] * 100:.0f}% of a core"
            )
            print(
                f"   rows stored during the run (warm-up and drain included): {stored:,}; "
                f"sent {result['sent']:,}; errors {result['errors']}"
            )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--client":
        client_main()
    else:
        asyncio.run(main())
