"""Shared test harness: real backends, the real app on an unused port, factories as fixtures.

Backends: PostgreSQL and Redis when reachable (always in CI, where their absence is an error),
otherwise the embedded default (SQLite file, in-memory denylist). The header of every run says
which were used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import tornado.httpserver
import tornado.testing

from skillswap.app import make_app, make_server
from skillswap.bootstrap import EVENT_HANDLERS, OUTBOX_HANDLERS, bootstrap
from skillswap.db import Database, create_engine
from skillswap.deps import Deps, EventHandlers
from skillswap.settings import Settings
from skillswap.storage import LocalStorage
from skillswap.tasks.worker import InProcess
from tests import factories
from tests.clock import MovableClock
from tests.factories import TestUser
from tests.mailer import RecordingMailer
from tests.openapi_answers import answers_match_their_declared_schema

PG_ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = (
    os.environ.get("SKILLSWAP_REQUIRE_SERVICES") == "1" or os.environ.get("CI") == "true"
)
FORCE_EMBEDDED = os.environ.get("SKILLSWAP_TEST_EMBEDDED") == "1"


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1
        ):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class Backends:
    database: str  # "postgresql" | "sqlite"
    redis: bool
    database_url: str
    redis_url: str
    admin_url: str | None = None
    db_name: str | None = None
    notes: list[str] = field(default_factory=list)


def _choose_backends() -> Backends:
    pg_up = not FORCE_EMBEDDED and _reachable(PG_ADMIN_URL, 5432)
    redis_up = not FORCE_EMBEDDED and _reachable(REDIS_URL, 6379)
    if REQUIRE_SERVICES and not FORCE_EMBEDDED and not (pg_up and redis_up):
        missing = [name for name, up in (("PostgreSQL", pg_up), ("Redis", redis_up)) if not up]
        raise pytest.UsageError(f"services required but unreachable: {', '.join(missing)}")
    if pg_up:
        name = f"skillswap_test_{os.getpid()}_{secrets.token_hex(3)}"
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        return Backends(
            "postgresql",
            redis_up,
            f"{base}/{name}",
            REDIS_URL if redis_up else "",
            PG_ADMIN_URL,
            name,
        )
    path = Path(tempfile.mkdtemp(prefix="skillswap-test-")) / "test.sqlite3"
    return Backends("sqlite", redis_up, f"sqlite:///{path}", REDIS_URL if redis_up else "")


BACKENDS = _choose_backends()
# A prefix per run keeps concurrent runs on one Redis from seeing each other's keys.
REDIS_PREFIX = f"skillswap-test-{secrets.token_hex(4)}:"


def pytest_report_header(config: pytest.Config) -> list[str]:
    db = "PostgreSQL" if BACKENDS.database == "postgresql" else "SQLite (embedded default)"
    redis = "Redis" if BACKENDS.redis else "in-process (no Redis reachable)"
    return [f"skillswap backends: database={db}; realtime/denylist={redis}"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "postgres" in item.keywords and BACKENDS.database != "postgresql":
            item.add_marker(
                pytest.mark.skip(reason="needs PostgreSQL; running on the embedded default")
            )
        if "redis" in item.keywords and not BACKENDS.redis:
            item.add_marker(pytest.mark.skip(reason="needs Redis; none reachable"))


async def _create_database() -> None:
    if BACKENDS.admin_url is None:
        return
    import asyncpg

    conn = await asyncpg.connect(BACKENDS.admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{BACKENDS.db_name}"')
    finally:
        await conn.close()


async def _drop_database() -> None:
    if BACKENDS.admin_url is None:
        return
    import asyncpg

    conn = await asyncpg.connect(BACKENDS.admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{BACKENDS.db_name}" WITH (FORCE)')
    finally:
        await conn.close()


def make_settings(**overrides: Any) -> Settings:
    base = Settings(
        secret_key="test-secret-key-that-is-long-enough-0123456789",
        database_url=BACKENDS.database_url,
        redis_url=BACKENDS.redis_url,
        # The production hash, with test-sized cost so the suite stays quick.
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        # Every test client shares 127.0.0.1; the per-address limit has its own test.
        login_max_failures_per_ip=10_000,
        # ... and the named rate limits too: tests/e2e/test_rate_limits.py turns them on.
        rate_limits="off",
        db_pool_size=10,
        db_max_overflow=20,
        redis_prefix=REDIS_PREFIX,
    )
    return base.with_overrides(**overrides)


@pytest.fixture(scope="session")
async def settings() -> AsyncIterator[Settings]:
    from skillswap.migrate import upgrade_to_head

    await _create_database()
    test_settings = make_settings()
    await upgrade_to_head(test_settings)
    yield test_settings
    await _drop_database()


@contextlib.asynccontextmanager
async def own_database() -> AsyncIterator[Settings]:
    """Settings for a database of its own, migrated and empty but for what migrations add:
    for a test that acts on every row (a deadline sweep) and asserts exactly what it did."""
    from skillswap.migrate import upgrade_to_head

    # Its own Redis keys and streams too: room ids of two databases must not meet.
    own_prefix = f"{REDIS_PREFIX}own-{secrets.token_hex(3)}:"
    if BACKENDS.admin_url is None:
        path = Path(tempfile.mkdtemp(prefix="skillswap-own-")) / "own.sqlite3"
        own = make_settings(database_url=f"sqlite:///{path}", redis_prefix=own_prefix)
        await upgrade_to_head(own)
        yield own
        return
    import asyncpg

    name = f"{BACKENDS.db_name}_own_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(BACKENDS.admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        own = make_settings(
            database_url=BACKENDS.database_url.rsplit("/", 1)[0] + f"/{name}",
            redis_prefix=own_prefix,
        )
        await upgrade_to_head(own)
        yield own
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


class EventLog:
    """Every domain event the test apps emitted, in order (a subscriber listed after the
    production ones in the event table those apps are bootstrapped with)."""

    def __init__(self) -> None:
        self.events: list[object] = []

    async def record(self, _deps: Deps, _uow: Any, event: object) -> None:
        self.events.append(event)

    def handlers(self) -> EventHandlers:
        """The production event table with this log listening to every event."""
        return {kind: (*handlers, self.record) for kind, handlers in EVENT_HANDLERS.items()}


EVENT_LOG = EventLog()


@pytest.fixture(scope="session")
def event_log() -> EventLog:
    return EVENT_LOG


@contextlib.contextmanager
def media_folder(deps: Deps, root: Path) -> Iterator[Path]:
    """Uploads to the test apps' local storage land in `root` while the block runs."""
    storage = deps.storage
    assert isinstance(storage, LocalStorage)
    previous, storage.root = storage.root, root
    try:
        yield root
    finally:
        storage.root = previous


