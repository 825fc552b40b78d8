"""Query-string models shared by list endpoints: every argument a list takes is declared, and
any other is a 400 naming it (`Unknown field.`), as for request bodies."""

from __future__ import annotations

from pydantic.json_schema import SkipJsonSchema

from skillswap.http.validation import Body


class NoQuery(Body):
    """An endpoint that takes no query arguments at all."""


class PageQuery(Body):
    """A paginated list with no filters; lists with filters extend it."""

    # Read (and checked) by page_params(); declared here so that they are not unknown.
    page: SkipJsonSchema[str | None] = None
    page_size: SkipJsonSchema[str | None] = None
