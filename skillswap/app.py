"""The application factory and the server's start-up and shut-down."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import jinja2
import tornado.netutil
import tornado.web

from skillswap.bootstrap import OUTBOX_HANDLERS, bootstrap
from skillswap.deps import Deps
from skillswap.http.base import NotFoundHandler, with_version_aliases
from skillswap.http.compression import GzipWhenAsked
from skillswap.http.docs import StaticFiles
from skillswap.http.draining import DrainingServer
from skillswap.http.metrics import log_request
from skillswap.http.transport import HEADER_READ_CAP, GuardedApplication
from skillswap.logs import announce
from skillswap.metrics import mark_process_dead, mark_started
from skillswap.settings import Settings
from skillswap.tasks.worker import InProcess

HTTP_DIR = Path(__file__).resolve().parent / "http"

log = logging.getLogger("skillswap")


def collect_routes() -> list[Any]:
    """Every capability's route list, in one place."""
    from skillswap.http import (
        accounts,
        admin_audit,
        admin_categories,
        admin_ledger,
        admin_orders,
        admin_packages,
        admin_payments,
        admin_skills,
        admin_stats,
        admin_users,
        chat,
        docs,
        health,
        home,
        leaving,
        lesson_calendar,
        lesson_calls,
        lessons,
        media,
        metrics,
        notifications,
        oauth,
        orders,
        payments,
        payments_paymob,
        payments_paypal,
        points,
        reports,
        reviews,
        skills,
    )
    from skillswap.http.dashboard import dashboard_routes
    from skillswap.realtime import ws

    return [
        *home.routes,
        *health.routes,
        *metrics.routes,
        *docs.routes,
        *accounts.routes,
        *leaving.routes,
        *oauth.routes,
        *skills.routes,
        *admin_categories.routes,
        *media.routes,
        *points.routes,
        *orders.routes,
        *lesson_calendar.routes,  # /api/lessons/calendar... before /api/lessons/{id}/
        *lessons.routes,
        *lesson_calls.routes,
        *reviews.routes,
        *payments.routes,
        *payments_paypal.routes,
        *payments_paymob.routes,
        *admin_packages.routes,
        *admin_payments.routes,
        *admin_audit.routes,
        *admin_ledger.routes,
        *admin_orders.routes,
        *admin_stats.routes,
        *admin_users.routes,
        *admin_skills.routes,
        *reports.routes,
        *chat.routes,
        *notifications.routes,
        *ws.routes,
        *dashboard_routes(),
    ]


def make_template_environment() -> jinja2.Environment:
    """Jinja2 for the HTML pages (docs, admin dashboard), autoescaped."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HTTP_DIR / "templates")),
        autoescape=jinja2.select_autoescape(["html"]),
        enable_async=False,
    )


def make_app(settings: Settings, deps: Deps) -> tornado.web.Application:
    """Build the Tornado application around already-created dependencies."""
    return GuardedApplication(
        with_version_aliases(collect_routes()),  # every /api/ route under /api/v1/ too
        transforms=[GzipWhenAsked],  # gzip when the client asks (skillswap.http.compression)
        deps=deps,
        jinja=make_template_environment(),
        static_path=str(HTTP_DIR / "static"),
        static_url_prefix="/static/",
        static_handler_class=StaticFiles,
        default_handler_class=NotFoundHandler,
        debug=False,
        xheaders=settings.trust_proxy_headers,
        log_function=log_request,  # every request's timing (metrics) and access log line
    )


def make_server(app: tornado.web.Application, settings: Settings) -> DrainingServer:
    """The HTTP server for `app`; the app's RequestGuard answers requests over its limits."""
    return DrainingServer(
        app,
        xheaders=settings.trust_proxy_headers,
        # Requests the guard does not see (none, with make_app) keep the old cap on the body.
        max_body_size=max(settings.max_body_bytes, settings.max_upload_bytes) + 65_536,
        # Read this far so that headers over the guard's limit get an answer, not a reset.
        max_header_size=HEADER_READ_CAP,
        idle_connection_timeout=75,
    )


