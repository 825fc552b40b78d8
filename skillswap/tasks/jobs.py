"""The scheduler's periodic jobs, each every so many seconds (a setting each).

Every job is safe to run twice: a deadline sweep re-run finds nothing due, the idempotency
and outbox sweeps delete nothing more, a released lease is released once, and the mails the
digest and the ledger check enqueue are keyed on their room and hour, or on their check; a
lesson reminder is recorded under its lesson, person and offset before it is sent.
Payment reconciliation settles a payment through the same conditional update as its
webhook, so a second run finds it settled. The scheduler's lock keeps
two schedulers from doubling the work; these keep a doubled run harmless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from skillswap import metrics
from skillswap.accounts.deletion import erase_due_accounts
from skillswap.accounts.exports import sweep_exports
from skillswap.admin.ledger import record_ledger_check
from skillswap.admin.stats import roll_up_closed_days
from skillswap.chat.digest import enqueue_digests
from skillswap.idempotency import purge_expired
from skillswap.lessons.reminders import send_due_reminders
from skillswap.orders.deadlines import run_order_deadlines
from skillswap.payments.reconcile import reconcile_payments
from skillswap.points.alerts import alert_administrators
from skillswap.points.services import audit_ledger
from skillswap.settings import Settings
from skillswap.tasks import outbox

if TYPE_CHECKING:
    from skillswap.deps import Deps

log = logging.getLogger("skillswap.tasks.jobs")


@dataclass(frozen=True)
class Job:
    name: str
    interval_seconds: int
    run: Callable[[Deps, datetime], Awaitable[None]]
    at_start: bool = True  # run as soon as a scheduler starts (else one interval later)


async def order_deadlines(deps: Deps, now: datetime) -> None:
    """Orders whose deadline passed move on (expired and refunded, or completed and paid);
    review windows that closed publish their reviews."""
    report = await run_order_deadlines(deps, now=now)
    if report.expired or report.completed or report.disputed or report.reviews_published:
        log.info(
            "order deadlines: %d expired, %d completed, %d disputed, %d reviews published",
            report.expired,
            report.completed,
            report.disputed,
            report.reviews_published,
        )


async def lesson_reminders(deps: Deps, now: datetime) -> None:
    """Lessons starting within a LESSON_REMINDERS offset: each participant reminded once."""
    sent = await send_due_reminders(deps, now=now)
    if sent:
        log.info("lesson reminders: %d sent", sent)


async def idempotency_sweep(deps: Deps, now: datetime) -> None:
    """Idempotency-Key records past their replay window go."""
    purged = await purge_expired(
        deps.db, ttl_seconds=deps.settings.idempotency_ttl_seconds, now=now
    )
    if purged:
        log.info("idempotency sweep: %d expired records deleted", purged)


async def outbox_leases(deps: Deps, now: datetime) -> None:
    """Outbox rows claimed but not finished within their lease are published again."""
    released = await outbox.release_expired_leases(
        deps.db, now=now, max_attempts=deps.settings.task_max_attempts
    )
    if released:
        log.warning("outbox: %d rows outlived their lease and are published again", released)


def _tick_start(now: datetime, interval_seconds: int) -> datetime:
    """The start of the interval `now` falls in (midnight UTC for a daily job): a run's name."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    ticks = int((now - epoch).total_seconds()) // max(1, interval_seconds)
    return epoch + timedelta(seconds=ticks * max(1, interval_seconds))


