"""The lesson call's ICE servers: coturn's REST API credentials, computed here independently, and
the window in which a call may be joined."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from skillswap.lessons.calls import CallRoom, call_refusal, ice_servers, turn_credentials
from skillswap.settings import Settings

SECRET = "north-turn-shared-secret"
NOW = datetime(2027, 1, 7, 9, 50, 30, tzinfo=UTC)


def test_the_turn_credential_is_base64_hmac_sha1_of_expiry_and_user_under_the_secret() -> None:
    # 2027-01-07T10:50:30Z, an hour after NOW.
    expiry = 1799319030
    username, credential = turn_credentials(SECRET, 42, expiry)
    assert username == "1799319030:42"
    expected = base64.b64encode(
        hmac.new(b"north-turn-shared-secret", b"1799319030:42", hashlib.sha1).digest()
    ).decode()
    assert credential == expected
    assert len(base64.b64decode(credential)) == 20  # an SHA-1 digest


def test_ice_servers_list_stun_and_turn_with_credentials_valid_for_the_ttl() -> None:
    settings = Settings(
        stun_urls=("stun:stun.example.org:3478",),
        turn_urls=("turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"),
        turn_secret=SECRET,
        turn_ttl_seconds=3600,
    )
    servers, expires_at = ice_servers(settings, user_id=42, now=NOW)
    assert expires_at == datetime(2027, 1, 7, 10, 50, 30, tzinfo=UTC)
    expiry = int(expires_at.timestamp())
    assert expiry == 1799319030
    username = f"{expiry}:42"
    credential = base64.b64encode(
        hmac.new(SECRET.encode(), username.encode(), hashlib.sha1).digest()
    ).decode()
    assert servers == [
        {"urls": ["stun:stun.example.org:3478"]},
        {
            "urls": ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"],
            "username": username,
            "credential": credential,
        },
    ]


def test_without_turn_only_stun_is_listed_and_without_stun_nothing() -> None:
    servers, _ = ice_servers(Settings(), user_id=7, now=NOW)
    assert servers == [{"urls": ["stun:stun.l.google.com:19302"]}]
    servers, _ = ice_servers(Settings(stun_urls=()), user_id=7, now=NOW)
    assert servers == []
    # A secret without URLs (refused when serving) hands out no TURN server either.
    servers, _ = ice_servers(Settings(stun_urls=(), turn_secret=SECRET), user_id=7, now=NOW)
    assert servers == []


def _room(status: str = "accepted") -> CallRoom:
    starts_at = datetime(2027, 1, 7, 10, 0, tzinfo=UTC)
    return CallRoom(
        order_id=1,
        room_id=2,
        buyer_id=3,
        seller_id=4,
        status=status,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=45),
    )


def test_the_call_is_open_from_the_early_seconds_before_the_start_to_the_grace_after_the_end() -> (
    None
):
    settings = Settings(lesson_call_early_seconds=600)
    room = _room()
    opens = datetime(2027, 1, 7, 9, 50, tzinfo=UTC)
    closes = datetime(2027, 1, 7, 11, 0, tzinfo=UTC)  # 10:45 and the quarter hour's grace
    for moment in (opens, opens + timedelta(minutes=30), closes):
        assert call_refusal(room, settings, moment) is None, moment
    for moment in (opens - timedelta(seconds=1), closes + timedelta(seconds=1)):
        refusal = call_refusal(room, settings, moment)
        assert refusal is not None
        assert refusal.status == 409 and refusal.code == "call_not_open"
        assert refusal.extra == {
            "opens_at": "2027-01-07T09:50:00Z",
            "closes_at": "2027-01-07T11:00:00Z",
            "order_status": "accepted",
        }
    assert call_refusal(_room("delivered"), settings, opens) is None
    for status in ("pending", "completed", "cancelled", "disputed", "paused"):
        refusal = call_refusal(_room(status), settings, opens)
        assert refusal is not None and refusal.code == "call_not_open", status
        assert refusal.extra["order_status"] == status


def test_the_other_participant() -> None:
    room = _room()
    assert (room.other(3), room.other(4)) == (4, 3)
    assert room.has(3) and room.has(4) and not room.has(5)


def test_turn_settings_that_cannot_work_are_refused_at_start_up() -> None:
    from skillswap.settings import ConfigError

    Settings(turn_urls=("turn:turn.example.org",), turn_secret=SECRET).validate_for_serving()
    for wrong, message in (
        ({"turn_urls": ("turn:turn.example.org",)}, "TURN_URLS and TURN_SECRET go together"),
        ({"turn_secret": SECRET}, "TURN_URLS and TURN_SECRET go together"),
        ({"turn_ttl_seconds": 59}, "TURN_TTL_SECONDS must be at least 60"),
        ({"call_signal_max_bytes": 65_537}, "CALL_SIGNAL_MAX_BYTES must be from 256"),
    ):
        with pytest.raises(ConfigError, match=message):
            Settings(**wrong).validate_for_serving()
