"""The input rules on their own: JSON depth, text the database can store, keys fitted to columns."""

from __future__ import annotations

import time

import pytest

from skillswap.api.input_rules import (
    MAX_JSON_DEPTH,
    MalformedJson,
    UnstorableText,
    json_depth_exceeds,
    load_json,
    unstorable_paths,
)
from skillswap.idempotency import MAX_SCOPE_LENGTH, fitted, scope_of


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_depth_up_to_the_limit_parses_and_one_more_is_refused():
    deepest: list = []
    for _ in range(MAX_JSON_DEPTH - 1):
        deepest = [deepest]
    assert load_json(nested(MAX_JSON_DEPTH)) == deepest
    with pytest.raises(MalformedJson) as refused:
        load_json(nested(MAX_JSON_DEPTH + 1))
    assert refused.value.reason == "depth"


def test_brackets_in_strings_and_escaped_quotes_do_not_count():
    text = '{"a": "' + "[" * 500 + '\\"' + "{" * 500 + '"}'
    assert not json_depth_exceeds(text)
    assert load_json(text) == {"a": "[" * 500 + '"' + "{" * 500}


def test_many_siblings_are_not_depth():
    text = "[" + ",".join(["[]"] * 10_000) + "]"
    assert not json_depth_exceeds(text)
    assert len(load_json(text)) == 10_000


def test_the_depth_check_of_a_megabyte_is_cheap():
    text = nested(500_000)
    started = time.perf_counter()
    assert json_depth_exceeds(text)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"a": 1', "syntax"),
        (b'{"a": "\xff"}', "encoding"),
        (b'{"a": "\xed\xa0\x80"}', "encoding"),  # a surrogate as raw UTF-8 bytes
        ('{"a": 1}'.encode("utf-16"), "encoding"),
    ],
)
def test_what_is_not_utf8_json_is_malformed(raw, reason):
    with pytest.raises(MalformedJson) as refused:
        load_json(raw)
    assert refused.value.reason == reason


def test_unstorable_text_is_reported_at_every_path():
    raw = (
        '{"note": "a\\u0000", "items": [{"title": "ok"}, {"title": "\\udc00"}], '
        '"pair": "\\ud83d\\ude00", "k\\u0000ey": 1, "escaped": "\\\\u0000"}'
    )
    with pytest.raises(UnstorableText) as refused:
        load_json(raw)
    assert refused.value.paths == ["note", "items.1.title", "k\\u0000ey"]


def test_a_bare_string_has_no_path():
    assert unstorable_paths("\x00") == []
    assert load_json('"\\u0000"') == "\x00"


def test_fitted_keeps_short_keys_and_bounds_long_ones_deterministically():
    assert fitted("order:1:abc", 200) == "order:1:abc"
    long_a, long_b = "order:1:" + "a" * 300, "order:1:" + "a" * 299 + "b"
    assert len(fitted(long_a, 200)) == 200
    assert fitted(long_a, 200) == fitted(long_a, 200)
    assert fitted(long_a, 200) != fitted(long_b, 200)
    assert fitted(long_a, 200).startswith("order:1:aaa")


def test_a_scope_always_fits_its_column():
    scope = scope_of("POST", "/api/points/orders/" + "9" * 5000 + "/accept/")
    assert len(scope) == MAX_SCOPE_LENGTH
    assert scope_of("POST", "/api/points/orders/") == "POST /api/points/orders"