async def build_test_deps(settings: Settings) -> Deps:
    """The dependencies of a test app: real backends, a recording mailer, a movable clock."""
    return await bootstrap(
        settings,
        mailer=RecordingMailer(),
        clock=MovableClock(),
        event_handlers=EVENT_LOG.handlers(),
        storage=LocalStorage(Path(tempfile.mkdtemp(prefix="skillswap-media-"))),
    )


@pytest.fixture(scope="session")
async def deps(settings: Settings) -> AsyncIterator[Deps]:
    built = await build_test_deps(settings)
    yield built
    await built.close()


@pytest.fixture(scope="session")
async def mailer(deps: Deps) -> RecordingMailer:
    assert isinstance(deps.mailer, RecordingMailer)
    return deps.mailer


@contextlib.asynccontextmanager
async def background_worker(deps: Deps) -> AsyncIterator[None]:
    """The app's outbox relay and worker (production's `InProcess`, without the scheduler: tests
    run the periodic jobs themselves). On a pool of its own, so that a test counting the
    statements of a request (QueryRecorder) does not count the relay's polls too."""
    # A small pool: beside every test app's own, the suite must stay under PostgreSQL's
    # max_connections (100 here), apps on databases of their own included.
    pool = Database(create_engine(deps.settings.with_overrides(db_pool_size=2, db_max_overflow=3)))
    worker = InProcess(dataclasses.replace(deps, db=pool), OUTBOX_HANDLERS, jobs=[])
    await worker.start()
    try:
        yield
    finally:
        await worker.close()
        await pool.dispose()


@contextlib.asynccontextmanager
async def serving(settings: Settings, deps: Deps) -> AsyncIterator[str]:
    """The app on an unused port of this process, with an outbox relay and worker beside it
    (what leaves the server: mails, pushes); its base URL. Tests run the scheduler's jobs
    themselves, when they want them."""
    app = make_app(settings, deps)
    http_server: tornado.httpserver.HTTPServer = make_server(app, settings)
    sock, port = tornado.testing.bind_unused_port()
    http_server.add_sockets([sock])
    async with background_worker(deps):
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            http_server.stop()
            await http_server.close_all_connections()


@pytest.fixture(scope="session")
async def server(settings: Settings, deps: Deps) -> AsyncIterator[str]:
    async with serving(settings, deps) as url:
        yield url


