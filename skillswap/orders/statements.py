"""Placing an order on PostgreSQL in two statements: the skill, the hold, the order and its
history; then what its OrderPlaced subscriber writes (the room, the seller's notification).

Placing an order is the marketplace's hottest write. Step by step (as on SQLite) it costs a
round trip per row; here data-modifying CTEs write them all in one, inside the order's
transaction. The hold is placed by the ledger's own CTEs (`ledger.statements.hold_ctes`), so by
exactly its rules, and only when the skill may be ordered: a skill that may not (unknown,
hidden, paused, its owner banned, the buyer's own) writes nothing, and the row read tells the
service which refusal it is.

Lock order, as everywhere: the skill row (FOR KEY SHARE, what the order's foreign key takes
anyway, taken first: `buyer` reads `skill`, and the hold's `wallet` reads `buyer`), then the
buyer's wallet. The foreign keys of rows written in the statement are checked at its end, when
every CTE has run.
"""

from __future__ import annotations

from skillswap.ledger.statements import hold_ctes
from skillswap.models.chat import RoomKind
from skillswap.notifications.outgoing import DELIVER_NOTIFICATION, DELIVERY_KEY_PREFIX
from skillswap.tasks.outbox import NOTIFY_CHANNEL

# The seller's columns the response shows (a `User` built from the row, not a session object).
SELLER_FIELDS = (
    "username",
    "display_name",
    "avatar_url",
    "bio",
    "email_verified",
    "is_verified",
    "rating_sum",
    "rating_count",
    "created_at",
    "is_active",
)

# Parameters: skill, buyer, hold key, now, deadline, requirements. Returns one row when the skill
# exists (none when it does not): its columns and its seller's, `orderable`, the buyer's wallet
# (None when they have none yet: nothing was written), the hold's `found`, `hold_id` (None when
# the key had been used: nothing was written) and `shortfall` (set when refused: the rejected
# hold is the only row written), and the new order's and history step's ids.
PLACE_ORDER_PG = f"""
WITH skill AS MATERIALIZED (
    SELECT s.owner_id, s.status, s.price_points, s.title_en, s.title_ar, s.lesson_minutes,
           {", ".join(f"u.{name}" for name in SELLER_FIELDS)}
    FROM skills s JOIN users u ON u.id = s.owner_id
    WHERE s.id = $1
    FOR KEY SHARE OF s
), buyer AS MATERIALIZED (
    SELECT a.id AS account_id, skill.price_points AS price,
           skill.status = 'active' AND skill.is_active AND skill.owner_id <> $2 AS orderable
    FROM skill LEFT JOIN ledger_accounts a ON a.user_id = $2
), {
    hold_ctes(
        key="$3",
        account="(SELECT account_id FROM buyer WHERE orderable)",
        amount="(SELECT price FROM buyer)",
        now="$4",
    )
}, placed AS (
    INSERT INTO orders (buyer_id, seller_id, skill_id, hold_id, status, price_points,
                        requirements, change_requests, deadline_at, created_at, updated_at)
    SELECT $2, skill.owner_id, $1, claim.id, 'pending', skill.price_points, $6, 0, $5, $4, $4
    FROM claim CROSS JOIN skill
    WHERE claim.status = 'pending'
    RETURNING id
), step AS (
    INSERT INTO order_transitions (order_id, actor_id, action, from_status, to_status, note,
                                   created_at)
    SELECT id, $2, 'place', NULL, 'pending', '', $4 FROM placed
    RETURNING id
)
SELECT skill.*, buyer.orderable, buyer.account_id AS wallet, verdict.found,
       claim.id AS hold_id, claim.shortfall, placed.id AS order_id, step.id AS step_id
FROM skill CROSS JOIN buyer CROSS JOIN verdict
     LEFT JOIN claim ON true LEFT JOIN placed ON true LEFT JOIN step ON true
"""

# What the OrderPlaced subscriber writes (`reactions.open_room_and_tell_the_seller`), as
# `chat.open_order_room` and `notifications.notify` write it step by step: the order's room, its
# two members, the seller's notification and its delivery row, with the relays' NOTIFY when that
# row is new (as `outbox.enqueue` sends it). Parameters: order, buyer, seller, now, kind, msgid,
# params, payload (without the room, which is added to it). Returns the room's id and the
# notification's.
ROOM_AND_NOTICE_PG = f"""
WITH room AS (
    INSERT INTO chat_rooms (kind, order_id, last_seq, last_activity_at, created_at)
    VALUES ('{RoomKind.ORDER.value}', $1, 0, $4, $4)
    RETURNING id
), members AS (
    INSERT INTO chat_members (room_id, user_id, last_read_id, last_read_seq, joined_at)
    SELECT room.id, member, 0, 0, $4 FROM room CROSS JOIN unnest(ARRAY[$2, $3]::bigint[]) member
), notice AS (
    INSERT INTO notifications (user_id, kind, msgid, msgid_plural, params, payload, group_key,
                               created_at)
    SELECT $3, $5, $6, NULL, $7::jsonb, $8::jsonb || jsonb_build_object('room', room.id), NULL, $4
    FROM room
    RETURNING id
), queued AS (
    INSERT INTO outbox (kind, key, payload, status, attempts, available_at, created_at)
    SELECT '{DELIVER_NOTIFICATION}', '{DELIVERY_KEY_PREFIX}' || notice.id,
           jsonb_build_object('notification_id', notice.id), 'pending', 0, $4, $4
    FROM notice
    ON CONFLICT (key) DO NOTHING
    RETURNING id
)
SELECT room.id, notice.id, (SELECT pg_notify('{NOTIFY_CHANNEL}', '') FROM queued)
FROM room CROSS JOIN notice
"""
