"""Exactly which statements the hot endpoints send to the database, by path.

"sqlalchemy" statements go through SQLAlchemy's execution layer; "driver" ones run straight on
asyncpg (PostgreSQL only: on SQLite every statement goes through SQLAlchemy). A new statement on
one of these endpoints is a decision to make on purpose, so the lists are written out.
"""

from __future__ import annotations

import re
from typing import Any

from skillswap import ledger
from tests.conftest import BACKENDS
from tests.factories import TestUser, insert_skill, order_room, skill_row, unique_name
from tests.query_recorder import QueryRecorder

ROOMS = "/api/chat/rooms/"
ON_POSTGRES = BACKENDS.database == "postgresql"
SA, DRIVER = "sqlalchemy", "driver"
# A statement the fast paths run straight on asyncpg on PostgreSQL, through SQLAlchemy elsewhere.
FAST = DRIVER if ON_POSTGRES else SA


def written(sql: str) -> list[str]:
    """The tables a statement writes, in the order it names them (its data-modifying CTEs)."""
    return re.findall(r"\b(?:INSERT INTO|UPDATE)\s+(\w+)", sql)


def transactions(*on_postgres: str) -> list[str]:
    """The BEGIN/COMMIT/ROLLBACK asyncpg runs (SQLite's are implicit in its driver)."""
    return list(on_postgres) if ON_POSTGRES else []


async def test_a_skills_page_is_one_statement_then_none_while_cached(
    api: Any, deps: Any, make_user: Any
) -> None:
    owner = await make_user()
    listed = await skill_row(deps, await insert_skill(deps, owner_id=owner.id))
    page = f"/api/skills/?category={listed.category_id}"

    async with QueryRecorder(deps.db) as uncached:
        first = await api.get(page)
    async with QueryRecorder(deps.db) as cached:
        again = await api.get(page)

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.content == first.content
    # The count, the rows with their owners and categories, and their images: one statement,
    # straight on asyncpg in autocommit on PostgreSQL (no BEGIN, no ROLLBACK).
    assert uncached.summary == [(FAST, "SELECT skills")], str(uncached)
    assert uncached.transactions == []
    assert cached.summary == []
    assert cached.transactions == []


async def test_a_search_page_and_a_persons_page_are_one_statement_each(
    api: Any, deps: Any, make_user: Any, make_skill: Any
) -> None:
    owner = await make_user()
    word = unique_name("cello")
    await make_skill(owner, title_en=f"Counted {word} lessons")

    async with QueryRecorder(deps.db) as searched:
        found = await api.get(f"/api/skills/?search={word}&max_price=500")
    async with QueryRecorder(deps.db) as persons:
        listed = await api.get(f"/api/users/{owner.id}/skills/?ordering=price")

    assert (found.status_code, listed.status_code) == (200, 200)
    assert found.json()["count"] == listed.json()["count"] == 1
    # Matches, their ranks, the count and the page in one statement (a WITH on PostgreSQL:
    # the candidates are ranked once and counted from the same rows).
    assert searched.summary == [(FAST, "WITH") if ON_POSTGRES else (SA, "SELECT skills")], str(
        searched
    )
    # Whether the person is active, then their page.
    assert persons.summary == [(SA, "SELECT users"), (FAST, "SELECT skills")], str(persons)


