"""Notification preferences: per kind, email and push; defaults until chosen; security mails
fixed; `channels_for` is what senders see."""

from __future__ import annotations

from skillswap.models.notifications import NotificationKind
from skillswap.notifications.preferences import channels_for

PREFS = "/api/notifications/preferences/"
BOTH = {"email": True, "push": True}
MAIL_ONLY = {"email": True, "push": False}
DEFAULTS = {
    "order_placed": BOTH,
    "order_accepted": BOTH,
    "order_rejected": BOTH,
    "order_delivered": BOTH,
    "order_completed": BOTH,
    "order_cancelled": BOTH,
    "order_changes_requested": BOTH,
    "order_disputed": BOTH,
    "order_resolved": BOTH,
    "order_expired": BOTH,
    "order_updated": {"email": False, "push": True},
    "chat_message": BOTH,
    "review_received": BOTH,
    "skill_hidden": BOTH,
    "skill_restored": BOTH,
    "order_paused": BOTH,
    "order_resumed": BOTH,
    "points_adjusted": BOTH,
    "lesson_reminder": BOTH,
    "email_verification": MAIL_ONLY,
    "password_reset": MAIL_ONLY,
}
FIXED = {"email_verification": MAIL_ONLY, "password_reset": MAIL_ONLY}


async def sender_sees(deps, user, kind: NotificationKind) -> set[str]:
    async with deps.db.read() as session:
        return await channels_for(session, user.id, kind)


async def test_a_new_user_has_the_defaults(api, deps, make_user):
    user = await make_user()
    response = await api.get(PREFS, token=user.access)
    assert response.status_code == 200
    assert response.json() == {"preferences": DEFAULTS, "fixed": FIXED}
    assert await sender_sees(deps, user, NotificationKind.ORDER_PLACED) == {"email", "push"}
    assert await sender_sees(deps, user, NotificationKind.ORDER_UPDATED) == {"push"}
    assert await sender_sees(deps, user, NotificationKind.PASSWORD_RESET) == {"email"}


async def test_patch_changes_only_the_channels_given(api, deps, make_user):
    user, other = await make_user(), await make_user()
    response = await api.patch(
        PREFS,
        token=user.access,
        json={
            "preferences": {
                "chat_message": {"email": False},
                "order_placed": {"push": False},
                "order_updated": {"email": True, "push": False},
            }
        },
    )
    assert response.status_code == 200, response.text
    expected = {
        **DEFAULTS,
        "chat_message": {"email": False, "push": True},
        "order_placed": {"email": True, "push": False},
        "order_updated": {"email": True, "push": False},
    }
    assert response.json() == {"preferences": expected, "fixed": FIXED}
    assert (await api.get(PREFS, token=user.access)).json()["preferences"] == expected

    # A second patch of one channel keeps the first one's choice of the other.
    again = await api.patch(
        PREFS, token=user.access, json={"preferences": {"chat_message": {"push": False}}}
    )
    assert again.json()["preferences"]["chat_message"] == {"email": False, "push": False}
    assert await sender_sees(deps, user, NotificationKind.CHAT_MESSAGE) == set()
    assert await sender_sees(deps, user, NotificationKind.ORDER_PLACED) == {"email"}
    # Nobody else's preferences changed.
    assert (await api.get(PREFS, token=other.access)).json()["preferences"] == DEFAULTS


async def test_put_replaces_everything_and_leaves_out_kinds_to_their_defaults(api, deps, make_user):
    user = await make_user()
    patched = await api.patch(
        PREFS, token=user.access, json={"preferences": {"order_expired": {"email": False}}}
    )
    assert patched.status_code == 200
    response = await api.put(
        PREFS,
        token=user.access,
        json={"preferences": {"order_accepted": {"email": False, "push": False}}},
    )
    assert response.status_code == 200, response.text
    expected = {**DEFAULTS, "order_accepted": {"email": False, "push": False}}
    assert response.json()["preferences"] == expected
    assert await sender_sees(deps, user, NotificationKind.ORDER_EXPIRED) == {"email", "push"}
    assert await sender_sees(deps, user, NotificationKind.ORDER_ACCEPTED) == set()

    # What GET answers can be sent back as it is.
    document = (await api.get(PREFS, token=user.access)).json()
    round_trip = await api.put(
        PREFS, token=user.access, json={"preferences": document["preferences"]}
    )
    assert round_trip.status_code == 200 and round_trip.json() == document


async def test_put_needs_both_channels_of_each_kind_given(api, make_user):
    user = await make_user()
    response = await api.put(
        PREFS, token=user.access, json={"preferences": {"order_placed": {"email": False}}}
    )
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["preferences.order_placed.push"]


async def test_security_mails_cannot_be_turned_off(api, deps, make_user):
    user = await make_user()
    for method, body in [
        ("PATCH", {"email_verification": {"email": False}}),
        ("PATCH", {"password_reset": {"push": True}}),
        ("PUT", {"password_reset": {"email": False, "push": False}}),
    ]:
        response = await api.request(method, PREFS, token=user.access, json={"preferences": body})
        assert response.status_code == 400, (method, body)
        problem = response.json()
        [(kind, channels)] = body.items()
        changed = [ch for ch, value in channels.items() if value != FIXED[kind][ch]]
        assert sorted(problem["errors"]) == [f"preferences.{kind}.{ch}" for ch in changed]
        assert problem["errors"][f"preferences.{kind}.{changed[0]}"] == [
            "Security mails cannot be turned off or pushed."
        ]
    # A refused request changed nothing, not even its other kinds.
    refused = await api.patch(
        PREFS,
        token=user.access,
        json={
            "preferences": {
                "order_placed": {"email": False},
                "email_verification": {"email": False},
            }
        },
    )
    assert refused.status_code == 400
    assert (await api.get(PREFS, token=user.access)).json()["preferences"] == DEFAULTS
    assert await sender_sees(deps, user, NotificationKind.EMAIL_VERIFICATION) == {"email"}

    # Sending a fixed kind's own value back is fine.
    same = await api.patch(
        PREFS, token=user.access, json={"preferences": {"email_verification": MAIL_ONLY}}
    )
    assert same.status_code == 200 and same.json()["preferences"] == DEFAULTS


async def test_the_refusal_is_in_the_users_language(api, make_user):
    user = await make_user(locale="ar")
    response = await api.patch(
        PREFS, token=user.access, json={"preferences": {"password_reset": {"email": False}}}
    )
    assert response.status_code == 400
    assert response.json()["errors"]["preferences.password_reset.email"] == [
        "لا يمكن إيقاف رسائل الأمان ولا إرسالها إشعاراتٍ فورية."
    ]


async def test_unknown_kinds_and_values_are_refused(api, make_user):
    user = await make_user()
    cases = [
        ({"preferences": {"bogus_kind": BOTH}}, "preferences.bogus_kind"),
        ({"preferences": {"order_placed": {"sms": True}}}, "preferences.order_placed.sms"),
        ({"preferences": {"order_placed": {"email": "no"}}}, "preferences.order_placed.email"),
        ({"preferences": {"order_placed": None}}, "preferences.order_placed"),
        ({"order_placed": BOTH}, "order_placed"),
    ]
    for body, field in cases:
        response = await api.patch(PREFS, token=user.access, json=body)
        assert response.status_code == 400, body
        assert field in response.json()["errors"], (body, response.json())
    assert (await api.get(PREFS)).status_code == 401
