"""CSV exports of a list's current filter: streamed page by page, capped, formula-safe."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import tornado.web

# The most rows one export holds; a wider question is one for the database, not a spreadsheet.
EXPORT_CAP = 10_000
EXPORT_BATCH = 500
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Fetch = Callable[[int, int], Awaitable[tuple[int, Sequence[Any]]]]


def safe_cell(value: Any) -> str:
    """A value as a CSV cell no spreadsheet will run: text that could start a formula is quoted."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)  # a number, negative ones too, is data
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _line(cells: Sequence[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow([safe_cell(cell) for cell in cells])
    return buffer.getvalue()


async def stream_csv(
    handler: tornado.web.RequestHandler,
    *,
    filename: str,
    header: Sequence[str],
    fetch: Fetch,
    row: Callable[[Any], Sequence[Any]],
) -> None:
    """Write `fetch`'s rows (offset, limit -> count, rows) as CSV, a batch at a time."""
    handler.set_header("Content-Type", "text/csv; charset=utf-8")
    handler.set_header("Content-Disposition", f'attachment; filename="{filename}"')
    handler.write("\ufeff" + _line(header))  # the BOM: spreadsheets then read UTF-8 (Arabic)
    offset = 0
    while offset < EXPORT_CAP:
        _count, rows = await fetch(offset, min(EXPORT_BATCH, EXPORT_CAP - offset))
        if not rows:
            break
        handler.write("".join(_line(row(item)) for item in rows))
        await handler.flush()
        offset += len(rows)
        if len(rows) < EXPORT_BATCH:
            break
    handler.finish()
