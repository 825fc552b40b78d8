"""Lesson endpoints: the teacher's availability, a lesson skill's free slots, one's lessons."""

from __future__ import annotations

from typing import Any

routes: list[Any] = []
