"""A bounded in-memory map whose entries lapse at their own expiry time."""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class ExpiringMap(Generic[K, V]):
    """Entries live until their expiry on whatever clock the caller passes as `now`.

    Full, it first drops what has lapsed, and if that is not enough, everything: a per-node
    memo that forgets is slower for a moment, never wrong.
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K, now: float) -> V | None:
        """The live value under `key`, or None (a lapsed entry is dropped)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: K, value: V, expires_at: float, now: float) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[key] = (expires_at, value)

    def pop(self, key: K) -> None:
        self._entries.pop(key, None)