async def ledger_check(deps: Deps, now: datetime) -> None:
    """Every ledger invariant; each violation is logged as an error and the administrators
    are mailed about them (once per check). The outcome is kept for the ledger admin page."""
    started = time.perf_counter()
    report = await audit_ledger(deps.db)
    await record_ledger_check(
        deps,
        report,
        checked_at=now,
        duration_ms=round((time.perf_counter() - started) * 1000),
    )
    metrics.LEDGER_CHECK_OK.set(1 if report.ok else 0)
    metrics.LEDGER_CHECK_TIME.set(now.timestamp())
    for violation in report.violations:
        log.error("ledger check: VIOLATION %s: %s", violation.invariant, violation.detail)
    if report.ok:
        log.info("ledger check ok: %d invariants hold", len(report.checked))
        return
    check = _tick_start(now, deps.settings.ledger_check_interval_seconds)
    alerted = await alert_administrators(deps, report.violations, check=check, now=now)
    if not alerted:
        log.error("ledger check: no active administrator to alert")


async def chat_digest(deps: Deps, now: datetime) -> None:
    """Members away with messages unread for a while get one mail about them per room."""
    enqueued = await enqueue_digests(deps, now=now)
    if enqueued:
        log.info("chat digest: %d mails enqueued", enqueued)


async def outbox_sweep(deps: Deps, now: datetime) -> None:
    """Done outbox rows past OUTBOX_RETENTION_SECONDS go; dead-lettered ones stay."""
    purged = await outbox.purge_done(
        deps.db, older_than=now - timedelta(seconds=deps.settings.outbox_retention_seconds)
    )
    if purged:
        log.info("outbox sweep: %d done rows deleted", purged)


async def payments_reconcile(deps: Deps, now: datetime) -> None:
    """Payments pending past PAYMENTS_RECONCILE_AFTER_SECONDS: their gateway is asked, and
    what it answers is settled (once, whatever the webhooks do meanwhile)."""
    report = await reconcile_payments(deps, now=now)
    if report.settled:
        log.warning(
            "payments reconcile: %d of %d pending payments settled by asking the gateway "
            "(their webhook did not come): %s",
            len(report.settled),
            len(report.asked),
            ", ".join(f"{r.payment_id} {r.status}" for r in report.settled),
        )


async def stats_rollup(deps: Deps, now: datetime) -> None:
    """Closed UTC days not in the statistics' daily rollup yet are added to it (a re-run
    starts after the last day added)."""
    added = await roll_up_closed_days(deps, now)
    if added:
        log.info("stats rollup: %d days added", added)


async def account_deletions(deps: Deps, now: datetime) -> None:
    """Accounts whose deletion grace period ended are erased (a tombstone stays)."""
    report = await erase_due_accounts(deps, now=now)
    if report.erased or report.waiting:
        log.info(
            "account deletions: %d erased, %d waiting for open orders",
            len(report.erased),
            len(report.waiting),
        )


async def export_sweep(deps: Deps, now: datetime) -> None:
    """Data exports used or past their time: their files are deleted from storage."""
    deleted = await sweep_exports(deps, now=now)
    if deleted:
        log.info("export sweep: %d files deleted", deleted)


def scheduled_jobs(settings: Settings) -> list[Job]:
    """The periodic jobs of one deployment, at the configured intervals."""
    return [
        Job("order_deadlines", settings.order_deadlines_interval_seconds, order_deadlines),
        Job("lesson_reminders", settings.lesson_reminders_interval_seconds, lesson_reminders),
        Job("idempotency_sweep", settings.idempotency_sweep_interval_seconds, idempotency_sweep),
        Job("outbox_leases", settings.outbox_lease_check_interval_seconds, outbox_leases),
        Job(
            "ledger_check",
            settings.ledger_check_interval_seconds,
            ledger_check,
            at_start=False,
        ),
        Job("chat_digest", settings.chat_digest_interval_seconds, chat_digest),
        Job("outbox_sweep", settings.outbox_sweep_interval_seconds, outbox_sweep),
        Job(
            "payments_reconcile",
            settings.payments_reconcile_interval_seconds,
            payments_reconcile,
        ),
        Job("stats_rollup", settings.stats_rollup_interval_seconds, stats_rollup),
        Job("account_deletions", settings.account_deletion_interval_seconds, account_deletions),
        Job("export_sweep", settings.data_export_sweep_interval_seconds, export_sweep),
    ]
