"""The overview: today's figures and charts of the marketplace's statistics (/admin/)."""

from __future__ import annotations

from skillswap.http.base import route
from skillswap.http.dashboard.base import DashboardHandler


class OverviewHandler(DashboardHandler):
    nav = "overview"

    async def show(self) -> None:
        """Today's figures and the statistics of the last 30 days, as charts."""
        self.render_page("admin/overview.html", stats=None)


routes = [route("/admin/", OverviewHandler)]
