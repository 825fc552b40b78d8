"""Browsing and searching listings: filters, orderings, counted pages and keyset cursors.

Every ordering ends with the skill id, so the order is total and a page boundary is a precise
point. The `next`/`previous` links carry a keyset cursor (the sort values of the last/first
row shown), so following them never repeats or skips a listing while others are added or
removed; `page=N` is still accepted for jumping. Only active skills of active users appear.

What a page costs does not grow with the table (see docs/performance.md): each ordering has a
partial index on active skills that also holds what pages filter on, so a page reads about the
rows it shows. The count is exact up to COUNT_BOUND matches and PostgreSQL's estimate beyond
(`count_is_estimate`); a relevance search ranks its first SEARCH_CANDIDATES matches, in the
order the full-text index hands them over, instead of scoring every match of a common word.
On SQLite (the embedded default, one machine) counts are exact and every match is ranked.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import (
    Float,
    Integer,
    Select,
    Text,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal_column,
    or_,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement

from skillswap.api.paging import page_offset
from skillswap.errors import NotFound, ValidationFailed
from skillswap.i18n import lazy
from skillswap.models.skills import SkillStatus
from skillswap.skills.queries import (
    SKILL_COLUMNS,
    ImageTuple,
    categories,
    image_tuples,
    images_json,
    skills,
    users,
)
from skillswap.skills.search import SearchMatch, fts_hits, search_match, tsquery_of
from skillswap.skills.text import normalise_tag

if TYPE_CHECKING:
    from skillswap.deps import Deps

ORDERINGS = ("relevance", "newest", "price", "-price", "rating", "popular")
Ordering = Literal["relevance", "newest", "price", "-price", "rating", "popular"]
Direction = Literal["after", "before"]
MAX_OFFSET = 1_000_000  # deeper than this, follow `next` links (keyset) instead of page numbers
COUNT_BOUND = 1_000  # counted exactly up to this many matches; estimated beyond (PostgreSQL)
SEARCH_CANDIDATES = 200  # a relevance search ranks (and counts exactly) this many matches
RECENT_WINDOW = 1_000  # ...looked for first among this many newest listings
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
    rows: list[Any]  # mappings of the columns of queries.SKILL_COLUMNS (and the sort keys)
    images: dict[int, list[ImageTuple]]
    next_cursor: str | None
    previous_cursor: str | None
    previous_page: int | None  # when the page is empty there is no row to anchor a cursor
    count_is_estimate: bool = False  # past COUNT_BOUND (or SEARCH_CANDIDATES) matches


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


# -- statements, built once per shape ----------------------------------------------------------
#
# A page is one statement: the bounded count, the page's rows with their owners and categories,
# and their images. What the statement looks like depends only on which filters are given, the
# ordering, the cursor's side and how many forms each search term has (the `_Shape`); the values
# are bind parameters. So each shape is built and compiled once per process and, on PostgreSQL,
# run straight on asyncpg (which keeps it prepared per connection): no ORM, no per-request SQL
# compilation, and one round trip.


@dataclass(frozen=True)
class _Shape:
    dialect: str
    statuses: tuple[str, ...]
    category: bool
    min_price: bool
    max_price: bool
    min_rating: bool
    level: bool
    language: bool
    owner: bool
    tag: bool
    ordering: str
    direction: Direction | None  # of the cursor; None: an offset page
    search: tuple[int, ...] | None  # forms per search term
    # Written into the SQL, not bound: a statement prepared once gets a generic plan, and with
    # a LIMIT it cannot see PostgreSQL plans for a tenth of the table (sorting all of it).
    page_size: int
    offset: int

    @property
    def bound(self) -> int:
        """Matches counted (one more than the count that is still exact)."""
        return (SEARCH_CANDIDATES if self.ranked_candidates else COUNT_BOUND) + 1

    @property
    def bounded(self) -> bool:
        """Whether the count stops at a bound (PostgreSQL: an estimate beyond it)."""
        return self.dialect == "postgresql"

    @property
    def ranked_candidates(self) -> bool:
        """A PostgreSQL relevance search ranks only its first SEARCH_CANDIDATES matches."""
        return self.bounded and self.search is not None and self.ordering == "relevance"

    @property
    def per_category(self) -> bool:
        """Walk each category of the family in index order, then merge (PostgreSQL LATERAL)."""
        return (
            self.bounded
            and self.category
            and self.search is None
            and self.ordering in ("newest", "price", "-price", "popular")
        )


@dataclass(frozen=True)
class _Statements:
    page: Select[Any]  # count, rows, images, sort keys
    count: Select[Any]  # the count alone (for an empty page)
    estimate: Select[Any]  # every match, unbounded: what EXPLAIN estimates (PostgreSQL)


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


def _family() -> Select[Any]:
    """The asked category and its children."""
    category = bindparam("category", type_=categories.c.id.type)
    return select(categories.c.id).where(
        or_(categories.c.id == category, categories.c.parent_id == category)
    )


def _conditions(
    shape: _Shape, *, with_category: bool = True, with_filters: bool = True
) -> list[ColumnElement[bool]]:
    """What every matching skill satisfies, with the values as bind parameters.

    The statuses are written as constants (they come from the code, never from a reader), so
    that the partial indexes on `status = 'active'` serve even a statement prepared once.
    Banned owners are few: their ids are looked up once per statement (a hashed subplan over a
    small partial index) instead of joining every candidate row to its owner.
    """
    statuses: list[ColumnElement[Any]] = [
        literal_column(f"'{status}'") for status in shape.statuses
    ]
    conditions: list[ColumnElement[bool]] = [
        skills.c.status == statuses[0] if len(statuses) == 1 else skills.c.status.in_(statuses),
        skills.c.owner_id.not_in(select(users.c.id).where(~users.c.is_active)),
    ]
    if not with_filters:
        return conditions
    # A search is driven by the full-text index alone: its other filters are checked on the
    # rows it finds. Written `x + 0`, they offer no index, so a plan prepared once (which cannot
    # see how selective a value is) never ANDs the search with a price range of half the table.
    category: ColumnElement[Any] = skills.c.category_id
    price: ColumnElement[Any] = skills.c.price_points
    if shape.search is not None and shape.dialect == "postgresql":
        category, price = category + 0, price + 0
    if shape.category and with_category:
        conditions.append(category.in_(_family()))
    if shape.min_price:
        conditions.append(price >= bindparam("min_price", type_=Integer()))
    if shape.max_price:
        conditions.append(price <= bindparam("max_price", type_=Integer()))
    if shape.min_rating:
        # Compared without division: sum >= min * count, only for rated skills.
        minimum = bindparam("min_rating", type_=Float())
        conditions.append(
            and_(skills.c.rating_count > 0, skills.c.rating_sum >= minimum * skills.c.rating_count)
        )
    if shape.level:
        conditions.append(skills.c.level == bindparam("level", type_=skills.c.level.type))
    if shape.owner:
        conditions.append(skills.c.owner_id == bindparam("owner", type_=skills.c.owner_id.type))
    for column, name, given in (
        (skills.c.languages, "language", shape.language),
        (skills.c.tags, "tag", shape.tag),
    ):
        if not given:
            continue
        if shape.dialect == "sqlite":
            member = func.json_each(column).table_valued("value")
            value = bindparam(name, type_=Text())
            conditions.append(exists(select(1).select_from(member).where(member.c.value == value)))
        else:  # JSONB @> [value], served by the GIN index
            conditions.append(column.contains(bindparam(name, type_=column.type)))
    return conditions


def _keyset(keys: list[Any], ascending: bool) -> ColumnElement[bool]:
    bound = tuple_(*keys)
    values = tuple_(*(bindparam(f"c{i}", type_=k.type) for i, k in enumerate(keys)))
    return bound > values if ascending else bound < values


def _constant(number: int) -> ColumnElement[Any]:
    return literal_column(str(int(number)), Integer())


def _ordered(keys: list[Any], ascending: bool) -> list[Any]:
    return [k.asc() if ascending else k.desc() for k in keys]


def _labelled(keys: list[Any]) -> list[Any]:
    return [k.label(f"key{n}") for n, k in enumerate(keys)]


@functools.lru_cache(maxsize=512)
def _statements(shape: _Shape) -> _Statements:
    """The statements of one shape (built once; SQLAlchemy and asyncpg cache the rest)."""
    keys_ascending = _sort_keys(shape.ordering, skills.c.id)[1]  # the direction of the order
    # Reading "before" a cursor walks backwards and flips the rows afterwards.
    ascending = keys_ascending != (shape.direction == "before")
    conditions = _conditions(shape)
    page_limit = _constant(shape.page_size + 1)  # one more than the page: do more follow?
    bound = _constant(shape.bound)
    base = select(skills.c.id).where(*conditions)
    relevance: ColumnElement[Any] | None = None
    matches = base
    if shape.search is not None and shape.dialect == "sqlite":
        hits = fts_hits()
        matches = base.join_from(skills, hits, hits.c.skill_id == skills.c.id)
        relevance = hits.c.score
    elif shape.search is not None:
        tsquery = tsquery_of(shape.search)
        matches = base.where(skills.c.search_vector.op("@@")(tsquery))
        relevance = cast(func.ts_rank(skills.c.search_vector, tsquery_of(shape.search)), Float)
    keys, _ = _sort_keys(shape.ordering, relevance)

    counted_rows = matches.limit(bound) if shape.bounded else matches
    if shape.per_category:
        # Counted per category of the family too, each in its own index: with the family an IN
        # list, a plan prepared once (not knowing how many categories it holds) may scan skills.
        family = _family().subquery("counted_family")
        walked = (
            select(literal_column("1").label("one"))
            .where(skills.c.category_id == family.c.id, *_conditions(shape, with_category=False))
            .limit(bound)
            .lateral("counted_per_category")
        )
        counted_rows = select(walked.c.one).select_from(family.join(walked, true())).limit(bound)
    if shape.ranked_candidates:
        # Rank only the first matches the index hands over (a common word matches a large
        # share of the table: scoring every one of them is what made searches slow).
        assert relevance is not None and shape.search is not None
        candidates = _candidates(shape, matches, relevance, bound).cte("candidates")
        total = select(func.count()).select_from(candidates).scalar_subquery()
        ranked = [candidates.c.rank, candidates.c.id]
        top = select(candidates.c.id, *_labelled(ranked))
        if shape.direction is not None:
            top = top.where(_keyset(ranked, ascending))
    else:
        total = select(func.count()).select_from(counted_rows.subquery("counted")).scalar_subquery()
        top = _top_of(shape, matches, keys, ascending)
    top = top.order_by(*_ordered(_key_columns(top, len(keys)), ascending)).limit(page_limit)
    if shape.offset:
        top = top.offset(_constant(shape.offset))
    chosen = top.subquery("top")
    chosen_keys = [chosen.c[f"key{n}"] for n in range(len(keys))]
    page = (
        select(
            *SKILL_COLUMNS,
            images_json(shape.dialect).label("images"),
            total.label("total"),
            *chosen_keys,
        )
        .select_from(
            skills.join(chosen, chosen.c.id == skills.c.id)
            .join(users, users.c.id == skills.c.owner_id)
            .join(categories, categories.c.id == skills.c.category_id)
        )
        .order_by(*_ordered(chosen_keys, ascending))
    )
    if shape.search is not None and shape.dialect == "postgresql":
        # Estimated with the search written inline: a subquery's value is hidden from the planner.
        inline = tsquery_of(shape.search, once=False)
        matches = base.where(skills.c.search_vector.op("@@")(inline))
    estimate: Select[Any] = select(literal_column("1")).select_from(matches.subquery("every_match"))
    return _Statements(page=page, count=select(total.label("total")), estimate=estimate)


def _candidates(
    shape: _Shape,
    matches: Select[Any],
    relevance: ColumnElement[Any],
    bound: ColumnElement[Any],
) -> Any:
    """The matches a relevance search ranks: the newest first, then the full-text index's.

    A common word is found among the newest RECENT_WINDOW listings at once (read newest first,
    the scan stops as soon as there are enough), without the full-text index, whose bitmap
    costs about a microsecond and a half per match: 300 ms for a word in most of a million
    listings. Only when the newest do not give enough does the index give the rest (the
    branches of UNION ALL run in turn, and the LIMIT stops them).
    """
    assert shape.search is not None
    # The newest listings whatever the filters (so the plan is always the newest-first index),
    # each match then checked against the filters on its own row.
    window = (
        select(skills.c.id, skills.c.search_vector)
        .where(*_conditions(shape, with_filters=False))
        .order_by(skills.c.created_at.desc(), skills.c.id.desc())
        .limit(_constant(RECENT_WINDOW))
        .cte("recent")
    )
    recent = (
        select(
            window.c.id,
            cast(func.ts_rank(window.c.search_vector, tsquery_of(shape.search)), Float).label(
                "rank"
            ),
        )
        .select_from(window.join(skills, skills.c.id == window.c.id))
        .where(window.c.search_vector.op("@@")(tsquery_of(shape.search)), *_conditions(shape))
    )
    older = matches.add_columns(relevance.label("rank")).where(
        skills.c.id.not_in(select(window.c.id))
    )
    return union_all(recent, older).limit(bound)


def _key_columns(top: Select[Any], count: int) -> list[Any]:
    return [top.selected_columns[f"key{n}"] for n in range(count)]


def _top_of(shape: _Shape, matches: Select[Any], keys: list[Any], ascending: bool) -> Select[Any]:
    """The ids and sort keys of the page's rows (order and limit added by the caller).

    The page is chosen on narrow rows (ids and sort keys); only its own rows are then read in
    full. For a category on PostgreSQL, each category of the family is walked in its own index
    order (`per_category`) and the few rows each gives are merged: an IN list would read every
    row of the family to sort them.
    """
    if not shape.per_category:
        top = matches.add_columns(*_labelled(keys))
        return top.where(_keyset(keys, ascending)) if shape.direction is not None else top
    family = _family().subquery("family")
    inner = (
        select(skills.c.id, *_labelled(keys))
        .where(skills.c.category_id == family.c.id, *_conditions(shape, with_category=False))
        .order_by(*_ordered(keys, ascending))
        .limit(_constant(shape.offset + shape.page_size + 1))
    )
    if shape.direction is not None:
        inner = inner.where(_keyset(keys, ascending))
    walked = inner.lateral("per_category")
    return select(walked.c.id, *(walked.c[f"key{n}"] for n in range(len(keys)))).select_from(
        family.join(walked, true())
    )


def _shape(
    deps: Deps, query: BrowseQuery, ordering: str, cursor: Cursor | None, match: SearchMatch | None
) -> _Shape:
    return _Shape(
        dialect="sqlite" if deps.db.is_sqlite else "postgresql",
        statuses=tuple(query.statuses),
        category=query.category is not None,
        min_price=query.min_price is not None,
        max_price=query.max_price is not None,
        min_rating=query.min_rating is not None,
        level=query.level is not None,
        language=query.language is not None,
        owner=query.owner is not None,
        tag=query.tag is not None,
        ordering=ordering,
        direction=cursor.direction if cursor is not None else None,
        search=match.shape if match is not None else None,
        page_size=query.page_size,
        offset=page_offset(query.page, query.page_size) if cursor is None else 0,
    )


def _params(
    shape: _Shape, query: BrowseQuery, cursor: Cursor | None, match: SearchMatch | None
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    sqlite = shape.dialect == "sqlite"
    language = query.language.lower() if query.language else None
    tag = normalise_tag(query.tag) if query.tag else None
    for name, value in (
        ("category", query.category),
        ("min_price", query.min_price),
        ("max_price", query.max_price),
        ("min_rating", query.min_rating),
        ("level", query.level),
        ("owner", query.owner),
        ("language", language if sqlite or language is None else [language]),
        ("tag", tag if sqlite or tag is None else [tag]),
    ):
        if value is not None:
            params[name] = value
    if cursor is not None:
        params.update({f"c{n}": value for n, value in enumerate(cursor.values)})
    if match is not None:
        params.update(match.params())
    return params


async def _run(deps: Deps, statement: Select[Any], params: dict[str, Any]) -> list[Any]:
    """The rows of `statement` as mappings: straight on asyncpg in autocommit on PostgreSQL (one
    round trip, no transaction to begin or end), through SQLAlchemy on SQLite."""
    db = deps.db
    if not db.on_driver:
        names = _parameter_names(statement)
        async with db.engine.connect() as conn:
            result = await conn.execute(statement, {k: v for k, v in params.items() if k in names})
            return list(result.mappings())
    sql, args = _driver_form(deps, statement, params)
    async with db.autocommit() as driver:
        return list(await driver.fetch(sql, *args))


@functools.lru_cache(maxsize=4096)
def _parameter_names(statement: Select[Any]) -> frozenset[str]:
    return frozenset(statement.compile().params)


@dataclass(frozen=True)
class _DriverForm:
    sql: str
    names: tuple[str, ...]  # the bound parameters, in the order of $1, $2, ...
    processors: tuple[Any, ...]
    constants: dict[str, Any]  # the values the statement itself binds (its literals)


_driver_forms: dict[int, tuple[Select[Any], _DriverForm]] = {}


def _driver_form(
    deps: Deps, statement: Select[Any], params: dict[str, Any]
) -> tuple[str, list[Any]]:
    """The SQL of `statement` for asyncpg (compiled once) and its arguments in order."""
    found = _driver_forms.get(id(statement))
    if found is None or found[0] is not statement:
        dialect = deps.db.engine.dialect
        compiled = statement.compile(dialect=dialect)
        assert compiled.positiontup is not None and "POSTCOMPILE" not in compiled.string
        names = tuple(compiled.positiontup)
        form = _DriverForm(
            sql=compiled.string,
            names=names,
            # What SQLAlchemy would apply to each value (type decorators, JSON), as in
            # skillswap.db.compiled.
            processors=tuple(
                compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                for name in names
            ),
            constants=dict(compiled.params),
        )
        found = _driver_forms[id(statement)] = (statement, form)
    form = found[1]
    args = []
    for name, process in zip(form.names, form.processors, strict=True):
        value = params[name] if name in params else form.constants[name]
        args.append(value if process is None else process(value))
    return form.sql, args


async def _estimate(deps: Deps, statement: Select[Any], params: dict[str, Any]) -> int:
    """PostgreSQL's own estimate of how many skills match (EXPLAIN: planned, never run)."""
    sql, args = _driver_form(deps, statement, params)
    async with deps.db.autocommit() as driver:
        plan = await driver.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
    if isinstance(plan, str):  # json, as text unless a codec decodes it
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


