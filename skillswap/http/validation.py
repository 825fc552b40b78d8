"""Request bodies and query strings checked against pydantic models, with translatable errors."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from skillswap.errors import FieldErrors, ValidationFailed
from skillswap.i18n import Message, lazy, one_of_english

M = TypeVar("M", bound=BaseModel)

# Ids are BIGINT: a larger number names nothing, and must not reach the driver, which would
# fail on it (asyncpg's DataError, SQLite's OverflowError) instead of finding no row.
MAX_ID = 2**63 - 1

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
"""An id in a body or a query string: out of range is a 400 naming the field."""


class Body(BaseModel):
    """Base for request bodies: unknown fields are refused, strings are stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _message_for(error: Any) -> Message:
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return lazy("This field is required.")
    if kind == "extra_forbidden":
        return lazy("Unknown field.")
    if kind == "string_too_short":
        if ctx.get("min_length") == 1:
            return lazy("This field may not be blank.")
        return lazy("Ensure this field has at least {min} characters.", min=ctx.get("min_length"))
    if kind == "string_too_long":
        return lazy("Ensure this field has at most {max} characters.", max=ctx.get("max_length"))
    if kind in {"string_type", "string_sub_type"}:
        return lazy("Must be a string.")
    if kind in {"int_type", "int_parsing", "int_from_float"}:
        return lazy("Must be a whole number.")
    if kind in {"bool_type", "bool_parsing"}:
        return lazy("Must be true or false.")
    if kind in {"float_type", "float_parsing", "decimal_parsing", "decimal_type"}:
        return lazy("Must be a number.")
    if kind in {"greater_than_equal", "greater_than"}:
        return lazy("Must be at least {min}.", min=ctx.get("ge", ctx.get("gt")))
    if kind in {"less_than_equal", "less_than"}:
        return lazy("Must be at most {max}.", max=ctx.get("le", ctx.get("lt")))
    if kind in {"list_type", "tuple_type"}:
        return lazy("Must be a list.")
    if kind == "too_long":
        return lazy("Too many items (at most {max}).", max=ctx.get("max_length"))
    if kind == "too_short":
        return lazy("Too few items (at least {min}).", min=ctx.get("min_length"))
    if kind in {"literal_error", "enum"}:
        return lazy("Must be one of: {choices}.", choices=one_of_english(ctx.get("expected", "")))
    if kind in {"value_error", "assertion_error"}:
        # Our own validators raise ValueError("msgid") with a translatable message.
        original = ctx.get("error")
        return lazy(str(original)) if original is not None else lazy("Invalid value.")
    if kind == "url_parsing" or kind.startswith("url"):
        return lazy("Enter a valid URL.")
    if kind in {"datetime_parsing", "datetime_type", "datetime_from_date_parsing"}:
        return lazy("Enter a valid date and time.")
    if kind == "model_type" or kind == "dict_type":
        return lazy("Must be an object.")
    return lazy("Invalid value.")


def field_errors(exc: ValidationError) -> FieldErrors:
    errors: FieldErrors = {}
    for error in exc.errors():
        location = ".".join(str(part) for part in error.get("loc", ())) or "non_field_errors"
        errors.setdefault(location, []).append(_message_for(error))
    return errors


def validate(model: type[M], data: Any) -> M:
    """Build `model` from `data` or raise ValidationFailed with per-field messages."""
    if not isinstance(data, dict):
        raise ValidationFailed(lazy("The body must be a JSON object."))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(errors=field_errors(exc)) from None
