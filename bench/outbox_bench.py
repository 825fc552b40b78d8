"""Mails per second of one `skillswap worker`, and the outbox's delay from commit to delivery.

    .venv/bin/python bench/outbox_bench.py [--mails 2000] [--seconds 12] [--rate R ...]

Creates a scratch PostgreSQL database, starts an SMTP server in this process (aiosmtpd, on its
own thread, noting when each recipient's mail arrives) and one `skillswap worker` process (its
relay and its TaskIQ receiver, WORKER_CONCURRENCY at its default) on Redis, pointed at it.
This process writes `mail.code` rows the way a sign-up does (a one-time code and
`skillswap.notifications.outgoing.enqueue_code_mail`, through the app's own bootstrap), for
users created beforehand: sign-ups themselves are bound by Argon2 (~70/s) and could not keep
the worker busy.

1. Throughput: `--mails` rows in one transaction; mails/s = N / (last arrival - commit).
2. Delay: one row per transaction at a fixed rate for `--seconds` (each `--rate`, in mails/s;
   by default 50% and 80% of the throughput just measured); for each mail, the SMTP arrival
   time minus the time its commit returned. p50, p99 and max.
3. The bare reference, in the same run: aiosmtplib sending the same rendered message from this
   process to the same server, one connection per message as the worker does, one at a time
   and WORKER_CONCURRENCY at once. It renders and builds the MIME message once: it measures
   the SMTP exchange alone, which is what bounds the worker from above.

Beside the rates: CPU time per mail of the worker process (from /proc) and of this process
(the SMTP server; the client too in the bare runs), which says whether the worker is bound by
its own CPU; and for the paced runs the median delay of the last tenth of the mails, which
stays near p50 when the worker keeps up and climbs when a backlog grows. On a machine shared
with other work the figures move from run to run: the load average is printed at both ends.

Stops the worker, deletes its Redis keys and drops the database. `--profile-worker FILE` runs
the worker under cProfile and writes its stats there (they slow it down: figures from such a
run are not the worker's own).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosmtplib
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPProtocol
from aiosmtpd.smtp import Envelope, Session

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import ROOT, free_port, percentile, run_cli, scratch_database, server_env

from skillswap.auth.tokens import new_opaque_token
from skillswap.bootstrap import bootstrap
from skillswap.deps import Deps
from skillswap.mail.render import MailKind, links_base, render_email
from skillswap.mail.smtp import message_id_for, mime_message
from skillswap.models import OneTimeToken
from skillswap.models.users import TokenPurpose
from skillswap.notifications.outgoing import enqueue_code_mail
from skillswap.settings import Settings

EMAIL_FROM = "SkillSwap <no-reply@bench.example>"


# -- the SMTP server --------------------------------------------------------------------------


@dataclass
class Arrivals:
    """An aiosmtpd handler that notes (recipient, time.time()) for every message it accepts.

    It runs on the controller's thread: the bench's own loop, busy committing, cannot hold an
    arrival back (only the GIL can, briefly).
    """

    seen: list[tuple[str, float]] = field(default_factory=list)

    async def handle_DATA(
        self, _server: SMTPProtocol, _session: Session, envelope: Envelope
    ) -> str:
        now = time.time()
        for recipient in envelope.rcpt_tos:
            self.seen.append((recipient, now))  # list.append is atomic: no lock needed
        return "250 Message accepted"


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[Arrivals, int]]:
    arrivals = Arrivals()
    port = free_port()
    # A fixed server name: aiosmtpd would otherwise ask socket.getfqdn() once per connection.
    controller = Controller(arrivals, hostname="127.0.0.1", port=port, server_hostname="bench")
    controller.start()
    try:
        yield arrivals, port
    finally:
        controller.stop()


async def wait_for_mails(
    arrivals: Arrivals, since: int, recipients: set[str], *, within: float
) -> dict[str, float]:
    """The first arrival time of each of `recipients` (among arrivals from index `since` on)."""
    deadline = time.monotonic() + within
    while True:
        if len(arrivals.seen) - since >= len(recipients):
            first: dict[str, float] = {}
            for recipient, at in arrivals.seen[since:]:
                if recipient in recipients:
                    first.setdefault(recipient, at)
            if len(first) == len(recipients):
                return first
        if time.monotonic() > deadline:
            got = {r for r, _ in arrivals.seen[since:]} & recipients
            raise RuntimeError(f"{len(recipients) - len(got)} of {len(recipients)} mails missing")
        await asyncio.sleep(0.01)


def duplicates(arrivals: Arrivals, since: int, recipients: set[str]) -> int:
    counts: dict[str, int] = {}
    for recipient, _at in arrivals.seen[since:]:
        if recipient in recipients:
            counts[recipient] = counts.get(recipient, 0) + 1
    return sum(n - 1 for n in counts.values())


# -- the worker process -----------------------------------------------------------------------


@contextlib.contextmanager
def worker_process(env: dict[str, str], profile: str | None) -> Iterator[subprocess.Popen[bytes]]:
    """One `skillswap worker` process (one relay, one receiver), SIGTERMed afterwards."""
    runner = ["-m", "cProfile", "-o", profile] if profile else []
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, *runner, "-m", "skillswap", "worker", "--workers", "1"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=45)
            except subprocess.TimeoutExpired:
                process.kill()
            if process.returncode not in (0, -signal.SIGTERM):
                log.seek(0)
                print(f"worker exited with {process.returncode}:\n{log.read().decode()}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """This process's CPU time so far, all threads (the SMTP server's included)."""
    times = os.times()
    return times.user + times.system


# -- writing the rows (as a sign-up does, without the user) -----------------------------------


async def create_users(url: str, count: int, tag: str) -> list[tuple[int, str]]:
    """`count` verified users (written directly: setup, not measured); (id, email) each."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        now = datetime.now(UTC)
        rows = await conn.fetch(
            """
            INSERT INTO users (email, email_verified, username, username_key, display_name, bio,
                               avatar_url, phone, locale, is_admin, is_active, rating_sum,
                               rating_count, created_at, updated_at)
            SELECT $1 || g || '@bench.example', false, $1 || g, $1 || g,
                   '', '', '', '', 'en', false, true, 0, 0, $2, $2
            FROM generate_series(1, $3) AS g
            RETURNING id, email
            """,
            tag,
            now,
            count,
        )
        return [(row["id"], row["email"]) for row in rows]
    finally:
        await conn.close()


