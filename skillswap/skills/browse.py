"""Browsing and searching listings: filters, orderings, counted pages and keyset cursors.

Every ordering ends with the skill id, so the order is total and a page boundary is a precise
point. The `next`/`previous` links carry a keyset cursor (the sort values of the last/first
row shown), so following them never repeats or skips a listing while others are added or
removed; `page=N` is still accepted for jumping. Only active skills of active users appear.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Float, Select, and_, case, cast, exists, func, literal, or_, select, tuple_
from sqlalchemy.sql.elements import ColumnElement

from skillswap.api.paging import page_offset
from skillswap.errors import NotFound, ValidationFailed
from skillswap.i18n import lazy
from skillswap.models.skills import SkillStatus
from skillswap.skills.queries import AnyRow, categories, fetch_images, skill_select, skills, users
from skillswap.skills.search import SearchMatch, search_match
from skillswap.skills.text import normalise_tag

if TYPE_CHECKING:
    from skillswap.deps import Deps

ORDERINGS = ("relevance", "newest", "price", "-price", "rating", "popular")
Ordering = Literal["relevance", "newest", "price", "-price", "rating", "popular"]
Direction = Literal["after", "before"]
MAX_OFFSET = 1_000_000  # deeper than this, follow `next` links (keyset) instead of page numbers
_INT_RANGE = range(-(2**63), 2**63)


@dataclass(frozen=True)
class BrowseQuery:
    """What a reader asked for (already type-checked by the HTTP layer)."""

    search: str | None = None
    category: int | None = None
    min_price: int | None = None
    max_price: int | None = None
    min_rating: float | None = None
    level: str | None = None
    language: str | None = None
    owner: int | None = None
    tag: str | None = None
    ordering: Ordering | None = None
    page: int = 1
    page_size: int = 20
    cursor: str | None = None
    statuses: tuple[str, ...] = (SkillStatus.ACTIVE,)  # the owner's own view adds PAUSED


@dataclass(frozen=True)
class Cursor:
    """A page boundary: the sort values of a row and which side of it the page lies on."""

    ordering: str
    values: tuple[Any, ...]
    direction: Direction

    def encode(self) -> str:
        """Opaque URL-safe text."""
        values = [v.isoformat() if isinstance(v, datetime) else v for v in self.values]
        raw = json.dumps([self.ordering, self.direction[0], values], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@dataclass(frozen=True)
class SkillPage:
    """One page of listings with the boundaries of its neighbours."""

    count: int
    rows: list[AnyRow]
    images: dict[int, list[AnyRow]]
    next_cursor: str | None
    previous_cursor: str | None
    previous_page: int | None  # when the page is empty there is no row to anchor a cursor


def _invalid_cursor() -> ValidationFailed:
    return ValidationFailed(
        errors={"cursor": [lazy("This cursor is not valid for this listing; start again.")]}
    )


def decode_cursor(text: str, ordering: str) -> Cursor:
    """Read a cursor made by `Cursor.encode` for the same ordering."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        cursor_ordering, direction, values = json.loads(raw)
    except (ValueError, TypeError, binascii.Error):
        raise _invalid_cursor() from None
    expected = _key_kinds(ordering)
    if (
        cursor_ordering != ordering
        or direction not in ("a", "b")
        or not isinstance(values, list)
        or len(values) != len(expected)
    ):
        raise _invalid_cursor()
    parsed: list[Any] = []
    for kind, value in zip(expected, values, strict=True):
        if kind == "datetime" and isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                raise _invalid_cursor() from None
            if moment.tzinfo is None:
                raise _invalid_cursor()
            parsed.append(moment)
        elif (
            kind == "int"
            and isinstance(value, int)
            and not isinstance(value, bool)
            and value in _INT_RANGE
        ):
            parsed.append(value)
        elif (
            kind == "float"
            and isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
        ):
            parsed.append(float(value))
        else:
            raise _invalid_cursor()
    return Cursor(ordering, tuple(parsed), "after" if direction == "a" else "before")


def _key_kinds(ordering: str) -> tuple[str, ...]:
    return {
        "relevance": ("float", "int"),
        "newest": ("datetime", "int"),
        "price": ("int", "int"),
        "-price": ("int", "int"),
        "rating": ("float", "int", "int"),
        "popular": ("int", "int"),
    }[ordering]


