"""A reference for orders_bench.py: bare Tornado + asyncpg issuing an order's statements.

    python bench/_bare_orders_server.py PORT DATABASE_URL [two|ten]   (several may share PORT)

POST /api/points/orders/ `{"skill_id": N}` runs, in one transaction on a pooled asyncpg
connection, the statements that place an order, then answers 201 with a small JSON body.
`two` (the default) issues the two statements `skillswap serve` issues on PostgreSQL
(`orders.statements.PLACE_ORDER_PG`: the skill and its seller FOR KEY SHARE, the hold, the
order and its first history row; `ROOM_AND_NOTICE_PG`: the order's chat room and its two
members, the seller's notification, its delivery row and the relays' NOTIFY). `ten` issues the
statements it issued before, one per row: the skill, the buyer's wallet, the hold
(`ledger.statements.HOLD_PG`), the order, its history row, the room, its members and the
notification (no delivery row), with BEGIN and COMMIT ten round trips. Nothing else: the buyer is read from the bearer token's
payload without checking its signature, no denylist, no validation model, no ORM, no Redis, no
events, no translations. What it reaches on a machine bounds what any server doing that work
over HTTP with Tornado and asyncpg reaches there.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import tornado.web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from skillswap.ledger.statements import HOLD_PG
from skillswap.orders.statements import PLACE_ORDER_PG, ROOM_AND_NOTICE_PG

SKILL = """
SELECT s.owner_id, s.status, s.price_points, u.is_active FROM skills s JOIN users u
ON u.id = s.owner_id WHERE s.id = $1 FOR KEY SHARE OF s
"""
WALLET = "SELECT id FROM ledger_accounts WHERE user_id = $1"
ORDER = """
INSERT INTO orders (buyer_id, seller_id, skill_id, hold_id, status, price_points, requirements,
                    change_requests, deadline_at, created_at, updated_at)
VALUES ($1, $2, $3, $4, 'pending', $5, '', 0, $6, $7, $7) RETURNING id
"""
TRANSITION = """
INSERT INTO order_transitions (order_id, actor_id, action, from_status, to_status, note, created_at)
VALUES ($1, $2, 'place', NULL, 'pending', '', $3) RETURNING id
"""
ROOM = """
INSERT INTO chat_rooms (kind, order_id, last_seq, last_activity_at, created_at)
VALUES ('order', $1, 0, $2, $2) RETURNING id
"""
MEMBERS = """
INSERT INTO chat_members (room_id, user_id, last_read_id, last_read_seq, joined_at)
VALUES ($1, $2, 0, 0, $4), ($1, $3, 0, 0, $4)
"""
NOTIFICATION = """
INSERT INTO notifications (user_id, kind, msgid, params, payload, created_at)
VALUES ($1, 'order_placed', 'You have a new order #{order}.', $2::jsonb, $3::jsonb, $4)
RETURNING id
"""


async def in_two_statements(
    conn: asyncpg.Connection, buyer: int, skill_id: int, now: datetime
) -> tuple[int, int]:
    """The order and its room and notice as `skillswap serve` writes them on PostgreSQL."""
    placed = await conn.fetchrow(
        PLACE_ORDER_PG,
        skill_id,
        buyer,
        f"order:{uuid.uuid4().hex}",
        now,
        now + timedelta(days=3),
        "",
    )
    order_id = placed["order_id"]
    await conn.fetchrow(
        ROOM_AND_NOTICE_PG,
        order_id,
        buyer,
        placed["owner_id"],
        now,
        "order_placed",
        "You have a new order #{order}.",
        json.dumps({"order": order_id}),
        json.dumps({"order_id": order_id, "skill_id": skill_id, "buyer_id": buyer}),
    )
    return order_id, placed["price_points"]


async def in_ten_statements(
    conn: asyncpg.Connection, buyer: int, skill_id: int, now: datetime
) -> tuple[int, int]:
    """The statements placing an order took before, one per row."""
    skill = await conn.fetchrow(SKILL, skill_id)
    wallet = await conn.fetchval(WALLET, buyer)
    price = skill["price_points"]
    _found, hold_id, _short = await conn.fetchrow(
        HOLD_PG, f"order:{uuid.uuid4().hex}", wallet, price, now
    )
    seller = skill["owner_id"]
    order_id = await conn.fetchval(
        ORDER, buyer, seller, skill_id, hold_id, price, now + timedelta(days=3), now
    )
    await conn.fetchval(TRANSITION, order_id, buyer, now)
    room = await conn.fetchval(ROOM, order_id, now)
    await conn.execute(MEMBERS, room, buyer, seller, now)
    await conn.fetchval(
        NOTIFICATION,
        seller,
        json.dumps({"order": order_id}),
        json.dumps({"order_id": order_id, "skill_id": skill_id, "room": room}),
        now,
    )
    return order_id, price


class PlaceOrder(tornado.web.RequestHandler):
    def initialize(self, pool: asyncpg.Pool, statements: str) -> None:
        self.pool = pool
        self.place = in_ten_statements if statements == "ten" else in_two_statements

    async def post(self) -> None:
        token = self.request.headers["Authorization"].split()[1]
        claims = token.split(".")[1]
        buyer = int(json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["sub"])
        skill_id = int(json.loads(self.request.body)["skill_id"])
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            order_id, price = await self.place(conn, buyer, skill_id, now)
        self.set_status(201)
        self.set_header("Content-Type", "application/json")
        self.finish(
            json.dumps(
                {"id": order_id, "status": "pending", "price_points": price, "skill_id": skill_id}
            )
        )


async def main(port: int, url: str, statements: str) -> None:
    pool = await asyncpg.create_pool(url.replace("postgresql://", "postgres://"), max_size=20)
    app = tornado.web.Application(
        [(r"/api/points/orders/", PlaceOrder, {"pool": pool, "statements": statements})]
    )
    app.listen(port, address="127.0.0.1", reuse_port=True)  # several may share the port
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "two"))