async def test_placing_an_order_holds_the_price_and_opens_its_room_in_one_transaction(
    api: Any, deps: Any, make_user: Any
) -> None:
    buyer, seller = await make_user(), await make_user()
    skill_id = await insert_skill(deps, owner_id=seller.id, price=1)

    async with QueryRecorder(deps.db) as queries:
        placed = await api.post(
            "/api/points/orders/", token=buyer.access, json={"skill_id": skill_id}
        )

    assert placed.status_code == 201, placed.text
    if ON_POSTGRES:
        assert queries.summary == [
            (SA, "SELECT users"),  # the buyer
            (DRIVER, "WITH"),  # the skill with its seller, the hold, the order, its history
            (DRIVER, "WITH"),  # the order's room, its members, the seller's notice, its outbox row
        ], str(queries)
        assert [written(statement.sql) for statement in queries.statements[1:]] == [
            ["ledger_holds", "ledger_accounts", "orders", "order_transitions"],
            ["chat_rooms", "chat_members", "notifications", "outbox"],
        ], str(queries)
    else:
        assert queries.summary == [
            (SA, "SELECT users"),  # the buyer
            (SA, "SELECT skills"),  # the skill with its seller
            (SA, "INSERT ledger_holds"),
            (SA, "UPDATE ledger_accounts"),
            (SA, "INSERT orders"),
            (SA, "INSERT order_transitions"),
            (SA, "INSERT chat_rooms"),
            (SA, "INSERT chat_members"),
            (SA, "INSERT notifications"),  # the seller's
            (SA, "INSERT outbox"),  # its mail and push, for a worker
        ], str(queries)
    # The buyer is read in a session of its own; the rest is one unit of work.
    assert queries.transactions == transactions("BEGIN", "ROLLBACK", "BEGIN", "COMMIT")


async def send(api: Any, user: TestUser, room: int, body: str) -> Any:
    return await api.post(f"{ROOMS}{room}/send/", token=user.access, json={"body": body})


async def test_a_chat_message_sent_over_rest_is_six_statements_in_one_transaction(
    api: Any, deps: Any, make_user: Any
) -> None:
    buyer, seller = await make_user(), await make_user()
    room = await order_room(api, deps, buyer, seller)
    assert (await send(api, buyer, room, "first")).status_code == 201

    async with QueryRecorder(deps.db) as queries:
        sent = await send(api, buyer, room, "second")

    assert sent.status_code == 201, sent.text
    # Who is in the room is read once; on SQLite that read may fall between the writes (the
    # one connection serialises the writer's transaction and the room's delivery), so its
    # place is not asserted, only that it happens exactly once.
    members = (SA, "SELECT chat_members")
    assert queries.summary.count(members) == 1, str(queries)
    # On SQLite the room's actor shares that connection too: when it (re)starts within the
    # window, its read of the room's newest message is seen here; never on PostgreSQL.
    room_state = (SA, "SELECT chat_rooms")
    assert queries.summary.count(room_state) <= (0 if ON_POSTGRES else 1), str(queries)
    assert [q for q in queries.summary if q not in (members, room_state)] == [
        (SA, "UPDATE chat_rooms"),  # the room's next sequence number and activity
        (SA, "INSERT chat_messages"),
        (SA, "UPDATE chat_members"),  # the sender has read their own message
        (SA, "DELETE notifications"),  # the seller's unread notice of this room, folded...
        (FAST, "INSERT notifications"),  # ...into one new notice
    ], str(queries)
    assert queries.transactions == transactions("BEGIN", "COMMIT")


async def test_a_transfer_is_one_statement_that_commits_on_its_own(
    deps: Any, make_user: Any
) -> None:
    alice, bob = await make_user(), await make_user()
    async with deps.db.read() as session:
        debit = await ledger.find_wallet(session, alice.id)
        credit = await ledger.find_wallet(session, bob.id)
    request = ledger.TransferRequest(
        key=unique_name("counted"),
        kind=ledger.TransferKind.ADJUSTMENT,
        debit_account_id=debit,
        credit_account_id=credit,
        amount=5,
    )

    async with QueryRecorder(deps.db) as queries:
        await ledger.run_transfer(deps.db, request, now=deps.clock())

    if ON_POSTGRES:
        # Claimed, checked and written in one statement that commits on its own.
        assert queries.summary == [(DRIVER, "WITH")], str(queries)
        assert queries.transactions == []
    else:
        # The same steps, one statement each, in one unit of work.
        assert queries.summary == [
            (SA, "SELECT ledger_accounts"),  # both wallets, locked in id order
            (SA, "INSERT ledger_transfers"),
            (SA, "UPDATE ledger_accounts"),  # both balances, one executemany
            (SA, "INSERT ledger_entries"),  # both entries, one executemany
        ], str(queries)