def _rating_average() -> ColumnElement[float]:
    return case(
        (skills.c.rating_count > 0, cast(skills.c.rating_sum, Float) / skills.c.rating_count),
        else_=0.0,
    )


def _sort_keys(ordering: str, relevance: ColumnElement[Any] | None) -> tuple[list[Any], bool]:
    """The key expressions of `ordering` and whether it is ascending (all keys share it)."""
    if ordering == "relevance":
        assert relevance is not None
        return [relevance, skills.c.id], False
    if ordering == "newest":
        return [skills.c.created_at, skills.c.id], False
    if ordering == "price":
        return [skills.c.price_points, skills.c.id], True
    if ordering == "-price":
        return [skills.c.price_points, skills.c.id], False
    if ordering == "rating":
        return [_rating_average(), skills.c.rating_count, skills.c.id], False
    return [skills.c.orders_completed, skills.c.id], False  # popular


def _check(query: BrowseQuery) -> str:
    """The effective ordering, after refusing combinations that make no sense."""
    errors: dict[str, list[Any]] = {}
    search = (query.search or "").strip()
    if (
        query.min_price is not None
        and query.max_price is not None
        and query.min_price > query.max_price
    ):
        errors["max_price"] = [lazy("Must not be below min_price.")]
    ordering = query.ordering or ("relevance" if search else "newest")
    if ordering == "relevance" and not search:
        errors["ordering"] = [lazy("Ordering by relevance needs a search.")]
    if query.page * query.page_size > MAX_OFFSET:
        errors["page"] = [lazy("Must be at most {max}.", max=MAX_OFFSET // query.page_size)]
    if query.cursor and query.page != 1:
        errors["page"] = [lazy("Give either page or cursor, not both.")]
    if errors:
        raise ValidationFailed(errors=errors)
    return ordering


def _filters(deps: Deps, query: BrowseQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        skills.c.status.in_(query.statuses)
        if len(query.statuses) > 1
        else skills.c.status == query.statuses[0],
        users.c.is_active,
    ]
    sqlite = deps.db.is_sqlite
    if query.category is not None:
        family = select(categories.c.id).where(
            or_(categories.c.id == query.category, categories.c.parent_id == query.category)
        )
        conditions.append(skills.c.category_id.in_(family))
    if query.min_price is not None:
        conditions.append(skills.c.price_points >= query.min_price)
    if query.max_price is not None:
        conditions.append(skills.c.price_points <= query.max_price)
    if query.min_rating is not None:
        # Compared without division: sum >= min * count, only for rated skills.
        conditions.append(
            and_(
                skills.c.rating_count > 0,
                skills.c.rating_sum >= query.min_rating * skills.c.rating_count,
            )
        )
    if query.level is not None:
        conditions.append(skills.c.level == query.level)
    if query.owner is not None:
        conditions.append(skills.c.owner_id == query.owner)
    for column, value in (
        (skills.c.languages, query.language.lower() if query.language else None),
        (skills.c.tags, normalise_tag(query.tag) if query.tag else None),
    ):
        if value is None:
            continue
        if sqlite:
            member = func.json_each(column).table_valued("value")
            conditions.append(exists(select(1).select_from(member).where(member.c.value == value)))
        else:
            conditions.append(column.contains([value]))  # JSONB @>, served by the GIN index
    return conditions


async def browse_skills(deps: Deps, *, query: BrowseQuery) -> SkillPage:
    """A page of listings matching `query`: the total count, the rows, their images (3 queries)."""
    ordering = _check(query)
    cursor = decode_cursor(query.cursor, ordering) if query.cursor else None
    match = (
        search_match(query.search, "sqlite" if deps.db.is_sqlite else "postgresql")
        if (query.search and query.search.strip())
        else None
    )
    if match is not None and match.is_empty:
        # Nothing searchable (only punctuation or stop words): nothing matches, on both backends.
        return SkillPage(0, [], {}, None, None, query.page - 1 if query.page > 1 else None)

    narrow, counted, relevance = _matching(_filters(deps, query), match)
    keys, ascending = _sort_keys(ordering, relevance)
    # Reading "before" a cursor walks backwards and flips the rows afterwards.
    backwards = cursor is not None and cursor.direction == "before"
    statement = _page_of(narrow, keys, ascending != backwards, cursor, query)

    async with deps.db.engine.connect() as conn:
        count = int((await conn.execute(counted)).scalar_one())
        rows = list((await conn.execute(statement)).all())
        more = len(rows) > query.page_size
        rows = rows[: query.page_size]
        if backwards:
            rows.reverse()
        page_images = await fetch_images(conn, [row.id for row in rows]) if rows else {}
    return SkillPage(
        count=count,
        rows=rows,
        images=page_images,
        next_cursor=_neighbour(rows, ordering, "after", more or backwards),
        previous_cursor=_neighbour(
            rows, ordering, "before", more if backwards else (cursor is not None or query.page > 1)
        ),
        previous_page=query.page - 1 if not rows and query.page > 1 and cursor is None else None,
    )


def _matching(
    conditions: list[ColumnElement[bool]], match: SearchMatch | None
) -> tuple[Select[Any], Select[Any], ColumnElement[Any] | None]:
    """The matching skills' ids, their count, and the search relevance (None: no search)."""
    narrow = (
        select(skills.c.id)
        .select_from(skills.join(users, users.c.id == skills.c.owner_id))
        .where(*conditions)
    )
    counted = (
        select(func.count())
        .select_from(skills.join(users, users.c.id == skills.c.owner_id))
        .where(*conditions)
    )
    relevance: ColumnElement[Any] | None = None
    if match is not None:
        narrow, relevance = match.apply(narrow)
        counted, _ = match.apply(counted)
    return narrow, counted, relevance


def _page_of(
    narrow: Select[Any],
    keys: list[Any],
    forward_ascending: bool,
    cursor: Cursor | None,
    query: BrowseQuery,
) -> Select[Any]:
    """The full rows of one page (one more row than the page, to tell whether more follow).

    The page is chosen on narrow rows (ids and sort keys); only its own rows are then read
    in full. Sorting every match with its descriptions attached costs several times more.
    """
    if cursor is not None:
        bound = tuple_(*keys)
        values = tuple_(
            *(literal(v, type_=k.type) for v, k in zip(cursor.values, keys, strict=True))
        )
        narrow = narrow.where(bound > values if forward_ascending else bound < values)
    narrow = narrow.add_columns(*(k.label(f"key{n}") for n, k in enumerate(keys)))
    narrow = narrow.order_by(*(k.asc() if forward_ascending else k.desc() for k in keys))
    narrow = narrow.limit(query.page_size + 1)
    if cursor is None:
        narrow = narrow.offset(page_offset(query.page, query.page_size))
    top = narrow.subquery("top")
    top_keys = [top.c[f"key{n}"] for n in range(len(keys))]
    return (
        skill_select()
        .join(top, top.c.id == skills.c.id)
        .add_columns(*top_keys)
        .order_by(*(k.asc() if forward_ascending else k.desc() for k in top_keys))
    )


async def browse_owner_skills(deps: Deps, *, owner_id: int, query: BrowseQuery) -> SkillPage:
    """One active person's active skills (404 for unknown or deactivated accounts)."""
    async with deps.db.engine.connect() as conn:
        active = (
            await conn.execute(select(users.c.is_active).where(users.c.id == owner_id))
        ).scalar_one_or_none()
    if not active:
        raise NotFound(lazy("This user does not exist."), code="user_not_found")
    return await browse_skills(deps, query=replace(query, owner=owner_id))


def _row_key(row: AnyRow, ordering: str) -> tuple[Any, ...]:
    kinds = _key_kinds(ordering)
    return tuple(
        float(getattr(row, f"key{n}")) if kind == "float" else getattr(row, f"key{n}")
        for n, kind in enumerate(kinds)
    )


def _neighbour(
    rows: list[AnyRow], ordering: str, direction: Direction, exists_: bool
) -> str | None:
    if not rows or not exists_:
        return None
    anchor = rows[-1] if direction == "after" else rows[0]
    return Cursor(ordering, _row_key(anchor, ordering), direction).encode()


__all__ = [
    "ORDERINGS",
    "BrowseQuery",
    "Cursor",
    "SkillPage",
    "browse_owner_skills",
    "browse_skills",
    "decode_cursor",
]
