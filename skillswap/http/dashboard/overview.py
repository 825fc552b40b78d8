"""The overview (/admin/): today's figures and charts of the marketplace's statistics over a
range the reader picks (`?from=&to=&interval=`, as the API's /api/admin/stats/ takes them).

The numbers are `marketplace_stats`'s, unchanged: the page only picks, formats and draws them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date
from decimal import Decimal
from typing import Any

from markupsafe import Markup

from skillswap.admin import stats
from skillswap.errors import ValidationFailed
from skillswap.http.base import route
from skillswap.http.dashboard import charts
from skillswap.http.dashboard.base import DashboardHandler
from skillswap.http.dashboard.formatting import Formats
from skillswap.i18n import lazy

Gettext = Callable[[str], str]


class OverviewHandler(DashboardHandler):
    nav = "overview"

    def _range(self) -> tuple[date | None, date | None, str | None]:
        """The range asked in the query string (empty: the service's default), or a 400."""
        errors: dict[str, list[Any]] = {}
        found: dict[str, date | None] = {}
        for name in ("from", "to"):
            raw = self.query_text(name)
            try:
                found[name] = date.fromisoformat(raw) if raw else None
            except ValueError:
                errors[name] = [lazy("Must be a date (YYYY-MM-DD).")]
        if errors:
            raise ValidationFailed(errors=errors)
        return found["from"], found["to"], self.query_text("interval")

    async def show(self) -> None:
        """Today's figures and the statistics of the range (the last 30 days by day at first)."""
        today = self.deps.clock().astimezone(UTC).date()
        figures = None
        today_figures = None
        try:
            start, end, interval = self._range()
            figures = await stats.marketplace_stats(
                self.deps, actor=self.actor, start=start, end=end, interval=interval
            )
            today_figures = _today(figures, today) or await stats.marketplace_stats(
                self.deps, actor=self.actor, start=today, end=today, interval="day"
            )
        except ValidationFailed as exc:
            self.problem = exc
            self.set_status(exc.status)
        self.render_page(
            "admin/overview.html",
            stats=figures,
            today=today_figures and today_view(today_figures),
            charts=figures and chart_views(figures, self.fmt, self.translator.gettext),
            asked={
                "from": self.query_text("from") or (figures and figures["from"]) or "",
                "to": self.query_text("to") or (figures and figures["to"]) or "",
                "interval": self.query_text("interval") or "day",
            },
            intervals=stats.INTERVALS,
        )


def _today(figures: dict[str, Any], today: date) -> dict[str, Any] | None:
    """Today's figures when the range's last bucket is today by day (no second query)."""
    if figures["interval"] != "day" or figures["buckets"][-1] != today.isoformat():
        return None
    return figures


def today_view(figures: dict[str, Any]) -> dict[str, Any]:
    """The figures of a statistics answer's last period (today's, as `show` asks for them)."""
    payments = [g["series"][-1] for g in figures["payments"]["gateways"]]
    attempts = sum(p["attempts"] for p in payments)
    succeeded = sum(p["succeeded"] for p in payments)
    orders = figures["orders"]["series"][-1]
    users = figures["users"]["series"][-1]
    return {
        "new_users": users["new"],
        "active_users": users["active"],
        "orders_placed": orders["placed"],
        "orders_completed": orders["completed"],
        "orders_disputed": orders["disputed"],
        "messages": figures["chat"]["series"][-1]["messages"],
        "payments": attempts,
        "payments_succeeded": succeeded,
        "success_rate": succeeded / attempts if attempts else None,
        "in_circulation": figures["points"]["in_circulation"],
        "held_in_escrow": figures["points"]["held_in_escrow"],
    }


def chart_views(figures: dict[str, Any], fmt: Formats, _: Gettext) -> list[dict[str, Any]]:
    """The range's charts, each with its heading (the SVG's own title says the same)."""
    interval = figures["interval"]
    labels = [fmt.bucket(b, interval) for b in figures["buckets"]]
    number: charts.Format = fmt.number
    views = [
        _view(
            "orders",
            _("Orders placed and completed"),
            lambda title: charts.lines_chart(
                labels,
                [
                    charts.Series(_("placed"), [b["placed"] for b in figures["orders"]["series"]]),
                    charts.Series(
                        _("completed"), [b["completed"] for b in figures["orders"]["series"]]
                    ),
                    charts.Series(
                        _("disputed"), [b["disputed"] for b in figures["orders"]["series"]]
                    ),
                ],
                title=title,
                fmt=number,
            ),
        ),
        _view(
            "new-users",
            _("New users"),
            lambda title: charts.bar_chart(
                list(zip(labels, [b["new"] for b in figures["users"]["series"]], strict=True)),
                title=title,
                fmt=number,
            ),
        ),
        _view(
            "success-rate",
            _("Payment success rate"),
            lambda title: charts.lines_chart(
                labels,
                [
                    charts.Series(g["gateway"], [b["success_rate"] for b in g["series"]])
                    for g in figures["payments"]["gateways"]
                ]
                or [charts.Series(title, [None] * len(labels))],
                title=title,
                fmt=fmt.percent,
                high=1,
            ),
        ),
        _view(
            "points",
            _("Points earned, bought and adjusted"),
            lambda title: charts.lines_chart(
                labels,
                [
                    charts.Series(_("earned"), [b["earned"] for b in figures["points"]["series"]]),
                    charts.Series(_("bought"), [b["bought"] for b in figures["points"]["series"]]),
                    charts.Series(
                        _("adjusted"), [b["adjusted"] for b in figures["points"]["series"]]
                    ),
                ],
                title=title,
                fmt=number,
            ),
        ),
        _view(
            "messages",
            _("Chat messages"),
            lambda title: charts.bar_chart(
                list(zip(labels, [b["messages"] for b in figures["chat"]["series"]], strict=True)),
                title=title,
                fmt=number,
            ),
        ),
    ]
    for currency, bars in revenue_by_currency(figures).items():
        title = _("Revenue by gateway ({currency})").format(currency=currency)
        svg = charts.bar_chart(bars, title=title, fmt=_money_format(fmt, currency))
        views.append({"key": f"revenue-{currency.lower()}", "title": title, "svg": svg})
    return views


def _money_format(fmt: Formats, currency: str) -> charts.Format:
    return lambda value: fmt.money_text(Decimal(str(value)), currency)


def _view(key: str, title: str, draw: Callable[[str], Markup]) -> dict[str, Any]:
    return {"key": key, "title": title, "svg": draw(title)}


def revenue_by_currency(figures: dict[str, Any]) -> dict[str, list[tuple[str, float]]]:
    """Per currency, each gateway's revenue in the range (currencies are never added up)."""
    found: dict[str, list[tuple[str, float]]] = {}
    for gateway in figures["payments"]["gateways"]:
        for money in gateway["revenue"]:
            found.setdefault(money["currency"], []).append(
                (gateway["gateway"], float(money["amount"]))
            )
    return dict(sorted(found.items()))


routes = [route("/admin/", OverviewHandler)]
