"""A failed ledger check is mailed to every active administrator, once per check, in their
language, over real SMTP; a clean check mails no one."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from skillswap.bootstrap import bootstrap
from skillswap.deps import Deps
from skillswap.mail.smtp import SmtpMailer
from skillswap.models import OutboxRow, User
from skillswap.points import alerts
from skillswap.tasks import jobs, outbox
from skillswap.tasks.definitions import run_outbox_row
from tests.conftest import own_database
from tests.factories import unique_name
from tests.smtp_server import SmtpServer

CHECK_TIME = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@contextlib.asynccontextmanager
async def ledger_with_mail(smtp: SmtpServer) -> AsyncIterator[Deps]:
    async with own_database() as own:
        settings = own.with_overrides(
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_tls="none",
            smtp_timeout_seconds=5,
            email_from="SkillSwap <no-reply@skillswap.test>",
        )
        deps = await bootstrap(settings, clock=lambda: CHECK_TIME)
        assert isinstance(deps.mailer, SmtpMailer)
        try:
            yield deps
        finally:
            await deps.close()


async def add_user(
    deps: Deps, name: str, *, locale: str = "en", admin: bool = True, active: bool = True
) -> User:
    username = unique_name()
    user = User(
        email=f"{username}@example.com",
        username=username,
        username_key=username.lower(),
        display_name=name,
        locale=locale,
        is_admin=admin,
        is_active=active,
        created_at=CHECK_TIME,
        updated_at=CHECK_TIME,
    )
    async with deps.db.uow() as uow:
        uow.session.add(user)
        await uow.commit()
    return user


async def break_the_ledger(deps: Deps) -> None:
    """Five points out of nowhere on a system account: its balance no longer adds up."""
    async with deps.db.uow() as uow:
        await uow.session.execute(
            text(
                "UPDATE ledger_accounts SET balance = balance + 5 "
                "WHERE id = (SELECT MIN(id) FROM ledger_accounts)"
            )
        )
        await uow.commit()


async def alert_rows(deps: Deps) -> list[OutboxRow]:
    async with deps.db.read() as session:
        rows = await session.scalars(
            select(OutboxRow).where(OutboxRow.kind == alerts.ALERT_KIND).order_by(OutboxRow.id)
        )
        return list(rows)


async def deliver(deps: Deps) -> list[str]:
    claimed = await outbox.claim_due(deps.db, limit=100, lease_seconds=60, now=CHECK_TIME)
    return [await run_outbox_row(deps, alerts.HANDLERS, job.id, job.attempts) for job in claimed]


async def test_a_clean_check_mails_no_one(smtp: SmtpServer):
    async with ledger_with_mail(smtp) as deps:
        await add_user(deps, "Ada")
        await jobs.ledger_check(deps, CHECK_TIME)
        assert await alert_rows(deps) == []


async def test_violations_are_mailed_once_per_check_to_each_active_administrator(
    smtp: SmtpServer,
):
    async with ledger_with_mail(smtp) as deps:
        ada = await add_user(deps, "Ada")
        huda = await add_user(deps, "Huda", locale="ar")
        retired = await add_user(deps, "Retired", active=False)
        member = await add_user(deps, "Member", admin=False)
        await break_the_ledger(deps)
        await jobs.ledger_check(deps, CHECK_TIME)
        await jobs.ledger_check(deps, CHECK_TIME + timedelta(hours=1))  # the same day's check
        rows = await alert_rows(deps)
        assert [r.key for r in rows] == [
            f"ledger-check:2030-01-02T00:00:00Z:{ada.id}",
            f"ledger-check:2030-01-02T00:00:00Z:{huda.id}",
        ]
        violations = rows[0].payload["violations"]
        assert rows[0].payload == {
            "admin": ada.id,
            "checked_at": "2030-01-02 00:00 UTC",
            "total": len(violations),
            "violations": violations,
        }
        assert {v["invariant"] for v in violations} == {
            "balances_sum_to_zero",
            "balance_equals_entries",
        }
        lines = "".join(f"- {v['invariant']}: {v['detail']}\n" for v in violations)
        assert await deliver(deps) == ["done", "done"]
        to_ada, to_huda = await smtp.wait_for(ada.email), await smtp.wait_for(huda.email)
        assert to_ada.subject == "Ledger check: 2 violations found"
        assert to_ada.text == (
            "Hello Ada,\n\n"
            "The ledger check of 2030-01-02 00:00 UTC found broken invariants. "
            "Balances may be wrong until they are repaired.\n\n"
            f"{lines}\n"
            "Run `skillswap ledger check` for the whole report.\n"
        )
        assert to_huda.subject == "فحص دفتر النقاط: مخالفتان"
        assert to_huda.text == (
            "مرحبًا Huda،\n\n"
            "كشف فحص دفتر النقاط في 2030-01-02 00:00 UTC عن قواعد ثابتة مخترقة. "
            "قد تكون الأرصدة غير صحيحة حتى يُصلَح ذلك.\n\n"
            f"{lines}\n"
            "شغّل الأمر `skillswap ledger check` لقراءة التقرير كاملًا.\n"
        )
        assert '<html lang="ar" dir="rtl">' in to_huda.html
        assert smtp.to(retired.email) == [] and smtp.to(member.email) == []
        # The next day's check is another check: alerted again.
        await jobs.ledger_check(deps, CHECK_TIME + timedelta(days=1))
        assert len(await alert_rows(deps)) == 4


async def test_a_long_report_lists_the_first_violations_and_counts_the_rest(smtp: SmtpServer):
    from skillswap.ledger import Violation

    async with ledger_with_mail(smtp) as deps:
        ada = await add_user(deps, "Ada")
        many = [Violation("balance_equals_entries", f"account {n} is off") for n in range(25)]
        assert await alerts.alert_administrators(deps, many, check=CHECK_TIME, now=CHECK_TIME) == 1
        (row,) = await alert_rows(deps)
        assert row.payload["total"] == 25
        assert len(row.payload["violations"]) == alerts.MAX_REPORTED
        assert await deliver(deps) == ["done"]
        mail = await smtp.wait_for(ada.email)
        assert mail.subject == "Ledger check: 25 violations found"
        assert "- balance_equals_entries: account 19 is off\nAnd 5 more violations.\n" in mail.text
        assert "account 20" not in mail.text


async def test_an_administrator_demoted_before_the_mail_is_sent_gets_nothing(smtp: SmtpServer):
    async with ledger_with_mail(smtp) as deps:
        ada = await add_user(deps, "Ada")
        await break_the_ledger(deps)
        await jobs.ledger_check(deps, CHECK_TIME)
        async with deps.db.uow() as uow:
            user = await uow.session.get(User, ada.id)
            assert user is not None
            user.is_admin = False
            await uow.commit()
        assert await deliver(deps) == ["done"]
        assert smtp.to(ada.email) == []
