"""Pages of a list: which page of what size was asked for, and where it starts."""

from __future__ import annotations

from dataclasses import dataclass


def page_offset(page: int, page_size: int) -> int:
    """How many rows come before page `page` (counted from 1) of `page_size` rows."""
    return (page - 1) * page_size


@dataclass(frozen=True)
class PageParams:
    """A page number (from 1) and size, as a list endpoint read them from the query string."""

    page: int
    page_size: int

    @property
    def offset(self) -> int:
        return page_offset(self.page, self.page_size)