async def browse_skills(deps: Deps, *, query: BrowseQuery) -> SkillPage:
    """A page of listings matching `query`: the count, the rows and their images, in one
    statement (a second only to estimate a count past its bound, or to count an empty page)."""
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

    shape = _shape(deps, query, ordering, cursor, match)
    statements = _statements(shape)
    params = _params(shape, query, cursor, match)
    rows = await _run(deps, statements.page, params)
    if rows:
        count = int(rows[0]["total"])
    else:
        count = int((await _run(deps, statements.count, params))[0]["total"])
    bound = shape.bound - 1
    estimated = shape.bounded and count > bound
    if estimated:
        count = max(bound, await _estimate(deps, statements.estimate, params))
    more = len(rows) > query.page_size
    rows = rows[: query.page_size]
    backwards = cursor is not None and cursor.direction == "before"
    if backwards:
        rows.reverse()
    return SkillPage(
        count=count,
        count_is_estimate=estimated,
        rows=rows,
        images={row["id"]: image_tuples(row["images"]) for row in rows},
        next_cursor=_neighbour(rows, ordering, "after", more or backwards),
        previous_cursor=_neighbour(
            rows, ordering, "before", more if backwards else (cursor is not None or query.page > 1)
        ),
        previous_page=query.page - 1 if not rows and query.page > 1 and cursor is None else None,
    )


