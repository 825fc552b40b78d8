"""Fuzz the API with schemathesis, as a signed-in user and as an administrator, and fail on any
server error or any answer that breaks the OpenAPI document (`/api/schema/`).

A real `skillswap serve` on a free port and a fresh database (PostgreSQL + Redis when reachable,
as in CI; `--embedded` for the SQLite default), limits off, a demo catalogue seeded; then one
schemathesis run per identity, each bounded by `--max-examples` and `--max-time`; then serve is
stopped and the database dropped. Exit status: 0 clean, 1 findings (schemathesis printed them,
with a curl line to replay each), 2 the run could not be set up.

    .venv/bin/python tools/fuzz_api.py                   # about two minutes in all
    .venv/bin/python tools/fuzz_api.py --max-time 30 --max-examples 5
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PASSWORD = "fuzzing horse battery staple"
# What is fuzzed is the contract: no 5xx, and every answer as the document declares it.
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"
# Operations that would end the run's own session (the rest of the run would then test nothing
# but 401s); the e2e tests cover them. The administrator's run comes last: what it does to
# other accounts (a ban of the fuzzing user) cannot starve the user's run.
# Google sign-in answers 503 oauth_not_configured by design when GOOGLE_CLIENT_ID is unset, as
# here (tests/e2e/test_google_signin.py runs it against a fake Google).
EXCLUDED = r"^/api/auth/(logout|password/change)/$|^/api/auth/oauth/google/"


def reachable(url: str, default_port: int) -> bool:
    parts = httpx.URL(url)
    try:
        with socket.create_connection((parts.host or "127.0.0.1", parts.port or default_port), 1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def fresh_database(embedded: bool) -> Iterator[dict[str, str]]:
    """The environment of a deployment on a database of its own, dropped afterwards."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "REDIS_", "RATE_LIMITS", "PORT"))
    }
    base |= {
        "SECRET_KEY": secrets.token_urlsafe(48),
        "RATE_LIMITS": "off",
        "REQUIRE_VERIFIED_EMAIL": "false",  # the fuzzer's user may order and review
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_KIB": "1024",
        "LOG_LEVEL": "WARNING",
    }
    data_dir = Path(tempfile.mkdtemp(prefix="skillswap-fuzz-"))
    base["DATA_DIR"] = str(data_dir)
    if embedded:
        try:
            yield base
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
        return
    name = f"skillswap_fuzz_{secrets.token_hex(4)}"
    admin_base = PG_ADMIN_URL.rsplit("/", 1)[0]
    subprocess.run(["createdb", f"--maintenance-db={PG_ADMIN_URL}", name], check=True)
    try:
        yield base | {
            "DATABASE_URL": f"{admin_base}/{name}",
            "REDIS_URL": REDIS_URL,
            "REDIS_PREFIX": f"{name}:",
        }
    finally:
        subprocess.run(
            ["dropdb", "--if-exists", "--force", f"--maintenance-db={PG_ADMIN_URL}", name],
            check=False,
        )
        shutil.rmtree(data_dir, ignore_errors=True)


def skillswap(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "skillswap", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise SystemExit(f"skillswap {' '.join(args)} failed:\n{done.stdout}{done.stderr}")


def wait_until_serving(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"serve exited with {process.returncode}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("serve did not answer within 60 s")


def signed_in(url: str, username: str) -> str:
    """An access token of `username`."""
    response = httpx.post(
        url + "/api/auth/login/", json={"username": username, "password": PASSWORD}, timeout=30
    )
    response.raise_for_status()
    token: str = response.json()["access"]
    return token


def register(url: str, username: str) -> None:
    response = httpx.post(
        url + "/api/auth/register/",
        json={"email": f"{username}@example.com", "username": username, "password": PASSWORD},
        timeout=30,
    )
    response.raise_for_status()


def schemathesis(url: str, token: str, who: str, args: argparse.Namespace) -> int:
    """One schemathesis run as the owner of `token`; its exit status."""
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{url}/api/schema/",
        "--checks",
        CHECKS,
        "--header",
        f"Authorization: Bearer {token}",
        "--exclude-path-regex",
        EXCLUDED,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(args.max_examples),
        "--max-time",
        str(args.max_time),
        "--request-timeout",
        "20",
        # One worker: hypothesis describes strategies with ast.parse, and CPython 3.11's AST
        # constructor is not safe across threads ("AST constructor recursion depth mismatch",
        # python/cpython#106905), which turned two workers into spurious runtime errors.
        "--workers",
        "1",
        "--generation-deterministic",
        "--suppress-health-check",
        "all",
        "--no-color",
    ]
    print(f"\n=== schemathesis as {who} ===", flush=True)
    return subprocess.run(command, cwd=ROOT, timeout=args.max_time + 120).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=10)
    parser.add_argument("--max-time", type=int, default=55, help="seconds per identity")
    parser.add_argument("--embedded", action="store_true", help="SQLite, no Redis")
    args = parser.parse_args()
    embedded = args.embedded or not (reachable(PG_ADMIN_URL, 5432) and reachable(REDIS_URL, 6379))
    started = time.monotonic()
    with fresh_database(embedded) as env:
        skillswap(env, "migrate")
        skillswap(env, "seed-demo", "--skills", "20", "--users", "5")
        skillswap(
            env,
            "createadmin",
            "--email",
            "fuzz-admin@example.com",
            "--username",
            "fuzzadmin",
            "--password",
            PASSWORD,
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        # The server's log (every refused request is a line) is shown only when it matters.
        server_log = (Path(env["DATA_DIR"]) / "serve.log").open("w+b")
        serve = subprocess.Popen(
            [sys.executable, "-m", "skillswap", "serve", "--port", str(port), "--no-migrate"],
            env=env,
            cwd=ROOT,
            stdout=server_log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_serving(url, serve)
            register(url, "fuzzuser")
            statuses = {
                "a signed-in user": schemathesis(url, signed_in(url, "fuzzuser"), "user", args),
                "an administrator": schemathesis(url, signed_in(url, "fuzzadmin"), "admin", args),
            }
        finally:
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(timeout=40)
            except subprocess.TimeoutExpired:
                serve.kill()
            server_log.seek(0)
            errors = [
                line
                for line in server_log.read().decode(errors="replace").splitlines()
                if " ERROR " in line or line.startswith(("Traceback", "  File", "sqlalchemy"))
            ]
            server_log.close()
        if errors:
            print("\nthe server logged:\n" + "\n".join(errors[-80:]))
    failed = [who for who, status in statuses.items() if status != 0]
    backend = "SQLite" if embedded else "PostgreSQL + Redis"
    elapsed = time.monotonic() - started
    if failed:
        print(f"\nfuzz: findings as {' and '.join(failed)} ({backend}, {elapsed:.0f} s)")
        return 1
    print(f"\nfuzz: clean as a signed-in user and as an administrator ({backend}, {elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
