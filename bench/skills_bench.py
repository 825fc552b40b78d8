"""Skills marketplace read throughput against the same machine's bare Tornado limit.

    .venv/bin/python bench/skills_bench.py [--skills 10000] [--seconds 10] [--connections 32]

Needs wrk (`apt-get install -y wrk`). Creates a scratch PostgreSQL database, migrates it, seeds
it with `skillswap seed-demo` (20 categories, N bilingual skills), starts ONE `skillswap serve`
process (with Redis, LOG_LEVEL=WARNING), warms it up, and drives it with wrk:

- GET /api/skills/?category=<id>      (page of 20, the 20 categories in turn)
- GET /api/skills/?search=<word>      (page of 20, English and Arabic words in turn)
- GET /api/skills/{id}/               (2,000 different skills in turn)
- the category and search pages with a different max_price each time, so every request
  misses the response cache (the cost of the database path)

Each is printed beside a bare Tornado handler (its own process) returning the same bytes,
measured in the same run: the ratio shows how close the endpoint is to the framework's limit.
The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import free_port, run_cli, scratch_database, server_env, server_process

SEARCH_WORDS = [
    "guitar", "python", "teaching", "piano", "marketing", "photography", "english", "arabic",
    "django", "singing", "excel", "logo", "android", "french", "calligraphy", "video",
    "البرمجة", "تعليم", "الغيتار", "التسويق", "مدرسة", "الخط", "تصميم", "دروس",
]  # fmt: skip

BARE_SERVER = r"""
import base64, json, sys
import tornado.ioloop, tornado.web

body = base64.b64decode(sys.argv[2])

class Bare(tornado.web.RequestHandler):
    def get(self, _path):
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.write(body)

