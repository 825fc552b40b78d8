"""CompiledStatement: what it writes straight through asyncpg equals what SQLAlchemy writes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, insert, select, text

from skillswap.db import CompiledStatement
from skillswap.models import Notification
from tests.query_recorder import QueryRecorder

_notifications = Notification.__table__
INSERT = CompiledStatement(insert(_notifications).returning(_notifications.c.id))
PLAIN_INSERT = insert(_notifications).returning(_notifications.c.id)
COLUMNS = (
    "user_id",
    "kind",
    "msgid",
    "msgid_plural",
    "params",
    "payload",
    "group_key",
    "created_at",
)


def values(user_id: int, **extra: object) -> dict[str, object]:
    return {
        "user_id": user_id,
        "kind": "test",
        "msgid": "Hello {name}",
        "msgid_plural": None,
        "params": {"name": "سارة", "n": [1, 2.5, None], "quote": 'it\'s "x"'},
        "payload": {"nested": {"ok": True}, "empty": []},
        "group_key": None,
        "created_at": datetime(2026, 11, 27, 1, 2, 3, 456789, tzinfo=UTC),
        **extra,
    }


async def stored(deps, notification_id: int) -> tuple[object, ...]:
    """The row as the database holds it, read back as SQLAlchemy reads it."""
    async with deps.db.read() as session:
        row = (
            await session.execute(
                select(*(_notifications.c[name] for name in COLUMNS)).where(
                    _notifications.c.id == notification_id
                )
            )
        ).one()
    return tuple(row)


async def test_the_compiled_path_writes_exactly_what_sqlalchemy_writes(deps, make_user):
    user = await make_user()
    async with QueryRecorder(deps.db) as queries, deps.db.uow() as uow:
        conn = await uow.session.connection()
        # The first statement of the unit of work: the transaction was begun explicitly.
        compiled_id = await INSERT.scalar(conn, values(user.id))
        plain_id = (await conn.execute(PLAIN_INSERT, values(user.id))).scalar_one()
        await uow.commit()
    on_postgres = not deps.db.is_sqlite
    assert queries.by_path == (
        {"sqlalchemy": 1, "driver": 1} if on_postgres else {"sqlalchemy": 2, "driver": 0}
    )
    assert plain_id == compiled_id + 1
    assert await stored(deps, compiled_id) == await stored(deps, plain_id)
    assert await stored(deps, compiled_id) == tuple(values(user.id)[name] for name in COLUMNS)


async def test_many_writes_exactly_what_an_executemany_writes(deps, make_user):
    a, b = await make_user(), await make_user()
    many = CompiledStatement(insert(_notifications))
    rows = [values(a.id, kind="first"), values(b.id, kind="second", group_key="g")]
    async with deps.db.uow() as uow:
        conn = await uow.session.connection()
        await many.many(conn, rows)
        await conn.execute(insert(_notifications), [{**row, "kind": "plain"} for row in rows])
        await uow.commit()
    async with deps.db.read() as session:
        written = (
            await session.execute(
                select(*(_notifications.c[name] for name in COLUMNS))
                .where(_notifications.c.user_id.in_([a.id, b.id]))
                .order_by(_notifications.c.id)
            )
        ).all()
    assert [row.kind for row in written] == ["first", "second", "plain", "plain"]
    through_driver = [tuple(row)[2:] for row in written[:2]]
    through_sqlalchemy = [tuple(row)[2:] for row in written[2:]]
    assert through_driver == through_sqlalchemy


@pytest.mark.postgres
async def test_on_postgresql_every_unit_of_work_runs_in_the_drivers_transaction(deps):
    async with deps.db.uow() as uow:
        assert uow.driver is not None
        assert uow.driver.is_in_transaction()  # before any statement ran
        conn = await uow.session.connection()
        assert (await conn.get_raw_connection()).driver_connection is uow.driver


@pytest.mark.postgres
async def test_outside_a_unit_of_work_it_refuses_to_run_on_its_own(deps, make_user):
    user = await make_user()
    async with deps.db.read() as session:
        conn = await session.connection()
        with pytest.raises(RuntimeError, match="unit of work"):
            await INSERT.scalar(conn, values(user.id))


async def test_a_column_left_to_its_python_default_still_gets_it(deps, make_user):
    user = await make_user()
    before = datetime.now(UTC)
    without_created_at = {k: v for k, v in values(user.id).items() if k != "created_at"}
    async with QueryRecorder(deps.db) as queries, deps.db.uow() as uow:
        conn = await uow.session.connection()
        notification_id = await INSERT.scalar(conn, without_created_at)
        await uow.commit()
    assert queries.by_path == {"sqlalchemy": 1, "driver": 0}  # SQLAlchemy fills the default
    created_at = (await stored(deps, notification_id))[-1]
    assert before <= created_at <= datetime.now(UTC)


async def test_rolled_back_with_the_unit_of_work(deps, make_user):
    user = await make_user()
    async with deps.db.uow() as uow:
        conn = await uow.session.connection()
        notification_id = await INSERT.scalar(conn, values(user.id))
        # leaving without commit rolls back
    async with deps.db.read() as session:
        assert await session.get(Notification, notification_id) is None


async def test_a_unit_of_work_rolled_back_midway_goes_on_in_a_fresh_transaction(deps, make_user):
    user = await make_user()
    async with deps.db.uow() as uow:
        conn = await uow.session.connection()
        await INSERT.scalar(conn, values(user.id, kind="undone"))
        await uow.rollback()
        conn = await uow.session.connection()
        await INSERT.scalar(conn, values(user.id, kind="kept"))
        await uow.commit()
    async with deps.db.read() as session:
        kinds = (
            await session.scalars(
                select(Notification.kind).where(
                    Notification.user_id == user.id, Notification.kind.in_(["undone", "kept"])
                )
            )
        ).all()
    assert kinds == ["kept"]


@pytest.mark.postgres
async def test_a_unit_of_work_on_a_lost_connection_fails_alone_and_the_pool_recovers(deps):
    async def one() -> int:
        async with deps.db.uow() as uow:
            value = await uow.session.scalar(select(func.count()).select_from(_notifications))
            await uow.commit()
        return int(value)

    await asyncio.gather(*(one() for _ in range(4)))  # a few pooled connections, all idle
    # The server drops every idle connection (a restart, a failover).
    async with deps.db.engine.connect() as conn:
        killed = await conn.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND state = 'idle'"
            )
        )
    assert killed >= 1
    outcomes = []
    for _ in range(killed + 2):
        try:
            outcomes.append(await one())
        except Exception as lost:
            outcomes.append(lost)
    failed = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    assert len(failed) <= 1  # the first dead connection replaces the whole pool
    assert all(isinstance(outcome, int) for outcome in outcomes[1:])
