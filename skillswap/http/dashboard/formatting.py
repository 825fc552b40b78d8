"""Numbers, money and dates as the dashboard's reader writes them (Babel, in their locale)."""

from __future__ import annotations

import datetime as dt
from datetime import UTC
from decimal import Decimal

from babel.dates import format_date, format_datetime, format_skeleton, format_timedelta
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

    def bucket(self, value: dt.date | str, interval: str) -> str:
        """A statistics period by its first day: `11 Mar` for a day or a week, `Mar 2026` for
        a month, in the reader's own order of day and month."""
        if isinstance(value, str):
            value = dt.date.fromisoformat(value[:10])
        return format_skeleton("yMMM" if interval == "month" else "MMMd", value, locale=self.locale)

    def duration(self, seconds: float | None) -> str:
        """A length of time, roughly (`1 day`, `3 hours`), as the reader says it."""
        if seconds is None:
            return "—"
        return format_timedelta(dt.timedelta(seconds=seconds), locale=self.locale)
