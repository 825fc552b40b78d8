"""The cost of the rate limiter per request, and its algorithm against the `limits` package.

    .venv/bin/python bench/ratelimit_bench.py [--seconds 8] [--concurrency 16] [--takes 20000]

1. The limiter alone, on the same Redis, from 16 concurrent tasks: this project's GCRA (one
   EVALSHA of a short Lua script per request) beside the `limits` package's moving window and
   sliding-window counter (`limits.aio`, over redis-py), when it is installed.
2. Over HTTP, in one run: the same limited endpoint (POST /api/auth/password/reset/, `resend`
   policy, anonymous so counted per address; after the first five requests for one address the
   service answers 202 without touching the database) on a node with a limit far above the
   load and on a node with RATE_LIMITS=off; and a bare Tornado handler answering the same 202.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (
    REDIS_URL,
    closed_loop,
    free_port,
    run_cli,
    scratch_database,
    server_env,
    server_process,
    summarise,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from skillswap.auth.ratelimits import Rate, RedisLimitStore  # noqa: E402

RESET = "/api/auth/password/reset/"


async def time_takes(name: str, take: object, takes: int, concurrency: int) -> None:
    latencies: list[float] = []
    per_task = takes // concurrency

    async def worker(n: int) -> None:
        for i in range(per_task):
            started = time.perf_counter()
            await take(f"k{n}:{i % 50}")  # type: ignore[operator]
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    print(summarise(f"limiter alone, {name}", latencies, time.perf_counter() - started))


async def limiter_alone(takes: int, concurrency: int) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(REDIS_URL)
    prefix = f"bench-limits-{secrets.token_hex(3)}:"
    store = RedisLimitStore(redis, prefix=prefix)
    rate = Rate(1_000_000, 60)

    async def gcra(key: str) -> None:
        await store.take(key, rate)

    await gcra("warm")
    await time_takes("GCRA Lua script (this project)", gcra, takes, concurrency)
    try:
        from limits import RateLimitItemPerMinute
        from limits.aio.storage import RedisStorage
        from limits.aio.strategies import (
            MovingWindowRateLimiter,
            SlidingWindowCounterRateLimiter,
        )
    except ImportError:
        print("limits not installed: pip install limits to compare")
    else:
        item = RateLimitItemPerMinute(1_000_000)
        storage = RedisStorage(f"async+{REDIS_URL}", implementation="redispy")
        for name, strategy in (
            ("limits moving window", MovingWindowRateLimiter(storage)),
            ("limits sliding window counter", SlidingWindowCounterRateLimiter(storage)),
        ):

            async def hit(key: str, strategy: object = strategy) -> None:
                await strategy.hit(item, prefix, key)  # type: ignore[attr-defined]

            await hit("warm")
            await time_takes(name, hit, takes, concurrency)
    keys = [key async for key in redis.scan_iter(f"{prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


def bare_server(port: int) -> None:
    """A Tornado handler answering the endpoint's 202, and nothing else (for scale)."""
    import tornado.web

    class Reset(tornado.web.RequestHandler):
        def post(self) -> None:
            self.set_status(202)
            self.set_header("Content-Type", "application/json")
            self.finish(b'{"sent":true}')

    async def serve() -> None:
        tornado.web.Application([(RESET, Reset)]).listen(port, "127.0.0.1")
        await asyncio.Event().wait()

    asyncio.run(serve())


async def drive(name: str, url: str, seconds: float, concurrency: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def reset(c: httpx.AsyncClient, i: int) -> httpx.Response:
            return await c.post(RESET, json={"email": "nobody@example.com"})

        for _ in range(10):  # past the per-address mail counter: no database work from here on
            await reset(client, 0)
        latencies, elapsed, errors = await closed_loop(
            client, reset, concurrency=concurrency, duration_s=seconds
        )
        print(summarise(name, latencies, elapsed, errors))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--takes", type=int, default=20_000)
    args = parser.parse_args()
    await limiter_alone(args.takes, args.concurrency)
    async with scratch_database() as url:
        on = server_env(url, RATE_LIMITS="resend=100000000/minute")
        off = server_env(url, RATE_LIMITS="off")
        run_cli("migrate", env=on)
        with server_process(on) as limited:
            await drive("POST reset, limits on", limited.url, args.seconds, args.concurrency)
        with server_process(off) as unlimited:
            await drive(
                "POST reset, RATE_LIMITS=off", unlimited.url, args.seconds, args.concurrency
            )
        port = free_port()
        bare = await asyncio.create_subprocess_exec(sys.executable, __file__, "--bare", str(port))
        try:
            await asyncio.sleep(1.5)
            await drive(
                "bare Tornado handler", f"http://127.0.0.1:{port}", args.seconds, args.concurrency
            )
        finally:
            bare.terminate()
            await bare.wait()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--bare":
        bare_server(int(sys.argv[2]))
    else:
        asyncio.run(main())
