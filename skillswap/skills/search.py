"""Full-text search over listings, on PostgreSQL (tsvector + GIN) and SQLite (FTS5).

Each skill has one search document in three weighted parts: its titles, its tags, and its
descriptions, in both languages, all normalised by `skillswap.skills.text` (`index_text`: each
Arabic word is indexed with its forms without proclitics, so `مقلوبة` finds `المقلوبة`). On
PostgreSQL the
document is the `skills.search_vector` column: English text under the `english` configuration
(stemmed, so "teaching" finds "teach"), Arabic text under `simple` (Arabic has no stemmer in
PostgreSQL; normalisation does the folding). On SQLite it is a row of the FTS5 table
`skills_fts` (rowid = skill id) with the porter tokenizer. The service rewrites the document
whenever a skill's text changes, in the same transaction.

A query matches skills that contain every search term (English stop words dropped on both
backends); a term is matched by any one of its forms (`text.search_terms`). Results are ranked by
`ts_rank` on PostgreSQL and `bm25` on SQLite, titles weighing most.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Float,
    Select,
    Text,
    bindparam,
    cast,
    func,
    literal,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from skillswap.skills.queries import skills as skills_table
from skillswap.skills.text import index_text, search_terms

_ENGLISH: ColumnElement[Any] = literal_column("'english'::regconfig")
_SIMPLE: ColumnElement[Any] = literal_column("'simple'::regconfig")
# bm25 column weights for (title, tags, body) mirror PostgreSQL's A, B and C weights.
_SQLITE_RANK = "-bm25(skills_fts, 10.0, 4.0, 1.0)"

Executor = AsyncSession | AsyncConnection


@dataclass(frozen=True)
class SearchDocument:
    """The normalised text of one skill, as the search index stores it."""

    title_en: str
    title_ar: str
    tags: str
    body_en: str
    body_ar: str

    @classmethod
    def of(
        cls,
        *,
        title_en: str,
        title_ar: str,
        tags: Sequence[str],
        description_en: str,
        description_ar: str,
    ) -> SearchDocument:
        """Build the document of a skill from its fields."""
        return cls(
            title_en=index_text(title_en),
            title_ar=index_text(title_ar),
            tags=index_text(" ".join(tags)),
            body_en=index_text(description_en),
            body_ar=index_text(description_ar),
        )

    def params(self, prefix: str = "sd_") -> dict[str, str]:
        """Bind parameters for `vector_from_params` (bulk inserts)."""
        return {
            f"{prefix}title_en": self.title_en,
            f"{prefix}title_ar": self.title_ar,
            f"{prefix}tags": self.tags,
            f"{prefix}body_en": self.body_en,
            f"{prefix}body_ar": self.body_ar,
        }

    def fts_row(self, skill_id: int) -> dict[str, Any]:
        """The skills_fts row of this document."""
        return {
            "rowid": skill_id,
            "title": f"{self.title_en} {self.title_ar}".strip(),
            "tags": self.tags,
            "body": f"{self.body_en} {self.body_ar}".strip(),
        }


def _weighted(config: ColumnElement[Any], value: Any, weight: str) -> ColumnElement[Any]:
    return func.setweight(func.to_tsvector(config, value), literal_column(f"'{weight}'"))


def _vector(parts: dict[str, Any]) -> ColumnElement[Any]:
    pieces = [
        _weighted(_ENGLISH, parts["title_en"], "A"),
        _weighted(_SIMPLE, parts["title_ar"], "A"),
        # Tags may be in either language: both configurations index them.
        _weighted(_ENGLISH, parts["tags"], "B"),
        _weighted(_SIMPLE, parts["tags"], "B"),
        _weighted(_ENGLISH, parts["body_en"], "C"),
        _weighted(_SIMPLE, parts["body_ar"], "C"),
    ]
    vector = pieces[0]
    for piece in pieces[1:]:
        vector = vector.op("||")(piece)
    return vector


def vector_of(document: SearchDocument) -> ColumnElement[Any]:
    """PostgreSQL: the weighted tsvector of `document` (assign it to Skill.search_vector)."""
    return _vector(
        {
            "title_en": literal(document.title_en),
            "title_ar": literal(document.title_ar),
            "tags": literal(document.tags),
            "body_en": literal(document.body_en),
            "body_ar": literal(document.body_ar),
        }
    )


def vector_from_params(prefix: str = "sd_") -> ColumnElement[Any]:
    """PostgreSQL: the tsvector built from the bind parameters of `SearchDocument.params`."""
    names = ("title_en", "title_ar", "tags", "body_en", "body_ar")
    return _vector({name: cast(bindparam(f"{prefix}{name}"), Text()) for name in names})


async def store_fts_documents(executor: Executor, documents: dict[int, SearchDocument]) -> None:
    """SQLite: (re)write the FTS5 rows of skills that already exist (one round trip each way).

    On PostgreSQL the vector is written by the skill's own INSERT or UPDATE (`vector_of`,
    `vector_from_params`), so there is no second write of the row.
    """
    if not documents:
        return
    await executor.execute(
        text("DELETE FROM skills_fts WHERE rowid = :rowid"),
        [{"rowid": skill_id} for skill_id in documents],
    )
    await executor.execute(
        text(
            "INSERT INTO skills_fts (rowid, title, tags, body) VALUES (:rowid, :title, :tags, :body)"
        ),
        [document.fts_row(skill_id) for skill_id, document in documents.items()],
    )


async def drop_document(executor: Executor, dialect: str, skill_id: int) -> None:
    """Forget a deleted skill's search document."""
    if dialect == "sqlite":
        await executor.execute(
            text("DELETE FROM skills_fts WHERE rowid = :rowid"), {"rowid": skill_id}
        )
    else:
        await executor.execute(
            update(skills_table)
            .where(skills_table.c.id == skill_id)
            .values(search_vector=None, updated_at=skills_table.c.updated_at)
        )