def run_nodes(settings: Settings, *, host: str, port: int, migrate_first: bool) -> int:
    """`skillswap serve`: migrate, bind the port, then run `settings.web_workers` processes.

    With one worker the node runs in this process. With several, the socket is bound once and
    shared by forked workers, each a full node (its own loop, pool and caches; PostgreSQL and
    Redis tie them together, as they tie separate machines). This process then supervises:
    SIGTERM/SIGINT are passed on to the workers, and a worker that dies is replaced.
    """
    settings.validate_for_serving()
    # Bound before migrating: a port that cannot be had is said at once, in one line.
    try:
        sockets = tornado.netutil.bind_sockets(port, address=host)
    except OSError as exc:
        reason = {
            errno.EADDRINUSE: "is already in use",
            errno.EACCES: "needs privileges this process does not have",
            errno.EADDRNOTAVAIL: "is on an address this machine does not have",
        }.get(exc.errno or 0)
        if reason is None:
            raise
        print(
            f"error: {host}:{port} {reason}; pick another port with --port (or PORT=...)",
            file=sys.stderr,
            flush=True,
        )
        return 1
    if migrate_first:
        from skillswap.migrate import upgrade_to_head

        asyncio.run(upgrade_to_head(settings))
    shown_host = "127.0.0.1" if host in {"0.0.0.0", ""} else host
    backend = "SQLite (embedded)" if settings.is_sqlite else "PostgreSQL"
    realtime = "Redis" if settings.redis_url else "in-process"
    workers = settings.web_workers
    announce(
        settings,
        f"SkillSwap serving at http://{shown_host}:{port}/ "
        f"(database: {backend}; realtime and tasks: {realtime}; "
        f"{workers} worker{'s' if workers > 1 else ''})",
    )
    if workers > 1 and not fork_processes(workers):
        return 0  # the supervisor, once every worker has stopped
    asyncio.run(serve(settings, sockets))
    return 0


def fork_processes(count: int) -> bool:
    """Fork `count` workers: True in a worker; the supervisor returns False when all stopped."""
    children: set[int] = set()
    stopping = False

    def pass_on(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def spawn() -> bool:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            return True
        children.add(pid)
        return False

    signal.signal(signal.SIGTERM, pass_on)
    signal.signal(signal.SIGINT, pass_on)
    for _ in range(count):
        if spawn():
            return True
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        children.discard(pid)
        mark_process_dead(pid)  # its live gauges go; its counts stay
        if not stopping:
            log.error("worker %d stopped unexpectedly (status %d); starting another", pid, status)
            time.sleep(1)  # a worker that cannot start must not spin
            if not stopping and spawn():  # told to stop meanwhile: start nothing new
                return True
    return False


async def serve(settings: Settings, sockets: list[socket.socket]) -> None:
    """Run one node on already-bound sockets until SIGINT/SIGTERM, then shut down cleanly."""
    deps = await bootstrap(settings)
    mark_started("web")
    if settings.is_production and not settings.smtp_host:
        log.warning(
            "mail is off: SMTP_HOST is not set, so verification codes, password resets and "
            "notifications are not emailed"
        )
    # Without Redis there is no broker to share: this process is its own worker and scheduler.
    background = None if settings.redis_url else InProcess(deps, OUTBOX_HANDLERS)
    if background is not None:
        await background.start()
    app = make_app(settings, deps)
    server = make_server(app, settings)
    # What start-up built (modules, models, routes: ~100k objects) lives as long as the process;
    # frozen, it stays out of the collector's full passes, which otherwise stall every request
    # in flight for tens of milliseconds (measured: p99 of cached reads 50 ms -> 13 ms).
    gc.collect()
    gc.freeze()
    # Objects made later (WebSockets, actors, statement caches) still made a full pass every
    # few seconds under load, ~90 ms each; collecting the young generation less often keeps
    # in-flight objects from being promoted, so full passes become rare (chat p99 75 -> 26 ms).
    gc.set_threshold(10_000, 50, 100)
    server.add_sockets(sockets)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await shut_down(settings, deps, server, background)


async def shut_down(
    settings: Settings, deps: Deps, server: DrainingServer, background: InProcess | None
) -> None:
    """Stop accepting, answer every request in progress, close WebSockets with 1001 (their
    clients resume on another node with `last_id`), write what the realtime bridge still
    holds to Redis, then release everything; within SHUTDOWN_TIMEOUT_SECONDS for the requests.
    """
    started = time.monotonic()
    log.info(
        "shutting down: %d requests in progress, up to %d s",
        server.requests_in_progress,
        settings.shutdown_timeout_seconds,
    )
    await server.drain(within=settings.shutdown_timeout_seconds)
    if background is not None:
        await background.close()  # running tasks finish; the relay and scheduler stop
    await deps.close()  # the realtime hub closes WebSockets and flushes its bridge first
    log.info("stopped in %.1f s", time.monotonic() - started)
