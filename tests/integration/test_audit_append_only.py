"""The audit trail is append-only in the database itself: UPDATE and DELETE (and TRUNCATE on
PostgreSQL) of `admin_audit` are refused by its triggers, whatever the code does; and an action
that fails writes no row, since the row is part of the action's own transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from skillswap.admin import audit
from skillswap.admin.adjustments import adjust_wallet
from skillswap.deps import Deps
from skillswap.errors import Conflict
from skillswap.models import AuditEntry, User
from skillswap.models.admin import AuditTarget
from tests.factories import unique_name


async def _admin(deps: Deps) -> User:
    name = unique_name("auditor")
    async with deps.db.uow() as uow:
        admin = User(
            email=f"{name}@example.com",
            username=name,
            username_key=name.lower(),
            is_admin=True,
            created_at=deps.clock(),
        )
        uow.session.add(admin)
        await uow.session.flush()
        await uow.commit()
    return admin


async def _one_row(deps: Deps, admin: User) -> int:
    async with deps.db.uow() as uow:
        entry = await audit.record(
            uow.session,
            admin,
            "category.update",
            AuditTarget.CATEGORY,
            1,
            before={"name_en": "Old"},
            after={"name_en": "New"},
            reason="a test",
            now=deps.clock(),
        )
        await uow.commit()
    return entry.id


async def _still_there(deps: Deps, entry_id: int) -> AuditEntry:
    async with deps.db.read() as session:
        entry = await session.get(AuditEntry, entry_id)
    assert entry is not None
    return entry


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE admin_audit SET reason = 'rewritten' WHERE id = :id",
        "UPDATE admin_audit SET actor_id = actor_id WHERE id = :id",
        "DELETE FROM admin_audit WHERE id = :id",
    ],
)
async def test_the_database_refuses_to_change_or_remove_an_audit_row(deps: Deps, statement: str):
    entry_id = await _one_row(deps, await _admin(deps))
    with pytest.raises((DBAPIError, IntegrityError)) as refused:
        async with deps.db.uow() as uow:
            await uow.session.execute(text(statement), {"id": entry_id})
            await uow.commit()
    assert "append-only" in str(refused.value)
    entry = await _still_there(deps, entry_id)
    assert (entry.reason, entry.after) == ("a test", {"name_en": "New"})


@pytest.mark.postgres
async def test_postgresql_refuses_to_truncate_the_audit_trail(deps: Deps):
    entry_id = await _one_row(deps, await _admin(deps))
    with pytest.raises(DBAPIError) as refused:
        async with deps.db.uow() as uow:
            await uow.session.execute(text("TRUNCATE admin_audit CASCADE"))
            await uow.commit()
    assert "append-only" in str(refused.value)
    await _still_there(deps, entry_id)


async def test_a_refused_adjustment_writes_no_audit_row(deps: Deps):
    admin = await _admin(deps)

    async def rows() -> int:
        async with deps.db.read() as session:
            found = await session.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.actor_id == admin.id)
            )
        return int(found or 0)

    victim = await _admin(deps)  # no wallet yet: nothing to take
    with pytest.raises(Conflict) as refused:
        await adjust_wallet(
            deps,
            actor=admin,
            user_id=victim.id,
            amount=-5,
            reason="a debit that cannot be",
            idempotency_key=None,
        )
    assert refused.value.code == "insufficient_points"
    assert await rows() == 0
    done = await adjust_wallet(
        deps, actor=admin, user_id=victim.id, amount=7, reason="a credit", idempotency_key=None
    )
    assert done.balance_after == 7
    assert await rows() == 1
