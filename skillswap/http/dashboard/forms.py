"""Form fields as the API's bodies: HTML forms send text, the bodies' models want values."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel

from skillswap.errors import ValidationFailed
from skillswap.http.validation import validate
from skillswap.i18n import lazy

M = TypeVar("M", bound=BaseModel)
_WHOLE = re.compile(r"^-?\d{1,15}$")
_PRICE = re.compile(r"^([A-Za-z]{3})\s+(\d{1,12})$")


def as_body(
    model: type[M],
    fields: dict[str, str],
    *,
    numbers: tuple[str, ...] = (),
    extra: dict[str, Any] | None = None,
) -> M:
    """`fields` validated by the API's own body `model` (its limits, its messages): whole
    numbers in `numbers` become ints, an empty optional field is left out; `extra` holds
    values already parsed (a list of prices)."""
    data: dict[str, Any] = dict(extra or {})
    for name, value in fields.items():
        if (
            value == ""
            and name in model.model_fields
            and not model.model_fields[name].is_required()
        ):
            continue
        data[name] = int(value) if name in numbers and _WHOLE.match(value) else value
    return validate(model, data, strict=False)


def checkbox(values: dict[str, str], name: str) -> None:
    """A checkbox sends its field only when ticked: make that a boolean either way."""
    values[name] = "true" if values.get(name) else "false"


def prices_from_text(text: str) -> list[dict[str, Any]]:
    """Extra prices written one per line or comma, as `EGP 15000` (minor units)."""
    prices = []
    for index, part in enumerate(p.strip() for p in re.split(r"[,\n]", text)):
        if not part:
            continue
        found = _PRICE.match(part)
        if found is None:
            raise ValidationFailed(
                errors={
                    f"prices.{index}": [
                        lazy(
                            "Write each price as a currency and an amount in minor units, e.g. EGP 15000."
                        )
                    ]
                }
            )
        prices.append({"currency": found.group(1).upper(), "amount_minor": int(found.group(2))})
    return prices


def prices_as_text(prices: list[Any]) -> str:
    return ", ".join(f"{p.currency} {p.amount_minor}" for p in prices)
