"""HotStatement: what it writes straight through asyncpg equals what SQLAlchemy would write."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert, select, text

from skillswap.db import HotStatement, driver_in_transaction
from skillswap.models import Notification

INSERT = HotStatement(insert(Notification.__table__).returning(Notification.__table__.c.id))


def values(user_id: int, **extra: object) -> dict[str, object]:
    return {
        "user_id": user_id,
        "kind": "test",
        "msgid": "Hello {name}",
        "msgid_plural": None,
        "params": {"name": "سارة", "n": [1, 2.5, None]},
        "payload": {"nested": {"ok": True}},
        "group_key": None,
        "created_at": datetime(2026, 11, 27, 1, 2, 3, tzinfo=UTC),
        **extra,
    }


async def stored(deps, notification_id: int) -> Notification:
    async with deps.db.read() as session:
        row = await session.scalar(select(Notification).where(Notification.id == notification_id))
    assert row is not None
    return row


async def test_rows_written_through_the_driver_read_back_as_written(deps, make_user):
    user = await make_user()
    async with deps.db.uow() as uow:
        conn = await uow.session.connection()
        await conn.execute(text("SELECT 1"))  # the transaction has begun: the driver path
        on_driver = driver_in_transaction(conn) is not None
        first = await INSERT.scalar(conn, values(user.id))
        second = await INSERT.scalar(conn, values(user.id, kind="again"))
        await uow.commit()
    assert on_driver == (not deps.db.is_sqlite)
    assert second > first
    row = await stored(deps, first)
    assert row.params == {"name": "سارة", "n": [1, 2.5, None]}
    assert row.payload == {"nested": {"ok": True}}
    assert row.created_at == datetime(2026, 11, 27, 1, 2, 3, tzinfo=UTC)
    assert (await stored(deps, second)).kind == "again"


async def test_before_the_transaction_began_it_runs_through_sqlalchemy(deps, make_user):
    user = await make_user()
    async with deps.db.uow() as uow:
        conn = await uow.session.connection()
        assert driver_in_transaction(conn) is None  # nothing executed yet: SQLAlchemy begins
        notification_id = await INSERT.scalar(conn, values(user.id))
        await uow.commit()
    assert (await stored(deps, notification_id)).kind == "test"


async def test_a_column_left_to_its_python_default_still_gets_it(deps, make_user):
    user = await make_user()
    before = datetime.now(UTC)
    without_created_at = {k: v for k, v in values(user.id).items() if k != "created_at"}
    async with deps.db.uow() as uow:
        conn = await uow.session.connection()
        await conn.execute(text("SELECT 1"))
        notification_id = await INSERT.scalar(conn, without_created_at)
        await uow.commit()
    assert (await stored(deps, notification_id)).created_at >= before.replace(microsecond=0)


async def test_rolled_back_with_the_unit_of_work(deps, make_user):
    user = await make_user()
    async with deps.db.uow() as uow:
        conn = await uow.session.connection()
        await conn.execute(text("SELECT 1"))
        notification_id = await INSERT.scalar(conn, values(user.id))
        # leaving without commit rolls back
    async with deps.db.read() as session:
        assert await session.get(Notification, notification_id) is None
