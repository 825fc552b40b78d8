"""Points endpoints: the signed-in user's balance and statement, and the packages for sale."""

from __future__ import annotations

from typing import Any

from skillswap.http.base import BaseHandler, public, route, takes_query
from skillswap.http.operations import operation
from skillswap.http.query import PageQuery
from skillswap.http.schemas import BalanceOut, PackageOut, Page, TransactionOut
from skillswap.i18n import Translator
from skillswap.models import PointsPackage
from skillswap.payments import packages as points_packages
from skillswap.points import services as points


def package_json(
    package: PointsPackage, translator: Translator, *, admin: bool = False
) -> dict[str, Any]:
    """A package as shoppers see it (administrators also see whether it is on sale)."""
    document: dict[str, Any] = {
        "id": package.id,
        "name": package.name_ar if translator.locale == "ar" else package.name_en,
        "name_en": package.name_en,
        "name_ar": package.name_ar,
        "points": package.points,
        "price": points_packages.price_text(package.price_minor, package.currency),
        "price_minor": package.price_minor,
        "currency": package.currency,
        "prices": [
            {
                "currency": price.currency,
                "amount_minor": price.amount_minor,
                "amount": points_packages.price_text(price.amount_minor, price.currency),
            }
            for price in points_packages.package_prices(package)
        ],
    }
    if admin:
        document.update(
            is_active=package.is_active,
            sort_order=package.sort_order,
            created_at=package.created_at,
            updated_at=package.updated_at,
        )
    return document


class BalanceHandler(BaseHandler):
    @operation("getBalance", tag="Points", response=BalanceOut)
    async def get(self) -> None:
        """The balance, the points held in escrow for open orders, and what is available."""
        wallet = await points.get_balance(self.deps, actor=self.user)
        self.send({"balance": wallet.balance, "held": wallet.held, "available": wallet.available})


class TransactionsHandler(BaseHandler):
    @operation("listTransactions", tag="Points", response=Page[TransactionOut], paged=True)
    @takes_query(PageQuery)
    async def get(self) -> None:
        """The wallet's entries, newest first: signed amount, kind, description, balance after."""
        page = self.page_params()
        count, lines = await points.list_transactions(
            self.deps, actor=self.user, offset=page.offset, limit=page.page_size
        )
        self.send_page(
            page,
            count=count,
            results=[
                {
                    "id": line.id,
                    "transfer_id": line.transfer_id,
                    "amount": line.amount,
                    "direction": "credit" if line.amount > 0 else "debit",
                    "kind": line.kind,
                    "description": self.translator.text(line.description),
                    "balance_after": line.balance_after,
                    "order_id": line.order_id,
                    "payment_id": line.payment_id,
                    "created_at": line.created_at,
                }
                for line in lines
            ],
        )


class PackagesHandler(BaseHandler):
    @operation("listPackages", tag="Points", response=Page[PackageOut], paged=True)
    @public
    @takes_query(PageQuery)
    async def get(self) -> None:
        """The points packages for sale, named in the request's language."""
        page = self.page_params()
        count, packages = await points_packages.list_packages_for_sale(
            self.deps, offset=page.offset, limit=page.page_size
        )
        self.send_page(
            page, count=count, results=[package_json(p, self.translator) for p in packages]
        )


routes = [
    route("/api/points/balance/", BalanceHandler),
    route("/api/points/transactions/", TransactionsHandler),
    route("/api/points/packages/", PackagesHandler),
]