class Api:
    """A real HTTP client for the running app, with helpers that read like the API."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def request(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PATCH", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", path, **kwargs)


async def _created_names_its_location(response: httpx.Response) -> None:
    """Every 201 any test meets names what it created (RFC 9110 15.3.2), as an absolute URL."""
    if response.status_code == 201:
        location = response.headers.get("Location", "")
        assert location.startswith(("http://", "https://")), (
            f"201 from {response.request.method} {response.request.url.path} has no Location"
        )


@contextlib.asynccontextmanager
async def api_client(server: str) -> AsyncIterator[Api]:
    # Every answer is checked: a 201 names its Location; a success matches its declared schema.
    hooks = [_created_names_its_location, answers_match_their_declared_schema]
    async with httpx.AsyncClient(
        base_url=server, timeout=30, event_hooks={"response": hooks}
    ) as client:
        yield Api(client)


@pytest.fixture(scope="session")
async def api(server: str) -> AsyncIterator[Api]:
    async with api_client(server) as client:
        yield client


@dataclass
class OwnApp:
    """An app on a database of its own (`own_database`), with its client and dependencies."""

    api: Api
    deps: Deps

    async def user(self, **options: Any) -> TestUser:
        return await factories.make_user(self.api, self.deps, **options)


@pytest.fixture
async def own_app() -> AsyncIterator[OwnApp]:
    """A whole app on a database of its own, for tests that assert what a sweep did to all."""
    async with own_database() as own:
        built = await build_test_deps(own)
        try:
            async with serving(own, built) as url, api_client(url) as client:
                yield OwnApp(client, built)
        finally:
            await built.close()


@pytest.fixture
def make_user(api: Api, deps: Deps):  # type: ignore[no-untyped-def]
    """Factory: register a real user through the API and return its tokens."""

    async def factory(**options: Any) -> TestUser:
        return await factories.make_user(api, deps, **options)

    return factory


@pytest.fixture
def make_category(api: Api, make_user):  # type: ignore[no-untyped-def]
    """Factory: a new active category made through the admin API (a fresh slug each time)."""
    admins: list[TestUser] = []

    async def factory(**options: Any) -> dict[str, Any]:
        if not admins:
            admins.append(await make_user(admin=True))
        return await factories.make_category(api, admins[0], **options)

    return factory


@pytest.fixture
def make_skill(api: Api, make_category):  # type: ignore[no-untyped-def]
    """Factory: a skill listed through the API by `owner` (in a new category unless given)."""

    async def factory(owner: TestUser, **fields: Any) -> dict[str, Any]:
        if "category_id" not in fields:
            fields["category_id"] = (await make_category())["id"]
        return await factories.make_skill(api, owner, **fields)

    return factory


def free_port() -> int:
    """A TCP port nothing listens on right now (for a child process to bind)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def node_env(settings: Settings, *, redis_url: str | None = None) -> dict[str, str]:
    """The environment of a `skillswap serve` child process on the test database and Redis."""
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url if redis_url is None else redis_url,
        "REDIS_PREFIX": settings.redis_prefix,
        "SECRET_KEY": settings.secret_key,
        "LOG_LEVEL": "WARNING",
        # As the suite's own app: a test that wants the limits sets them.
        "RATE_LIMITS": settings.rate_limits,
    }


def run_skillswap(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the `skillswap` command as an operator would, in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "skillswap", *args],
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
    )


@contextlib.asynccontextmanager
async def extra_server(
    settings: Settings,
    *,
    routes: list[Any] | None = None,
    background: bool = False,
    **overrides: Any,
) -> AsyncIterator[tuple[str, Deps]]:
    """Another app in this process with its own settings and deps, on an unused port.

    `overrides` go to `bootstrap` (a storage, a clock, an event table...); the mailer is a
    RecordingMailer unless one is given. Its outbox rows are run by the session's server
    (another node of the same deployment), unless `background` gives it a relay and worker of
    its own: for an app on a database of its own (`own_database`)."""
    overrides.setdefault("mailer", RecordingMailer())
    deps = await bootstrap(settings, **overrides)
    app = make_app(settings, deps)
    if routes:
        app.add_handlers(r".*", routes)
    server = make_server(app, settings)
    sock, port = tornado.testing.bind_unused_port()
    server.add_sockets([sock])
    try:
        async with contextlib.AsyncExitStack() as stack:
            if background:
                await stack.enter_async_context(background_worker(deps))
            yield f"http://127.0.0.1:{port}", deps
    finally:
        server.stop()
        await deps.close()
