"""What any client input must be before a parser or the database sees it.

Two rules, kept here once for every way input arrives (JSON bodies, query strings, path
arguments, WebSocket frames):

- JSON is UTF-8 and nested at most MAX_JSON_DEPTH deep. Deeper documents are refused before
  they are parsed: the standard parser recurses, and a few kilobytes of `[` would otherwise
  end in a RecursionError.
- Text holds only characters PostgreSQL can store: no NUL (refused by `text` and `jsonb`) and
  no unpaired UTF-16 surrogate (JSON's `"\\ud800"` parses to one; it has no UTF-8 form, so the
  driver cannot send it). SQLite takes NUL, but the rule is the same on both.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from typing import Any

from skillswap.i18n import N_

MAX_JSON_DEPTH = 64
# More problems than this in one input are not worth listing one by one.
MAX_REPORTED = 20

UNSTORABLE_TEXT = N_("Must not contain NUL characters or unpaired surrogates.")

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# In JSON text (already decoded as strict UTF-8, where neither can appear raw, and raw NUL is
# not valid JSON anyway) such a character can only come from a \u escape. Without one of these
# escapes a document needs no walk; with one (a surrogate pair, an escaped backslash) it is
# walked, which is exact.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_STRING_LITERAL = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class MalformedJson(ValueError):
    """Input that is not a JSON document this service reads (not UTF-8, invalid, too deep)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "encoding", "syntax" or "depth"


class UnstorableText(ValueError):
    """A JSON document holding keys or strings the database cannot store, at `paths`."""

    def __init__(self, paths: list[str], document: Any) -> None:
        super().__init__(", ".join(paths))
        self.paths = paths
        self.document = document  # parsed, for callers that answer with parts of it


def has_unstorable_text(value: str) -> bool:
    """Whether `value` holds a character the database cannot store."""
    return _UNSTORABLE.search(value) is not None


def printable_name(name: str) -> str:
    """`name` with unstorable characters written as \\uXXXX, safe to echo in an error."""
    return _UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", name)


def json_depth_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON `text` nests arrays and objects deeper than `limit`.

    Cheap: a document with at most `limit` brackets in all cannot be too deep, and otherwise
    the brackets outside string literals are counted in C (no parsing, no Python loop).
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _NOT_A_BRACKET.sub("", _STRING_LITERAL.sub("", text))
    return max(itertools.accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0) > limit


def load_json(raw: str | bytes) -> Any:
    """Parse client JSON under both rules above: MalformedJson or UnstorableText if broken."""
    if isinstance(raw, bytes):
        try:
            # Strictly UTF-8 (RFC 8259): json.loads on bytes would also guess UTF-16/32 and
            # let raw surrogates through ("surrogatepass").
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedJson("encoding") from None
    else:
        text = raw
    if json_depth_exceeds(text):
        raise MalformedJson("depth")
    try:
        document = json.loads(text)
    except RecursionError:  # pragma: no cover - the depth check above comes first
        raise MalformedJson("depth") from None
    except ValueError:
        raise MalformedJson("syntax") from None
    if _SUSPECT_ESCAPE.search(text) is not None:
        paths = unstorable_paths(document)
        if paths:
            raise UnstorableText(paths, document)
    return document


def unstorable_paths(document: Any) -> list[str]:
    """The paths (`note`, `items.0.title`) of keys and strings inside the object or array
    `document` that the database cannot store, at most MAX_REPORTED; a bad key is named with
    its characters escaped. (A bare string has no path: callers want an object anyway.)"""
    if not isinstance(document, (dict, list)):
        return []
    return list(itertools.islice(_walk(document, ""), MAX_REPORTED))


def _walk(value: Any, path: str) -> Iterator[str]:
    # Iterative, so no input can exhaust the stack (load_json bounds the depth anyway); in
    # document order. An entry is (value, its path, whether it is a key the database refuses).
    stack: list[tuple[Any, str, bool]] = [(value, path, False)]
    while stack:
        current, where, bad_key = stack.pop()
        if bad_key:
            yield printable_name(where)
        elif isinstance(current, str):
            if has_unstorable_text(current):
                yield where
        elif isinstance(current, dict):
            children = []
            for key, item in current.items():
                name = f"{where}.{key}" if where else str(key)
                children.append((item, name, isinstance(key, str) and has_unstorable_text(key)))
            stack.extend(reversed(children))
        elif isinstance(current, list):
            stack.extend(
                (item, f"{where}.{index}" if where else str(index), False)
                for index, item in reversed(list(enumerate(current)))
            )
