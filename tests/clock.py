"""A clock tests can move: the shared app runs on it, and a test shifts it for a while."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta


class MovableClock:
    """`deps.clock` of the shared test app: the real time plus an offset a test may set."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    @contextmanager
    def moved(self, delta: timedelta) -> Iterator[None]:
        """Run the app `delta` in the future (or past) inside the block."""
        before = self.offset
        self.offset = before + delta
        try:
            yield
        finally:
            self.offset = before
