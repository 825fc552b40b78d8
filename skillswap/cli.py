"""The `skillswap` command: serve, worker, scheduler, tasks, migrate, createadmin, seed-demo, ledger,
payments."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

from skillswap.logs import announce, configure_logging
from skillswap.settings import ConfigError, Settings

Command = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]
_commands: dict[str, Command] = {}


def command(name: str) -> Callable[[Command], Command]:
    def register(fn: Command) -> Command:
        _commands[name] = fn
        return fn

    return register


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skillswap", description="SkillSwap backend")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run one web node (REST, WebSocket, docs, admin)")
    serve.add_argument("--host", help="default HOST, 127.0.0.1")
    serve.add_argument("--port", type=int, help="default PORT, 8000")
    serve.add_argument(
        "--workers",
        type=int,
        help="processes sharing the port (default WEB_WORKERS, 1); needs PostgreSQL and Redis",
    )
    serve.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not migrate on start (the embedded default migrates by itself)",
    )

    worker = sub.add_parser(
        "worker",
        help="run TaskIQ workers: the outbox relay and the tasks (needs REDIS_URL)",
    )
    worker.add_argument("--workers", type=int, help="processes (default WORKER_PROCESSES, 1)")
    worker.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus metrics on this port, for every worker process",
    )
    worker.add_argument("--metrics-host", help="the address of --metrics-port (default HOST)")
    scheduler = sub.add_parser(
        "scheduler",
        help="run the periodic jobs (order deadlines, sweeps, ledger check); one per deployment",
    )
    scheduler.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    scheduler.add_argument("--metrics-host", help="the address of --metrics-port (default HOST)")
    tasks = sub.add_parser("tasks", help="background work in the outbox")
    tasks_sub = tasks.add_subparsers(dest="tasks_command", required=True)
    failed = tasks_sub.add_parser("failed", help="list dead-lettered rows with their last error")
    failed.add_argument("--limit", type=int, default=100)
    retry = tasks_sub.add_parser("retry", help="give a dead-lettered row its attempts back")
    retry.add_argument("id", type=int)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument(
        "--downgrade", metavar="REVISION", help="downgrade to REVISION (e.g. base)"
    )

    admin = sub.add_parser(
        "createadmin", help="create an administrator (or promote an existing user)"
    )
    admin.add_argument("--email")
    admin.add_argument("--username")
    admin.add_argument("--password", help="omit to be asked (or set SKILLSWAP_ADMIN_PASSWORD)")

    seed = sub.add_parser("seed-demo", help="demo users, categories and skills")
    seed.add_argument("--skills", type=int, default=200)
    seed.add_argument(
        "--users",
        type=int,
        default=0,
        help="default: one per 20 skills, at least 10 and at most 5,000",
    )

    ledger_parser = sub.add_parser("ledger", help="the points ledger")
    ledger_sub = ledger_parser.add_subparsers(dest="ledger_command", required=True)
    ledger_sub.add_parser(
        "check", help="verify every ledger invariant; exits 1 naming each violation"
    )

    payments_parser = sub.add_parser("payments", help="payments through the gateways")
    payments_sub = payments_parser.add_subparsers(dest="payments_command", required=True)
    reconcile = payments_sub.add_parser(
        "reconcile",
        help="ask the gateways about payments still pending and settle what they answer "
        "(what the payments_reconcile job does)",
    )
    reconcile.add_argument(
        "--after",
        type=int,
        metavar="SECONDS",
        help="only payments pending this long (default PAYMENTS_RECONCILE_AFTER_SECONDS)",
    )

    return parser


@command("migrate")
async def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from skillswap.migrate import downgrade_to, upgrade_to_head

    if args.downgrade:
        await downgrade_to(settings, args.downgrade)
        print(f"downgraded to {args.downgrade}")
    else:
        await upgrade_to_head(settings)
        print("database is at the latest revision")
    return 0


@command("createadmin")
async def _createadmin(args: argparse.Namespace, settings: Settings) -> int:
    from skillswap.accounts.admins import create_admin
    from skillswap.bootstrap import bootstrap
    from skillswap.errors import AppError
    from skillswap.migrate import upgrade_to_head

    email, username, password = args.email, args.username, args.password
    if settings.is_sqlite:
        await upgrade_to_head(settings)
    deps = await bootstrap(settings)
    try:
        user, created = await create_admin(deps, email=email, username=username, password=password)
    except AppError as exc:
        translator = deps.catalogs.get("en")
        print(f"error: {translator.text(exc.detail)}", file=sys.stderr)
        for field, messages in exc.errors.items():
            for message in messages:
                print(f"  {field}: {translator.text(message)}", file=sys.stderr)
        return 2
    finally:
        await deps.close()
    print(f"{'created' if created else 'promoted'} administrator {user.username} (id {user.id})")
    return 0


MAX_DEMO_USERS = 5_000


@command("seed-demo")
async def _seed_demo(args: argparse.Namespace, settings: Settings) -> int:
    from skillswap.accounts.demo import DEMO_PASSWORD, seed_demo
    from skillswap.bootstrap import bootstrap
    from skillswap.migrate import upgrade_to_head

    if settings.is_sqlite:
        await upgrade_to_head(settings)
    deps = await bootstrap(settings)
    try:
        # Each demo user's wallet and bonus are written one by one: a million skills go to
        # 5,000 people (200 each) so that seeding stays a matter of minutes.
        users = args.users or min(max(10, args.skills // 20), MAX_DEMO_USERS)
        report = await seed_demo(deps, skills=args.skills, users=users)
    finally:
        await deps.close()
    print(", ".join(f"{value} {name}" for name, value in report.items()))
    print(f"sign in as {report.sign_in} (any demo user) with the password {DEMO_PASSWORD}")
    return 0


@command("ledger")
async def _ledger(args: argparse.Namespace, settings: Settings) -> int:
    from skillswap.db import Database, create_engine
    from skillswap.migrate import upgrade_to_head
    from skillswap.points.services import audit_ledger

    if settings.is_sqlite:
        await upgrade_to_head(settings)
    db = Database(create_engine(settings))
    try:
        report = await audit_ledger(db)
    finally:
        await db.dispose()
    for violation in report.violations:
        print(f"VIOLATION {violation.invariant}: {violation.detail}")
    counts = ", ".join(f"{n} {table}" for table, n in report.counts.items())
    if not report.ok:
        print(f"ledger check FAILED: {len(report.violations)} violations ({counts})")
        return 1
    print(f"ledger check ok: {len(report.checked)} invariants hold ({counts})")
    return 0


@command("payments")
async def _payments(args: argparse.Namespace, settings: Settings) -> int:
    from skillswap.bootstrap import bootstrap
    from skillswap.payments.reconcile import reconcile_payments

    if args.after is not None:
        settings = settings.with_overrides(payments_reconcile_after_seconds=max(0, args.after))
    if settings.is_sqlite:
        await _migrate_embedded(settings)
    deps = await bootstrap(settings)
    try:
        report = await reconcile_payments(deps, now=deps.clock())
    finally:
        await deps.close()
    for reconciled in report.asked:
        print(f"payment {reconciled.payment_id} ({reconciled.gateway}): {reconciled.status}")
    print(
        f"{len(report.asked)} pending payments asked about, {len(report.settled)} settled, "
        f"{len(report.asked) - len(report.settled)} still pending"
    )
    return 0


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT, in the running loop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def _worker_process(settings: Settings) -> int:
    from skillswap.bootstrap import OUTBOX_HANDLERS, bootstrap
    from skillswap.metrics import mark_started
    from skillswap.tasks.worker import run_worker

    deps = await bootstrap(settings)
    mark_started("worker")
    try:
        await run_worker(deps, OUTBOX_HANDLERS, _stop_on_signals())
    finally:
        await deps.close()
    return 0


def _run_workers(settings: Settings, processes: int, metrics_at: tuple[str, int | None]) -> int:
    """`skillswap worker`: `processes` worker processes, each a relay and a TaskIQ receiver.

    SIGTERM stops each from taking tasks; the running ones get WORKER_SHUTDOWN_TIMEOUT_SECONDS.
    With a port in `metrics_at` (host, port), the metrics of all of them are served there (by
    the supervisor, when there are several).
    """
    if not settings.redis_url:
        raise ConfigError(
            "skillswap worker needs REDIS_URL (the task stream); without it, "
            "skillswap serve runs the tasks and the scheduler itself"
        )
    if processes < 1:
        raise ConfigError("WORKER_PROCESSES (--workers) must be at least 1")
    if settings.is_sqlite:
        asyncio.run(_migrate_embedded(settings))
    announce(settings, f"SkillSwap worker: {processes} process{'es' if processes > 1 else ''}")
    metrics_host, metrics_port = metrics_at
    if processes > 1:
        with _metrics_across_processes():
            from skillswap.app import fork_processes
            from skillswap.metrics import serve_metrics

            if metrics_port is not None:
                serve_metrics(metrics_port, metrics_host)  # a thread of the supervisor
            if not fork_processes(processes):
                return 0  # the supervisor, once every worker has stopped
            return asyncio.run(_worker_process(settings))
    if metrics_port is not None:
        from skillswap.metrics import serve_metrics

        serve_metrics(metrics_port, metrics_host)
    return asyncio.run(_worker_process(settings))


_OWN_METRICS_DIRECTORY = "SKILLSWAP_OWN_METRICS_DIRECTORY"


@contextlib.contextmanager
def _metrics_across_processes() -> Iterator[None]:
    """Multiprocess metrics for the processes about to be forked: PROMETHEUS_MULTIPROC_DIR is
    the operator's (emptied of a previous run's files) or a fresh directory, removed when the
    supervisor leaves. Entered before anything imports prometheus_client, which chooses how
    it keeps values at import; a forked worker leaves too, but only the supervisor removes.
    """
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    supervisor = os.getpid()
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
    else:
        directory = Path(tempfile.mkdtemp(prefix="skillswap-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    try:
        yield
    finally:
        if not given and os.getpid() == supervisor:
            shutil.rmtree(directory, ignore_errors=True)


async def _migrate_embedded(settings: Settings) -> None:
    from skillswap.migrate import upgrade_to_head

    await upgrade_to_head(settings)


@command("scheduler")
async def _scheduler(args: argparse.Namespace, settings: Settings) -> int:
    from skillswap.bootstrap import bootstrap
    from skillswap.metrics import mark_started, serve_metrics
    from skillswap.tasks.jobs import scheduled_jobs
    from skillswap.tasks.scheduler import Scheduler, scheduler_lock

    if settings.is_sqlite:
        await _migrate_embedded(settings)
    if args.metrics_port is not None:
        serve_metrics(args.metrics_port, args.metrics_host or settings.host)
    deps = await bootstrap(settings)
    mark_started("scheduler")
    try:
        scheduler = Scheduler(deps, scheduled_jobs(settings), scheduler_lock(settings))
        announce(settings, "SkillSwap scheduler: running the periodic jobs while it holds the lock")
        await scheduler.run(_stop_on_signals())
    finally:
        await deps.close()
    return 0


@command("tasks")
async def _tasks(args: argparse.Namespace, settings: Settings) -> int:
    from skillswap.db import Database, create_engine
    from skillswap.models.base import utcnow
    from skillswap.tasks import outbox

    if settings.is_sqlite:
        await _migrate_embedded(settings)
    db = Database(create_engine(settings))
    try:
        if args.tasks_command == "retry":
            if not await outbox.retry_failed(db, args.id, now=utcnow()):
                print(f"error: no failed outbox row {args.id}", file=sys.stderr)
                return 1
            print(f"outbox row {args.id} is pending again")
            return 0
        rows = await outbox.list_failed(db, limit=args.limit)
    finally:
        await db.dispose()
    for row in rows:
        print(f"{row.id}\t{row.kind}\t{row.key}\t{row.attempts} attempts\t{row.last_error or ''}")
    print(f"{len(rows)} failed")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        configure_logging(settings)
        if args.command == "serve":
            if args.workers is not None:
                settings = settings.with_overrides(web_workers=args.workers)
            settings.validate_for_serving()
        if args.command == "worker":
            processes = settings.worker_processes if args.workers is None else args.workers
            metrics_at = (args.metrics_host or settings.host, args.metrics_port)
            return _run_workers(settings, processes, metrics_at)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "createadmin":
        # Asked before the loop starts: prompts block.
        args.email = args.email or input("Email: ").strip()
        args.username = args.username or input("Username: ").strip()
        args.password = args.password or settings.admin_password or getpass.getpass()
    if args.command == "serve":
        several = settings.web_workers > 1
        with _metrics_across_processes() if several else contextlib.nullcontext():
            return _serve(args, settings)
    handler = _commands[args.command]
    try:
        return asyncio.run(handler(args, settings))
    except KeyboardInterrupt:
        return 130


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    """`skillswap serve`, once the metrics know whether several processes will serve."""
    from skillswap.app import run_nodes

    # Not inside an event loop: with several workers, the processes fork before any starts.
    # The embedded default always migrates itself; a production node migrates unless told not to.
    migrate_first = settings.is_sqlite or not args.no_migrate
    # What the command line says is what the settings say from here on: links in mails
    # (without PUBLIC_URL) name the address actually served.
    settings = settings.with_overrides(
        host=args.host or settings.host,
        port=settings.port if args.port is None else args.port,
    )
    try:
        return run_nodes(
            settings, host=settings.host, port=settings.port, migrate_first=migrate_first
        )
    except KeyboardInterrupt:
        return 130
