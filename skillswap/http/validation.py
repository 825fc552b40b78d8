"""Request bodies and query strings checked against pydantic models, with translatable errors."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from skillswap.api.input_rules import UNSTORABLE_TEXT, unstorable_paths
from skillswap.errors import FieldErrors, ValidationFailed
from skillswap.i18n import N_, Message, lazy, one_of_english
from skillswap.models.base import MAX_ID  # ids are BIGINT: see there

M = TypeVar("M", bound=BaseModel)

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
"""An id in a body or a query string: out of range is a 400 naming the field."""


def _moment_of_text(value: Any) -> Any:
    # A strict body takes no text for a datetime, and JSON has no datetime of its own.
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(N_("Enter a valid date and time.")) from None
    return value


Moment = Annotated[datetime, BeforeValidator(_moment_of_text)]
"""A moment in a body: ISO 8601 text (with an offset; without one the service decides)."""


class _NullableMarker:
    def __repr__(self) -> str:
        return "Nullable"


Nullable: Any = _NullableMarker()
"""Metadata for a body field where an explicit `null` means something (`Annotated[T | None,
Nullable]`). Elsewhere `null` is refused: an optional field is left out, not sent as null."""


def _strip_null_from_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    # The documented schema says what is accepted: `T | None = None` without Nullable takes a
    # value or nothing, never null.
    nullable: frozenset[str] = getattr(model, "nullable_fields", frozenset())
    for name, prop in schema.get("properties", {}).items():
        options = prop.get("anyOf")
        if name in nullable or not isinstance(options, list):
            continue
        kept = [option for option in options if option != {"type": "null"}]
        if len(kept) == 1:
            del prop["anyOf"]
            prop.update(kept[0])
        elif len(kept) != len(options):
            prop["anyOf"] = kept
        if prop.get("default", "") is None:
            del prop["default"]


class Body(BaseModel):
    """Base for request bodies: one policy for every field of every body.

    Unknown fields are refused, strings are stripped, and types are strict: `true` or `"201"`
    is not an id, `"yes"` is not a boolean, `1` is not a string. `null` is refused except in
    fields marked Nullable. (Query strings, which are all text, are read with the same models
    but converted; see `validate`.)
    """

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        strict=True,
        json_schema_extra=_strip_null_from_schema,
    )
    nullable_fields: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.nullable_fields = frozenset(
            name
            for name, info in cls.model_fields.items()
            if any(item is Nullable for item in info.metadata)
        )

    @field_validator("*", mode="before")
    @classmethod
    def _null_only_where_it_means_something(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.nullable_fields:
            raise PydanticCustomError("null_forbidden", "null is not accepted here")
        return value


def _message_for(error: Any) -> Message:
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return lazy("This field is required.")
    if kind == "null_forbidden":
        return lazy("This field may not be null.")
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


def unstorable_text_error(paths: list[str]) -> ValidationFailed:
    """The 400 naming each field whose text the database cannot store."""
    return ValidationFailed(errors={path: [lazy(UNSTORABLE_TEXT)] for path in paths})


def refuse_unstorable_text(data: Any) -> None:
    """Raise ValidationFailed naming each key or string in `data` the database cannot store."""
    paths = unstorable_paths(data)
    if paths:
        raise unstorable_text_error(paths)


def validate(model: type[M], data: Any, *, strict: bool = True) -> M:
    """Build `model` from `data` or raise ValidationFailed with per-field messages.

    `strict=False` is for query strings, whose values are all text ("5" is the number 5
    there); a body is always strict.
    """
    if not isinstance(data, dict):
        raise ValidationFailed(lazy("The body must be a JSON object."))
    try:
        return model.model_validate(data, strict=strict)
    except ValidationError as exc:
        raise ValidationFailed(errors=field_errors(exc)) from None
