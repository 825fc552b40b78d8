"""Client frames parsed into commands, and server frames on the wire, each answer written out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from skillswap.i18n import Catalogs
from skillswap.realtime.protocol import (
    Auth,
    Call,
    FrameError,
    Ping,
    Read,
    Send,
    Subscribe,
    Typing,
    Unsubscribe,
    frame,
    parse_frame,
    text_frame,
)

ENGLISH = Catalogs().get("en")
BIGGEST_ID = 9_223_372_036_854_775_807  # BIGINT's largest value


def refusal(raw: str | bytes) -> tuple[str, str, dict[str, Any]]:
    with pytest.raises(FrameError) as refused:
        parse_frame(raw)
    return refused.value.code, refused.value.detail.render(ENGLISH), refused.value.context


@pytest.mark.parametrize(
    ("raw", "command"),
    [
        ('{"type": "ping"}', Ping()),
        ('{"type": "send", "room": 7, "body": "hi"}', Send(room=7, body="hi", client_id=None)),
        (
            '{"type": "send", "room": 7, "body": "", "client_id": "c-1"}',
            Send(room=7, body="", client_id="c-1"),
        ),
        ('{"type": "subscribe", "room": 3}', Subscribe(room=3, last_id=None)),
        ('{"type": "subscribe", "room": 3, "last_id": 0}', Subscribe(room=3, last_id=0)),
        ('{"type": "subscribe", "room": 3, "last_id": 41}', Subscribe(room=3, last_id=41)),
        ('{"type": "unsubscribe", "room": 3}', Unsubscribe(room=3)),
        ('{"type": "typing", "room": 9}', Typing(room=9)),
        ('{"type": "read", "room": 9, "message_id": 12}', Read(room=9, message_id=12)),
        ('{"type": "auth", "token": "abc.def"}', Auth(token="abc.def")),
        (b'{"type": "typing", "room": 9}', Typing(room=9)),
        (f'{{"type": "typing", "room": {BIGGEST_ID}}}', Typing(room=BIGGEST_ID)),
        ('{"type": "ping", "extra": [1, 2]}', Ping()),
        (
            '{"type": "call", "room": 5, "signal": {"kind": "hangup"}}',
            Call(room=5, signal={"kind": "hangup"}, size=57),
        ),
        (
            # The size is in bytes: "é" is two of them.
            '{"type": "call", "room": 5, "signal": {"kind": "offer", "sdp": "é"}}',
            Call(room=5, signal={"kind": "offer", "sdp": "é"}, size=69),
        ),
        (
            b'{"type": "call", "room": 5, "signal": {"kind": "candidate", "candidate": ""}}',
            Call(room=5, signal={"kind": "candidate", "candidate": ""}, size=77),
        ),
    ],
)
def test_frames_that_parse(raw: str | bytes, command: object) -> None:
    assert parse_frame(raw) == command


@pytest.mark.parametrize(
    ("raw", "code", "detail", "context"),
    [
        ("{not json", "malformed_frame", "The frame is not valid JSON.", {}),
        ("[1, 2]", "malformed_frame", "A frame must be a JSON object.", {}),
        ('"ping"', "malformed_frame", "A frame must be a JSON object.", {}),
        (
            "[" * 65 + "]" * 65,
            "malformed_frame",
            "The frame is nested more than 64 levels deep.",
            {},
        ),
        (
            '{"type": "dance"}',
            "unknown_type",
            "Unknown frame type. Use subscribe, unsubscribe, send, typing, read, ping, auth or call.",
            {},
        ),
        (
            "{}",
            "unknown_type",
            "Unknown frame type. Use subscribe, unsubscribe, send, typing, read, ping, auth or call.",
            {},
        ),
        (
            '{"type": "typing"}',
            "invalid_frame",
            "`room` must be a whole number of at least 1.",
            {"field": "room"},
        ),
        (
            '{"type": "typing", "room": 0}',
            "invalid_frame",
            "`room` must be a whole number of at least 1.",
            {"field": "room"},
        ),
        (
            '{"type": "typing", "room": true}',
            "invalid_frame",
            "`room` must be a whole number of at least 1.",
            {"field": "room"},
        ),
        (
            '{"type": "typing", "room": "5"}',
            "invalid_frame",
            "`room` must be a whole number of at least 1.",
            {"field": "room"},
        ),
        (
            '{"type": "typing", "room": 2.5}',
            "invalid_frame",
            "`room` must be a whole number of at least 1.",
            {"field": "room"},
        ),
        (
            f'{{"type": "typing", "room": {BIGGEST_ID + 1}}}',
            "invalid_frame",
            f"`room` must be a whole number from 1 to {BIGGEST_ID}.",
            {"field": "room"},
        ),
        (
            '{"type": "subscribe", "room": 1, "last_id": -1}',
            "invalid_frame",
            "`last_id` must be a whole number of at least 0.",
            {"field": "last_id"},
        ),
        (
            '{"type": "read", "room": 1}',
            "invalid_frame",
            "`message_id` must be a whole number of at least 1.",
            {"field": "message_id"},
        ),
        (
            '{"type": "send", "room": 1}',
            "invalid_frame",
            "`body` must be a string.",
            {},
        ),
        (
            '{"type": "send", "room": 1, "body": 5}',
            "invalid_frame",
            "`body` must be a string.",
            {},
        ),
        (
            '{"type": "send", "room": 1, "body": "x", "client_id": ""}',
            "invalid_frame",
            "`client_id` must be 1 to 64 characters.",
            {},
        ),
        (
            '{"type": "send", "room": 1, "body": "x", "client_id": "' + "c" * 65 + '"}',
            "invalid_frame",
            "`client_id` must be 1 to 64 characters.",
            {},
        ),
        (
            '{"type": "call", "signal": {"kind": "offer"}}',
            "invalid_frame",
            "`room` must be a whole number of at least 1.",
            {"field": "room"},
        ),
        (
            '{"type": "call", "room": 1, "signal": "offer"}',
            "invalid_frame",
            "`signal` must be an object whose `kind` is offer, answer, candidate or hangup.",
            {"field": "signal", "room": 1},
        ),
        (
            '{"type": "call", "room": 1, "signal": {"kind": "dance"}}',
            "invalid_frame",
            "`signal` must be an object whose `kind` is offer, answer, candidate or hangup.",
            {"field": "signal", "room": 1},
        ),
        (
            '{"type": "call", "room": 1}',
            "invalid_frame",
            "`signal` must be an object whose `kind` is offer, answer, candidate or hangup.",
            {"field": "signal", "room": 1},
        ),
        (
            '{"type": "auth", "token": "' + "t" * 4097 + '"}',
            "invalid_frame",
            "`token` must be 1 to 4096 characters.",
            {},
        ),
    ],
)
def test_frames_that_are_refused(raw: str, code: str, detail: str, context: dict[str, Any]) -> None:
    assert refusal(raw) == (code, detail, context)


def test_a_body_of_a_million_characters_is_the_limit() -> None:
    at_limit = json.dumps({"type": "send", "room": 1, "body": "b" * 1_000_000})
    over = json.dumps({"type": "send", "room": 1, "body": "b" * 1_000_001})
    assert parse_frame(at_limit) == Send(room=1, body="b" * 1_000_000, client_id=None)
    assert refusal(over) == (
        "invalid_frame",
        "`body` must be 1 to 1000000 characters.",
        {},
    )


def test_unstorable_text_names_the_field_and_a_sound_room_and_client_id() -> None:
    raw = '{"type": "send", "room": 4, "client_id": "c-9", "body": "a\\u0000b"}'
    assert refusal(raw) == (
        "invalid_frame",
        "`body` must not contain NUL characters or unpaired surrogates.",
        {"field": "body", "room": 4, "client_id": "c-9"},
    )


def test_unstorable_text_leaves_out_an_unsound_room_and_client_id() -> None:
    raw = '{"type": "send", "room": true, "client_id": "\\ud800", "body": "ok"}'
    assert refusal(raw) == (
        "invalid_frame",
        "`client_id` must not contain NUL characters or unpaired surrogates.",
        {"field": "client_id"},
    )


def test_server_frames_are_compact_json_with_the_type_first() -> None:
    assert json.loads(frame("ack", room=3, id=10, client_id=None)) == {
        "type": "ack",
        "room": 3,
        "id": 10,
        "client_id": None,
    }
    assert frame("pong").startswith(b'{"type":"pong"')


@pytest.mark.parametrize(
    ("size", "header"),
    [
        (0, b"\x81\x00"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e\x00\x7e"),
        (65535, b"\x81\x7e\xff\xff"),
        (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
    ],
)
def test_text_frames_use_the_shortest_length_encoding(size: int, header: bytes) -> None:
    payload = b"p" * size
    assert text_frame(payload) == header + payload
