"""Lesson calendar endpoints: the signed-in user's feed URL, and the private iCalendar feed."""

from __future__ import annotations

from typing import Any

routes: list[Any] = []
