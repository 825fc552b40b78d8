"""Notifications: stored with the change that caused them, delivered live, read in one's language."""

from __future__ import annotations

from datetime import timedelta

from skillswap import events
from skillswap.i18n import lazy
from skillswap.notifications import services as notifications
from tests.chat_support import ws_connect
from tests.factories import order_room, place_order

NOTES = "/api/notifications/"
ORDERS = "/api/points/orders/"


async def kinds(api, user, **query):
    listing = (await api.get(NOTES, token=user.access, params=query)).json()
    return [n["kind"] for n in listing["results"]]


async def test_order_steps_notify_the_other_side_live_and_over_rest(api, deps, server, make_user):
    buyer, seller = await make_user(), await make_user()
    seller_socket = await ws_connect(server, seller.access)
    buyer_socket = await ws_connect(server, buyer.access)

    order = await place_order(api, deps, buyer, seller)
    live = await seller_socket.of_type("notification")
    placed = live["notification"]
    assert placed["kind"] == "order_placed"
    assert placed["text"] == f"You have a new order #{order['id']}."
    assert placed["payload"]["order_id"] == order["id"] and placed["read"] is False

    accepted = await api.post(f"{ORDERS}{order['id']}/accept/", token=seller.access, json={})
    assert accepted.status_code == 200, accepted.text
    note = (await buyer_socket.of_type("notification"))["notification"]
    assert note["kind"] == "order_accepted"
    assert note["payload"]["from_status"] == "pending"
    assert note["payload"]["to_status"] == "accepted"
    assert note["payload"]["actor_id"] == seller.id

    # Whoever acted is not told what they did.
    assert await kinds(api, seller) == ["order_placed"]
    assert await kinds(api, buyer) == ["order_accepted"]
    seller_socket.close()
    buyer_socket.close()


async def test_a_deadline_tells_both_sides(own_app):
    from skillswap.orders.deadlines import expire_overdue_orders

    api, deps = own_app.api, own_app.deps
    buyer, seller = await own_app.user(), await own_app.user()
    order = await place_order(api, deps, buyer, seller)
    later = deps.clock() + timedelta(seconds=deps.settings.order_accept_timeout_seconds + 60)
    assert await expire_overdue_orders(deps, now=later) == 1
    assert await kinds(api, buyer) == ["order_expired"]
    assert await kinds(api, seller) == ["order_expired", "order_placed"]
    note = (await api.get(NOTES, token=buyer.access)).json()["results"][0]
    assert note["payload"]["actor_id"] is None and note["payload"]["order_id"] == order["id"]


async def test_an_administrators_resolution_tells_buyer_and_seller(deps, make_user):
    buyer, seller, admin = await make_user(), await make_user(), await make_user(admin=True)
    async with deps.db.uow() as uow:
        await events.emit(
            deps,
            uow,
            events.OrderTransitioned(
                order_id=4242,
                buyer_id=buyer.id,
                seller_id=seller.id,
                actor_id=admin.id,
                action="resolve",
                from_status="disputed",
                to_status="resolved",
            ),
        )
        await uow.commit()
    for user in (buyer, seller):
        count, records = await notifications.list_notifications(
            deps, actor=_user(user), offset=0, limit=5
        )
        assert [r["kind"] for r in records] == ["order_resolved"]
    count, _ = await notifications.list_notifications(deps, actor=_user(admin), offset=0, limit=5)
    assert count == 0


async def test_a_notification_is_not_stored_when_its_transaction_rolls_back(deps, make_user):
    user = await make_user()
    async with deps.db.uow() as uow:
        await notifications.notify(
            deps,
            uow,
            user_id=user.id,
            kind="test",
            text=lazy("Order #{order} was updated.", order=1),
        )
        # Leaving without commit: the change and its notification vanish together.
    count, _ = await notifications.list_notifications(deps, actor=_user(user), offset=0, limit=5)
    assert count == 0


async def test_notifications_read_in_the_readers_language(api, deps, make_user):
    buyer, seller = await make_user(), await make_user(locale="ar")
    order = await place_order(api, deps, buyer, seller)
    arabic = (await api.get(NOTES, token=seller.access)).json()["results"][0]
    assert arabic["kind"] == "order_placed"
    assert str(order["id"]) in arabic["text"]
    assert arabic["text"] != f"You have a new order #{order['id']}."
    english = (await api.get(NOTES, token=seller.access, headers={"Accept-Language": "en"})).json()[
        "results"
    ][0]
    assert english["text"] == arabic["text"]  # the saved locale wins over the header


async def test_reading_one_or_all_and_listing_unread(api, deps, make_user):
    buyer, seller, other = await make_user(), await make_user(), await make_user()
    for _ in range(3):
        await place_order(api, deps, buyer, seller)
    listing = (await api.get(NOTES, token=seller.access, params={"page_size": 2})).json()
    assert listing["count"] == 3 and len(listing["results"]) == 2 and listing["next"]
    first = listing["results"][0]
    read = await api.post(f"{NOTES}{first['id']}/read/", token=seller.access)
    assert read.status_code == 200 and read.json()["read"] is True and read.json()["read_at"]
    unread = (await api.get(NOTES, token=seller.access, params={"unread": "true"})).json()
    assert unread["count"] == 2 and first["id"] not in [n["id"] for n in unread["results"]]

    theirs = await api.post(f"{NOTES}{first['id']}/read/", token=other.access)
    assert theirs.status_code == 404 and theirs.json()["code"] == "notification_not_found"
    everything = await api.post(f"{NOTES}read-all/", token=seller.access)
    assert everything.json() == {"updated": 2}
    assert (await api.get(NOTES, token=seller.access, params={"unread": "1"})).json()["count"] == 0
    assert (await api.post(f"{NOTES}read-all/", token=seller.access)).json() == {"updated": 0}
    assert (await api.get(NOTES)).status_code == 401


async def test_messages_to_someone_connected_nowhere_become_one_counting_notification(
    api, deps, server, make_user
):
    buyer, seller = await make_user(display_name="Amal"), await make_user()
    room = await order_room(api, deps, buyer, seller)
    for i in range(3):
        sent = await api.post(
            f"/api/chat/rooms/{room}/send/", token=buyer.access, json={"body": f"hello {i}"}
        )
        assert sent.status_code == 201
    chat_notes = [
        n
        for n in (await api.get(NOTES, token=seller.access)).json()["results"]
        if n["kind"] == "chat_message"
    ]
    assert len(chat_notes) == 1
    assert chat_notes[0]["text"] == "Amal sent you 3 messages."
    assert chat_notes[0]["payload"]["room"] == room
    assert chat_notes[0]["payload"]["sender"] == buyer.id
    # The sender, connected or not, is never told of their own messages.
    assert "chat_message" not in await kinds(api, buyer)

    # Once the seller is connected (anywhere), messages arrive live instead.
    seller_socket = await ws_connect(server, seller.access)
    await seller_socket.send(type="ping")
    await seller_socket.of_type("pong")
    await api.post(f"/api/chat/rooms/{room}/send/", token=buyer.access, json={"body": "live"})
    assert (await kinds(api, seller)).count("chat_message") == 1
    seller_socket.close()


def _user(test_user):
    from skillswap.models import User

    return User(id=test_user.id, is_admin=False)