@dataclass(frozen=True)
class SearchMatch:
    """How one search filters and ranks a listing query on the current backend."""

    terms: list[tuple[str, ...]]  # every term must match, by any one of its forms
    dialect: str

    @property
    def is_empty(self) -> bool:
        return not self.terms

    def apply(self, statement: Select[Any]) -> tuple[Select[Any], ColumnElement[float]]:
        """Restrict `statement` to matching skills; return it with the relevance expression."""
        if self.dialect == "sqlite":
            hits = (
                text(
                    f"SELECT rowid AS skill_id, {_SQLITE_RANK} AS score "
                    "FROM skills_fts WHERE skills_fts MATCH :fts_query"
                )
                .bindparams(fts_query=self.fts_query())
                .columns(skill_id=skills_table.c.id.type, score=Float())
                .subquery("hits")
            )
            statement = statement.join(hits, hits.c.skill_id == skills_table.c.id)
            return statement, hits.c.score
        query = self.tsquery()
        statement = statement.where(skills_table.c.search_vector.op("@@")(query))
        rank = cast(func.ts_rank(skills_table.c.search_vector, query), Float)
        return statement, rank

    def tsquery(self) -> ColumnElement[Any]:
        """PostgreSQL: every term, each as any of its forms under either configuration."""
        query: ColumnElement[Any] | None = None
        for forms in self.terms:
            term: ColumnElement[Any] | None = None
            for form in forms:
                either = func.plainto_tsquery(_ENGLISH, form).op("||")(
                    func.plainto_tsquery(_SIMPLE, form)
                )
                term = either if term is None else term.op("||")(either)
            assert term is not None
            query = term if query is None else query.op("&&")(term)
        assert query is not None, "an empty search matches nothing: check is_empty first"
        return query

    @property
    def shape(self) -> tuple[int, ...]:
        """How many forms each term has: what a statement compiled once for it depends on."""
        return tuple(len(forms) for forms in self.terms)

    def params(self) -> dict[str, str]:
        """The bind parameters of `tsquery_of` / `fts_hits` for this search."""
        if self.dialect == "sqlite":
            return {"fts_query": self.fts_query()}
        return {
            f"s{n}_{m}": form for n, forms in enumerate(self.terms) for m, form in enumerate(forms)
        }

    def fts_query(self) -> str:
        """The FTS5 MATCH expression: every term, quoted (no FTS syntax from users)."""
        groups = []
        for forms in self.terms:
            quoted = ['"' + form.replace('"', '""') + '"' for form in forms]
            groups.append(quoted[0] if len(quoted) == 1 else "(" + " OR ".join(quoted) + ")")
        return " AND ".join(groups)


def tsquery_of(shape: tuple[int, ...], *, once: bool = True) -> ColumnElement[Any]:
    """PostgreSQL: `SearchMatch.tsquery` with each form a bind parameter (`SearchMatch.params`),
    evaluated once per statement (a scalar subquery), not once per row it is checked against.
    `once=False` writes it inline, where the planner can see it (to estimate how many match)."""
    query: ColumnElement[Any] | None = None
    for n, forms in enumerate(shape):
        term: ColumnElement[Any] | None = None
        for m in range(forms):
            form = bindparam(f"s{n}_{m}", type_=Text())
            either = func.plainto_tsquery(_ENGLISH, form).op("||")(
                func.plainto_tsquery(_SIMPLE, form)
            )
            term = either if term is None else term.op("||")(either)
        assert term is not None
        query = term if query is None else query.op("&&")(term)
    assert query is not None, "an empty search matches nothing: check is_empty first"
    return select(query).scalar_subquery() if once else query


def fts_hits() -> Any:
    """SQLite: the skills matching the bound `fts_query`, with their bm25 score."""
    return (
        text(
            f"SELECT rowid AS skill_id, {_SQLITE_RANK} AS score "
            "FROM skills_fts WHERE skills_fts MATCH :fts_query"
        )
        .columns(skill_id=skills_table.c.id.type, score=Float())
        .subquery("hits")
    )


def search_match(search: str, dialect: str) -> SearchMatch:
    """The match for a user's search text."""
    return SearchMatch(terms=search_terms(search), dialect=dialect)