app = tornado.web.Application([(r"/(.*)", Bare)])
app.listen(int(sys.argv[1]), address="127.0.0.1")
tornado.ioloop.IOLoop.current().start()
"""


@dataclass
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def _ms(text: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s|m)$", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def rotating(paths: list[str]) -> str:
    """A wrk Lua script requesting `paths` in turn."""
    listed = ",\n".join(json.dumps(p) for p in paths)
    return (
        f"local paths = {{\n{listed}\n}}\nlocal i = 0\n"
        "request = function()\n  i = i + 1\n"
        '  return wrk.format("GET", paths[(i % #paths) + 1])\nend\n'
    )


def never_repeating(categories: list[int]) -> str:
    """A wrk Lua script of category pages, each with another max_price (20 to 500 points).

    The (category, max_price) pairs come round again only after 20 x 481 requests: by then the
    node's listing cache (32 MiB, about 1,600 pages) has long dropped that page, so every
    request is answered from the database.
    """
    listed = ", ".join(str(c) for c in categories)
    return (
        f"local cats = {{{listed}}}\nlocal i = 0\n"
        "request = function()\n  i = i + 1\n"
        "  local price = 20 + (math.floor(i / #cats) % 481)\n"
        '  return wrk.format("GET", "/api/skills/?category=" .. cats[(i % #cats) + 1]'
        ' .. "&max_price=" .. price)\nend\n'
    )


def never_repeating_search(words: list[str]) -> str:
    """A wrk Lua script searching `words` in turn, each with another max_price (as above)."""
    listed = ", ".join(json.dumps(quote(w)) for w in words)
    return (
        f"local words = {{{listed}}}\nlocal i = 0\n"
        "request = function()\n  i = i + 1\n"
        "  local price = 20 + (math.floor(i / #words) % 481)\n"
        '  return wrk.format("GET", "/api/skills/?search=" .. words[(i % #words) + 1]'
        ' .. "&max_price=" .. price)\nend\n'
    )


def wrk(url: str, *, seconds: float, connections: int, lua: str | None = None) -> WrkResult:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    with tempfile.TemporaryDirectory() as folder:
        if lua is not None:
            script = Path(folder) / "requests.lua"
            script.write_text(lua)
            args += ["-s", str(script)]
        out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors:.*?timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (
        int(socket_errors.group(1)) if socket_errors else 0
    )
    return WrkResult(rps, p50, p99, errors)


def bare_server(body: bytes) -> tuple[subprocess.Popen[bytes], int]:
    import base64

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", BARE_SERVER, str(port), base64.b64encode(body).decode()]
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return process, port
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("bare server did not start") from None
            time.sleep(0.05)


# The cache-missing lines' targets by table size: (ratio to bare Tornado, p99 ms).
UNCACHED_TARGETS = {
    10_000: {"category page, uncached": (0.25, 50.0), "search page, uncached": (0.15, 100.0)},
    100_000: {"category page, uncached": (0.20, 80.0), "search page, uncached": (0.10, 150.0)},
    1_000_000: {"category page, uncached": (None, 100.0), "search page, uncached": (None, 250.0)},
}
CACHED_TARGETS = {
    "category page": (2000, 50.0),
    "search page": (1000, 100.0),
    "skill detail": (3000, None),
}


@contextlib.asynccontextmanager
async def database(args: argparse.Namespace) -> AsyncIterator[str]:
    """A seeded database: the one given (--database-url, seeded before), else a scratch one."""
    if args.database_url:
        yield args.database_url
        return
    async with scratch_database() as url:
        env = server_env(url)
        run_cli("migrate", env=env)
        started = time.perf_counter()
        report = run_cli("seed-demo", "--skills", str(args.skills), env=env).strip()
        print(f"seed-demo: {report.splitlines()[0]} in {time.perf_counter() - started:.1f}s")
        yield url


def verdict(name: str, skills: int, result: WrkResult, bare: WrkResult) -> str:
    ratio = result.requests_per_s / bare.requests_per_s
    if name in CACHED_TARGETS:
        rps_goal, p99_goal = CACHED_TARGETS[name]
        met = result.requests_per_s >= rps_goal and (p99_goal is None or result.p99_ms < p99_goal)
        goal = f">= {rps_goal} req/s" + (f", p99 < {p99_goal:g} ms" if p99_goal else "")
        return f"{goal}: {'met' if met else 'NOT met'}"
    size = min(UNCACHED_TARGETS, key=lambda n: abs(n - skills))
    ratio_goal, p99_goal = UNCACHED_TARGETS[size][name]
    met = (ratio_goal is None or ratio >= ratio_goal) and result.p99_ms < p99_goal
    goal = (f">= {ratio_goal:g}x bare, " if ratio_goal else "") + f"p99 < {p99_goal:g} ms"
    return f"{goal}: {'met' if met else 'NOT met'}"


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skills", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--database-url", help="an already migrated and seeded database (not dropped)"
    )
    parser.add_argument("--uncached-only", action="store_true", help="only the cache-missing lines")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk (this benchmark needs it)")
        return 2
    import asyncpg

    async with database(args) as url:
        env = server_env(url)
        conn = await asyncpg.connect(url.replace("+asyncpg", ""))
        categories = [
            r["id"]
            for r in await conn.fetch(
                "SELECT DISTINCT c.id FROM skill_categories c JOIN skills s"
                " ON s.category_id = c.id OR s.category_id IN"
                " (SELECT id FROM skill_categories WHERE parent_id = c.id) ORDER BY c.id"
            )
        ]
        skill_ids = [
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM skills WHERE status = 'active' ORDER BY random() LIMIT 2000"
            )
        ]
        skills = int(await conn.fetchval("SELECT count(*) FROM skills"))
        await conn.execute("VACUUM ANALYZE")
        await conn.close()

        endpoints = {
            "category page": [f"/api/skills/?category={c}" for c in categories],
            "search page": [f"/api/skills/?search={quote(w)}" for w in SEARCH_WORDS],
            "skill detail": [f"/api/skills/{i}/" for i in skill_ids],
        }
        scripts = {name: rotating(paths) for name, paths in endpoints.items()}
        if args.uncached_only:
            scripts = {}
        scripts["category page, uncached"] = never_repeating(categories)
        scripts["search page, uncached"] = never_repeating_search(SEARCH_WORDS)
        # Their sample responses: one page as the uncached requests get it.
        endpoints["category page, uncached"] = [
            f"/api/skills/?category={categories[0]}&max_price=260"
        ]
        endpoints["search page, uncached"] = ["/api/skills/?search=guitar&max_price=260"]
        with server_process(env) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                samples: dict[str, bytes] = {}
                for name, paths in endpoints.items():
                    for path in paths:
                        response = await client.get(path)
                        if response.status_code != 200:
                            raise RuntimeError(f"{path}: {response.status_code} {response.text}")
                    samples[name] = (await client.get(paths[0])).content
            warm = scripts.get("skill detail", scripts["category page, uncached"])
            wrk(server.url, seconds=2, connections=args.connections, lua=warm)
            load = os.getloadavg()[0]
            print(
                f"\n{skills:,} skills; one server process; wrk -t1 -c{args.connections} "
                f"-d{args.seconds:g}s; {os.cpu_count()} cores shared by wrk, the server and "
                f"PostgreSQL; load average {load:.2f} at the start\n"
            )
            print(
                f"{'endpoint':<26}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
                f"{'bare req/s':>12}{'bare p99':>10}{'ratio':>8}  target"
            )
            for name, lua in scripts.items():
                result = wrk(
                    server.url, seconds=args.seconds, connections=args.connections, lua=lua
                )
                process, port = bare_server(samples[name])
                try:
                    bare = wrk(
                        f"http://127.0.0.1:{port}/",
                        seconds=args.seconds,
                        connections=args.connections,
                    )
                finally:
                    process.terminate()
                    process.wait(timeout=10)
                errors = f" ({result.errors} errors)" if result.errors else ""
                print(
                    f"{name:<26}{result.requests_per_s:>9,.0f}{result.p50_ms:>9.1f}"
                    f"{result.p99_ms:>9.1f}{bare.requests_per_s:>12,.0f}{bare.p99_ms:>10.1f}"
                    f"{result.requests_per_s / bare.requests_per_s:>8.2f}  "
                    f"{verdict(name, skills, result, bare)}{errors}"
                )
            print("\nresponse sizes: " + ", ".join(f"{k} {len(v):,} B" for k, v in samples.items()))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
