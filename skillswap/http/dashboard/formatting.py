"""Numbers, money and dates as the dashboard's reader writes them (Babel, in their locale)."""

from __future__ import annotations

import datetime as dt
from datetime import UTC
from decimal import Decimal

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent

from skillswap.payments.packages import price_text


class Formats:
    """The formatters templates get, bound to one locale."""

    def __init__(self, locale: str) -> None:
        self.locale = locale

    def number(self, value: int | float | Decimal | None) -> str:
        if value is None:
            return "—"
        return format_decimal(value, locale=self.locale)

    def percent(self, value: float | None) -> str:
        """`value` is a fraction (0.25 is 25 %)."""
        if value is None:
            return "—"
        return format_percent(value, format="#,##0.#%", locale=self.locale)

    def money(self, amount_minor: int | None, currency: str) -> str:
        """An amount in minor units (cents) in its currency, with the currency's own digits."""
        if amount_minor is None:
            return "—"
        return format_currency(
            Decimal(price_text(amount_minor, currency)), currency, locale=self.locale
        )

    def money_text(self, amount: str | Decimal | None, currency: str) -> str:
        """An exact decimal amount (as the services give totals) in its currency."""
        if amount is None:
            return "—"
        return format_currency(Decimal(str(amount)), currency, locale=self.locale)

    def datetime(self, value: dt.datetime | str | None) -> str:
        if value is None:
            return "—"
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)  # stored in UTC (SQLite keeps no zone)
        return format_datetime(value, "medium", tzinfo=UTC, locale=self.locale)

    def date(self, value: dt.datetime | str | None) -> str:
        if value is None:
            return "—"
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        return format_date(value, "medium", locale=self.locale)
