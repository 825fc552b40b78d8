"""The service's Prometheus metrics, each defined once, and their exposition.

Any layer may count here (it imports nothing of the web, task or realtime layers). In one
process the client's default registry holds the values. Across `serve --workers N` (and
`worker --workers N`) the command line sets PROMETHEUS_MULTIPROC_DIR before anything imports
prometheus_client (skillswap/cli.py, `_metrics_across_processes`): every process then writes its values to files of its own there, any process
can expose the sum of all of them, and a worker that dies keeps its counts (they happened)
while its live gauges (requests in flight, sockets open) go with it (`mark_process_dead`).

The labels are bounded sets: route templates (never a raw path), methods, statuses, task and
job names, transfer kinds, gateways, policies.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import multiprocess as _multiprocess
from prometheus_client.exposition import choose_encoder, start_http_server
from sqlalchemy.ext.asyncio import AsyncSession

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Seconds: from a cached read (~1 ms) to a slow upload or a gateway call.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# -- the web node ----------------------------------------------------------------------------------

HTTP_REQUEST_DURATION = Histogram(
    "skillswap_http_request_duration_seconds",
    "HTTP requests answered, by route template, method and status, and how long they took.",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
HTTP_REQUESTS_IN_FLIGHT = Gauge(
    "skillswap_http_requests_in_flight",
    "API requests begun and not yet answered.",
    multiprocess_mode="livesum",
)
WEBSOCKET_CONNECTIONS = Gauge(
    "skillswap_websocket_connections",
    "WebSocket connections open.",
    multiprocess_mode="livesum",
)
WEBSOCKET_MESSAGES = Counter(
    "skillswap_websocket_messages",
    "WebSocket frames received from clients (in) and sent to them (out).",
    ["direction"],
)
REALTIME_BRIDGE_LAG = Histogram(
    "skillswap_realtime_bridge_lag_seconds",
    "From an event's append to its Redis stream to its delivery on another node.",
    buckets=LATENCY_BUCKETS,
)
PROCESS_START = Gauge(
    "skillswap_process_start_time_seconds",
    "When each live SkillSwap process started (one series per process across workers).",
    ["role"],
    multiprocess_mode="liveall",
)

# -- the database pool -----------------------------------------------------------------------------

DB_POOL_IN_USE = Gauge(
    "skillswap_db_pool_connections_in_use",
    "Pooled database connections checked out.",
    multiprocess_mode="livesum",
)
DB_POOL_WAITING = Gauge(
    "skillswap_db_pool_waiting",
    "Callers waiting for a pooled database connection.",
    multiprocess_mode="livesum",
)
DB_POOL_WAIT = Histogram(
    "skillswap_db_pool_wait_seconds",
    "How long getting a pooled database connection took.",
    buckets=LATENCY_BUCKETS,
)

# -- background work -------------------------------------------------------------------------------

OUTBOX_BACKLOG = Gauge(
    "skillswap_outbox_rows",
    "Outbox rows by status (pending = due now), as of the last scrape.",
    ["status"],
    multiprocess_mode="mostrecent",
)
OUTBOX_OLDEST_DUE_AGE = Gauge(
    "skillswap_outbox_oldest_due_age_seconds",
    "How long the oldest due pending outbox row has waited (0: none), as of the last scrape.",
    multiprocess_mode="mostrecent",
)
TASKS = Counter(
    "skillswap_tasks",
    "Outbox tasks run, by kind and outcome (done, retry, failed, skipped).",
    ["task", "outcome"],
)
TASK_DURATION = Histogram(
    "skillswap_task_duration_seconds",
    "How long an outbox task ran, by kind.",
    ["task"],
    buckets=LATENCY_BUCKETS,
)
SCHEDULED_JOBS = Counter(
    "skillswap_scheduled_jobs",
    "Scheduled job runs, by job name and outcome (ok, failed).",
    ["name", "outcome"],
)
LEDGER_CHECK_OK = Gauge(
    "skillswap_ledger_check_ok",
    "1 if the last ledger check found every invariant holding, 0 if it found violations.",
    multiprocess_mode="mostrecent",
)
LEDGER_CHECK_TIME = Gauge(
    "skillswap_ledger_check_timestamp_seconds",
    "When the last ledger check ran (Unix time).",
    multiprocess_mode="mostrecent",
)

# -- the domain ------------------------------------------------------------------------------------

LEDGER_TRANSFERS = Counter(
    "skillswap_ledger_transfers",
    "Ledger transfers committed, by kind (replays of a key not counted).",
    ["kind"],
)
LEDGER_POINTS = Counter(
    "skillswap_ledger_points",
    "Points moved by committed ledger transfers, by kind.",
    ["kind"],
)
PAYMENTS = Counter(
    "skillswap_payments",
    "Payments created (pending) and moved to a status, by gateway and status.",
    ["gateway", "status"],
)
RATE_LIMIT_REFUSALS = Counter(
    "skillswap_rate_limit_refusals",
    "Requests refused with 429 by a rate-limit policy.",
    ["policy"],
)


# -- counting what a transaction did -----------------------------------------------------------------


def on_commit(session: AsyncSession, count: Callable[[], None]) -> None:
    """Run `count` once the unit of work `session` belongs to commits (never if it rolls back);
    at once for a session outside any unit of work (a statement atomic on its own)."""
    # The unit of work keeps itself in its session's info (skillswap.db.unit_of_work); it is not
    # imported here, so that the database layer may count too.
    unit = session.info.get("uow")
    if unit is None:
        count()
        return

    async def counted() -> None:
        count()

    unit.after_commit(counted)


def count_transfer(kind: str, amount: int) -> Callable[[], None]:
    """What counting one committed transfer does."""

    def count() -> None:
        LEDGER_TRANSFERS.labels(kind).inc()
        LEDGER_POINTS.labels(kind).inc(amount)

    return count


def count_payment(gateway: str, status: str) -> Callable[[], None]:
    """What counting one payment reaching `status` does."""
    return PAYMENTS.labels(gateway, status).inc


# -- exposition --------------------------------------------------------------------------------------


def is_multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def scrape_registry() -> Any:
    """The registry a scrape reads: every process's files in multiprocess mode, else this one's."""
    if not is_multiprocess():
        return REGISTRY
    registry = CollectorRegistry()
    _multiprocess.MultiProcessCollector(registry)
    return registry


def render(accept: str | None) -> tuple[bytes, str]:
    """The exposition for a scraper that sent `accept`: the body and its content type."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(scrape_registry()), content_type


def serve_metrics(port: int, host: str = "0.0.0.0") -> None:
    """Expose the metrics on their own port, from a thread of this process (worker, scheduler)."""
    start_http_server(port, addr=host, registry=scrape_registry())


def mark_started(role: str) -> None:
    """Record that this process (a web node, a worker, the scheduler) is up."""
    PROCESS_START.labels(role).set_to_current_time()


# -- several processes -----------------------------------------------------------------------------


def mark_process_dead(pid: int) -> None:
    """A worker was reaped: its live gauges stop counting (its counters stay)."""
    if is_multiprocess():
        _multiprocess.mark_process_dead(pid)