async def write_code_mails(deps: Deps, user_ids: list[int]) -> float:
    """A verification code and its `mail.code` row for each user, in one transaction; the
    time.time() at which its commit returned."""
    now = deps.clock()
    async with deps.db.uow() as uow:
        for user_id in user_ids:
            token, digest = new_opaque_token()
            uow.session.add(
                OneTimeToken(
                    token_hash=digest,
                    user_id=user_id,
                    purpose=TokenPurpose.VERIFY_EMAIL,
                    created_at=now,
                    expires_at=now + timedelta(seconds=deps.settings.email_token_ttl_seconds),
                )
            )
            await enqueue_code_mail(
                deps, uow, user_id=user_id, purpose=TokenPurpose.VERIFY_EMAIL, token=token
            )
        await uow.commit()
    return time.time()


# -- the three measurements -------------------------------------------------------------------


@dataclass(frozen=True)
class Burst:
    mails: int
    first_s: float  # from the commit to the first arrival
    last_s: float  # from the commit to the last arrival
    duplicates: int
    worker_cpu_s: float  # the worker process's CPU time from the commit to the last arrival
    bench_cpu_s: float  # this process's (the SMTP server's, mostly) over the same time

    @property
    def rate(self) -> float:
        return self.mails / self.last_s


async def burst(
    deps: Deps, url: str, arrivals: Arrivals, worker_pid: int, mails: int, tag: str
) -> Burst:
    users = await create_users(url, mails, tag)
    recipients = {email for _, email in users}
    since = len(arrivals.seen)
    committed = await write_code_mails(deps, [user_id for user_id, _ in users])
    worker_cpu, bench_cpu = cpu_seconds(worker_pid), own_cpu_seconds()
    first = await wait_for_mails(arrivals, since, recipients, within=max(60.0, mails / 10))
    worker_cpu, bench_cpu = cpu_seconds(worker_pid) - worker_cpu, own_cpu_seconds() - bench_cpu
    times = first.values()
    return Burst(
        mails,
        min(times) - committed,
        max(times) - committed,
        duplicates(arrivals, since, recipients),
        worker_cpu,
        bench_cpu,
    )