async def explain_page(
    deps: Deps, query: BrowseQuery, *, options: str = "ANALYZE, BUFFERS", generic: bool = False
) -> list[str]:
    """PostgreSQL's plan of the statement that reads the page `query` asks for (for
    docs/performance.md and the plan tests). `generic`: the plan a statement prepared once gets
    after its first executions, as the pooled connections run it."""
    ordering = _check(query)
    cursor = decode_cursor(query.cursor, ordering) if query.cursor else None
    match = search_match(query.search, "postgresql") if query.search else None
    shape = _shape(deps, query, ordering, cursor, match)
    params = _params(shape, query, cursor, match)
    sql, args = _driver_form(deps, _statements(shape).page, params)
    async with deps.db.autocommit() as driver:
        if not generic:
            rows = await driver.fetch(f"EXPLAIN ({options}) {sql}", *args)
            return [row[0] for row in rows]
        async with driver.transaction():
            await driver.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            await driver.execute(f"PREPARE skillswap_explained AS {sql}")
            try:
                # EXECUTE takes no protocol parameters: the values are written as quoted text
                # (the prepared statement's own casts give them their types).
                values = ", ".join(
                    "NULL" if a is None else "'" + str(a).replace("'", "''") + "'" for a in args
                )
                arguments = f"({values})" if args else ""
                rows = await driver.fetch(
                    f"EXPLAIN ({options}) EXECUTE skillswap_explained{arguments}"
                )
            finally:
                await driver.execute("DEALLOCATE skillswap_explained")
            return [row[0] for row in rows]


async def browse_owner_skills(deps: Deps, *, owner_id: int, query: BrowseQuery) -> SkillPage:
    """One active person's active skills (404 for unknown or deactivated accounts)."""
    async with deps.db.engine.connect() as conn:
        active = (
            await conn.execute(select(users.c.is_active).where(users.c.id == owner_id))
        ).scalar_one_or_none()
    if not active:
        raise NotFound(lazy("This user does not exist."), code="user_not_found")
    return await browse_skills(deps, query=replace(query, owner=owner_id))


def _row_key(row: Mapping[str, Any], ordering: str) -> tuple[Any, ...]:
    kinds = _key_kinds(ordering)
    return tuple(
        float(row[f"key{n}"]) if kind == "float" else row[f"key{n}"] for n, kind in enumerate(kinds)
    )


def _neighbour(rows: list[Any], ordering: str, direction: Direction, exists_: bool) -> str | None:
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
    "explain_page",
]
