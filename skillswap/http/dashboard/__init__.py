"""The operators' dashboard at /admin/: server-rendered pages over the admin services.

Every action calls the same service function as the admin API; the pages only parse forms,
call it, and render what it returns (see base.DashboardHandler for sessions and safety).
"""

from __future__ import annotations

from typing import Any


def dashboard_routes() -> list[Any]:
    """Every dashboard page, sign-in first."""
    from skillswap.http.dashboard import (
        audit,
        catalogue,
        ledger,
        orders,
        overview,
        payments,
        people,
        reports,
        signin,
    )

    return [
        *signin.routes,
        *overview.routes,
        *people.routes,
        *reports.routes,
        *orders.routes,
        *payments.routes,
        *ledger.routes,
        *audit.routes,
        *catalogue.routes,
    ]
