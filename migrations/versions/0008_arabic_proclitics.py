"""Search documents rebuilt: Arabic words are indexed with their forms without proclitics

Revision ID: 0008
Revises: 0007

Search now indexes each Arabic word with its forms without the article and the conjunction
(`المقلوبة` also as `مقلوبة`, `وأسرار` also as `أسرار`), and queries are matched against those
forms (skillswap.skills.text). Documents written before keep only the word as written, so
this revision writes the document of every listed skill again: `skills.search_vector` on
PostgreSQL, the `skills_fts` rows on SQLite. Skills without a document (deleted ones) stay
without one, and no `updated_at` changes.

Unlike a schema revision, this one builds the documents with the service's own code
(`SearchDocument`, `index_text`): what it must write is exactly what the service writes and
searches today, and running it again writes the same documents. Downgrading writes them as
the earlier code did (normalised, no forms added).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

from skillswap.skills.search import SearchDocument, vector_from_params
from skillswap.skills.text import index_text, normalise_search_text

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 500
FIELDS = ("title_en", "title_ar", "tags", "description_en", "description_ar")

skills = sa.table(
    "skills",
    sa.column("id", sa.BigInteger()),
    sa.column("title_en", sa.String()),
    sa.column("title_ar", sa.String()),
    sa.column("description_en", sa.Text()),
    sa.column("description_ar", sa.Text()),
    sa.column("tags", sa.JSON()),
    sa.column("search_vector"),
)


def _document(row: Any, index: Callable[[str], str]) -> SearchDocument:
    tags = row.tags if isinstance(row.tags, list) else json.loads(row.tags or "[]")
    return SearchDocument(
        title_en=index(row.title_en),
        title_ar=index(row.title_ar),
        tags=index(" ".join(tags)),
        body_en=index(row.description_en),
        body_ar=index(row.description_ar),
    )


def rebuild(bind: Connection, index: Callable[[str], str]) -> int:
    """Write again, with `index`, the search document of every skill that has one."""
    sqlite = bind.dialect.name == "sqlite"
    indexed = (
        skills.c.id.in_(sa.text("SELECT rowid FROM skills_fts"))
        if sqlite
        else skills.c.search_vector.is_not(None)
    )
    columns = [skills.c.id, *(skills.c[name] for name in FIELDS)]
    written, last = 0, None
    while True:
        query = sa.select(*columns).where(indexed).order_by(skills.c.id).limit(BATCH)
        if last is not None:
            query = query.where(skills.c.id > last)
        rows = bind.execute(query).all()
        if not rows:
            return written
        documents = {row.id: _document(row, index) for row in rows}
        if sqlite:
            bind.execute(
                sa.text("DELETE FROM skills_fts WHERE rowid = :rowid"),
                [{"rowid": skill_id} for skill_id in documents],
            )
            bind.execute(
                sa.text(
                    "INSERT INTO skills_fts (rowid, title, tags, body) "
                    "VALUES (:rowid, :title, :tags, :body)"
                ),
                [document.fts_row(skill_id) for skill_id, document in documents.items()],
            )
        else:
            bind.execute(
                sa.update(skills)
                .where(skills.c.id == sa.bindparam("skill_id"))
                .values(search_vector=vector_from_params()),
                [
                    {"skill_id": skill_id, **document.params()}
                    for skill_id, document in documents.items()
                ],
            )
        written += len(rows)
        last = rows[-1].id


def upgrade() -> None:
    rebuild(op.get_bind(), index_text)


def downgrade() -> None:
    rebuild(op.get_bind(), normalise_search_text)