@dataclass(frozen=True)
class Paced:
    target_rate: float
    achieved_rate: float  # of commits, to show the pacing held
    delays_s: list[float]  # in commit order
    duplicates: int
    worker_cpu_s: float  # the worker's CPU time per mail, from the first commit to the last mail

    @property
    def tail_p50_s(self) -> float:
        """The median delay of the last tenth of the mails: near p50 if the worker kept up."""
        return percentile(self.delays_s[-max(1, len(self.delays_s) // 10) :], 0.5)


async def paced(
    deps: Deps,
    url: str,
    arrivals: Arrivals,
    worker_pid: int,
    rate: float,
    seconds: float,
    tag: str,
) -> Paced:
    """One mail per transaction, started every 1/rate s (overlapping if a commit is slow)."""
    count = max(1, round(rate * seconds))
    users = await create_users(url, count, tag)
    committed: dict[str, float] = {}
    since = len(arrivals.seen)

    async def one(user_id: int, email: str) -> None:
        committed[email] = await write_code_mails(deps, [user_id])

    loop = asyncio.get_running_loop()
    worker_cpu = cpu_seconds(worker_pid)
    began = loop.time()
    writers = []
    for i, (user_id, email) in enumerate(users):
        await asyncio.sleep(max(0.0, began + i / rate - loop.time()))
        writers.append(asyncio.create_task(one(user_id, email)))
    await asyncio.gather(*writers)
    span = max(committed.values()) - min(committed.values())
    recipients = set(committed)
    first = await wait_for_mails(arrivals, since, recipients, within=60)
    worker_cpu = cpu_seconds(worker_pid) - worker_cpu
    # In commit order: the tail shows whether the worker kept up or a backlog grew.
    delays = [first[email] - at for email, at in sorted(committed.items(), key=lambda c: c[1])]
    return Paced(
        rate,
        (count - 1) / span if span else 0.0,
        delays,
        duplicates(arrivals, since, recipients),
        worker_cpu / count,
    )


async def bare_smtp(deps: Deps, port: int, mails: int, concurrency: int) -> tuple[float, float]:
    """Mails/s of aiosmtplib sending the worker's verification mail, a connection per message,
    and this process's CPU time per mail (client and server)."""
    settings = deps.settings
    token, _digest = new_opaque_token()
    message = render_email(
        MailKind.VERIFY_EMAIL,
        to="bare@bench.example",
        translator=deps.catalogs.get(settings.default_locale),
        base_url=links_base(settings),
        context={"name": "bare", "token": token, "ttl_seconds": settings.email_token_ttl_seconds},
        message_id=message_id_for("bench:bare", sender=settings.email_from),
    )
    mime = mime_message(message, sender=settings.email_from, reply_to=settings.email_reply_to)
    left = iter(range(mails))

    async def sender() -> None:
        for _ in left:
            # The arguments SmtpMailer.send passes for SMTP_TLS=none without a login.
            await aiosmtplib.send(
                mime,
                hostname="127.0.0.1",
                port=port,
                use_tls=False,
                start_tls=False,
                timeout=settings.smtp_timeout_seconds,
            )

    began, cpu = time.perf_counter(), own_cpu_seconds()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return mails / (time.perf_counter() - began), (own_cpu_seconds() - cpu) / mails


# -- the run ----------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mails", type=int, default=2000, help="mails in the throughput burst")
    parser.add_argument("--seconds", type=float, default=12, help="length of each paced run")
    parser.add_argument(
        "--rate",
        type=float,
        action="append",
        help="mails/s of a paced run (repeatable; default: 50%% and 80%% of the throughput)",
    )
    parser.add_argument("--profile-worker", metavar="FILE", help="cProfile the worker into FILE")
    args = parser.parse_args()
    defaults = Settings()
    print(
        f"one `skillswap worker` process: WORKER_CONCURRENCY {defaults.worker_concurrency} "
        f"(default), OUTBOX_BATCH_SIZE {defaults.outbox_batch_size}; PostgreSQL, Redis stream; "
        f"SMTP: aiosmtpd in this process, plain, one connection per mail; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    async with scratch_database() as url:
        with smtp_server() as (arrivals, port):
            env = server_env(
                url,
                SMTP_HOST="127.0.0.1",
                SMTP_PORT=str(port),
                SMTP_TLS="none",
                EMAIL_FROM=EMAIL_FROM,
            )
            run_cli("migrate", env=env)
            deps = await bootstrap(Settings.from_env(env))
            try:
                with worker_process(env, args.profile_worker) as worker:
                    await run(deps, url, arrivals, port, worker.pid, args)
            finally:
                if deps.redis is not None:
                    async for key in deps.redis.scan_iter(match=f"{deps.settings.redis_prefix}*"):
                        await deps.redis.delete(key)
                await deps.close()


async def run(
    deps: Deps, url: str, arrivals: Arrivals, port: int, worker_pid: int, args: argparse.Namespace
) -> None:
    run_tag = f"b{uuid.uuid4().hex[:6]}"
    # The worker is ready (connected, listening, its consumer group made) once mails arrive.
    await burst(deps, url, arrivals, worker_pid, 20, f"{run_tag}w")
    result = await burst(deps, url, arrivals, worker_pid, args.mails, f"{run_tag}t")
    concurrency = deps.settings.worker_concurrency
    bare_one, bare_one_cpu = await bare_smtp(deps, port, args.mails, 1)
    bare_many, bare_many_cpu = await bare_smtp(deps, port, args.mails, concurrency)
    print()
    print(f"{'throughput':<52} {'mails/s':>8}   CPU ms per mail")
    print(
        f"{f'worker, {result.mails} mails committed at once':<52} {result.rate:>8,.0f}   "
        f"worker {result.worker_cpu_s / result.mails * 1000:.2f}, "
        f"SMTP server {result.bench_cpu_s / result.mails * 1000:.2f}"
    )
    print(
        f"  first mail {ms(result.first_s)} ms after the commit, last {result.last_s:.2f} s; "
        f"{result.duplicates} duplicates; the worker busy "
        f"{result.worker_cpu_s / result.last_s:.0%} of one CPU"
    )
    for name, rate, cpu in (
        ("bare aiosmtplib, the same message, 1 at a time", bare_one, bare_one_cpu),
        (f"bare aiosmtplib, the same message, {concurrency} at once", bare_many, bare_many_cpu),
    ):
        print(f"{name:<52} {rate:>8,.0f}   client + SMTP server {cpu * 1000:.2f}")
    print(f"worker at {result.rate / bare_many:.0%} of bare aiosmtplib ({concurrency} at once)")
    rates = args.rate or [round(result.rate * 0.5), round(result.rate * 0.8)]
    print()
    print(f"delay from commit to SMTP arrival, one mail per transaction, {args.seconds:.0f} s each")
    print(
        f"{'rate mails/s':>12} {'achieved':>9} {'mails':>6} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'mean ms':>8} {'last 10% p50':>13} {'dups':>5} {'worker CPU ms/mail':>19}"
    )
    for i, rate in enumerate(rates):
        run_result = await paced(
            deps, url, arrivals, worker_pid, rate, args.seconds, f"{run_tag}d{i}"
        )
        delays = run_result.delays_s
        print(
            f"{rate:>12,.0f} {run_result.achieved_rate:>9,.0f} {len(delays):>6} "
            f"{ms(percentile(delays, 0.5)):>8} {ms(percentile(delays, 0.99)):>8} "
            f"{ms(max(delays)):>8} {ms(statistics.fmean(delays)):>8} "
            f"{ms(run_result.tail_p50_s):>13} {run_result.duplicates:>5} "
            f"{run_result.worker_cpu_s * 1000:>19.2f}"
        )
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    asyncio.run(main())
