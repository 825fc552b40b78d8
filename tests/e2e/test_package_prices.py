"""Packages priced in several currencies: administrators set the prices, shoppers see them, and a
purchase charges the price in a currency the gateway takes (Stripe here takes USD only, Paymob
EGP), over real HTTP against the local Stripe and Paymob.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from skillswap.models.ledger import PointsPackagePrice
from tests.factories import TestUser
from tests.fakes.paymob_server import FakePaymob, running_paymob
from tests.outbox_support import outbox_settled
from tests.payments_support import SIGNUP_BONUS, Shop, stripe_shop

ADMIN_PACKAGES = "/api/admin/packages/"
PURCHASE = "/api/points/purchase/"
PAYMOB_WEBHOOK = "/api/payments/paymob/webhook/"
LEARNER = {"name_en": "Learner", "name_ar": "باقة المتعلّم", "points": 250}


class PricedShop:
    """The shop with Stripe for USD only and Paymob beside it, and an administrator."""

    def __init__(self, shop: Shop, paymob: FakePaymob, admin: TestUser) -> None:
        self.shop, self.paymob, self.admin = shop, paymob, admin
        self.api = shop.api

    async def create(self, **fields: Any) -> Any:
        return await self.api.post(ADMIN_PACKAGES, token=self.admin.access, json=fields)

    async def package(self, **fields: Any) -> dict[str, Any]:
        response = await self.create(**{**LEARNER, **fields})
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def patch(self, package_id: int, **fields: Any) -> Any:
        return await self.api.patch(
            f"{ADMIN_PACKAGES}{package_id}/", token=self.admin.access, json=fields
        )

    async def purchase(self, buyer: TestUser, package_id: int, gateway: str, **more: Any) -> Any:
        return await self.api.post(
            PURCHASE,
            token=buyer.access,
            json={"package_id": package_id, "gateway": gateway, **more},
        )


@pytest.fixture(scope="module")
async def priced() -> AsyncIterator[PricedShop]:
    async with running_paymob() as paymob:
        paymob_settings = {
            "paymob_secret_key": paymob.secret_key,
            "paymob_public_key": paymob.public_key,
            "paymob_hmac_secret": paymob.hmac_secret,
            "paymob_integration_ids": tuple(str(i) for i in paymob.integration_ids),
            "paymob_api_base": paymob.base_url,
        }
        async with stripe_shop(stripe_currencies=("USD",), **paymob_settings) as shop:
            yield PricedShop(shop, paymob, await shop.user(admin=True))


@pytest.fixture(autouse=True)
async def clean_ledger_after(priced: PricedShop) -> AsyncIterator[None]:
    yield
    await priced.shop.assert_ledger_clean()


def _price(currency: str, amount_minor: int, amount: str) -> dict[str, Any]:
    return {"currency": currency, "amount_minor": amount_minor, "amount": amount}


async def test_an_administrator_prices_a_package_in_usd_and_egp_and_shoppers_see_both(priced):
    created = await priced.package(
        price_minor=999, currency="USD", prices=[{"currency": "EGP", "amount_minor": 50000}]
    )
    both = [_price("USD", 999, "9.99"), _price("EGP", 50000, "500.00")]
    assert (created["price"], created["currency"], created["prices"]) == ("9.99", "USD", both)
    fetched = await priced.api.get(f"{ADMIN_PACKAGES}{created['id']}/", token=priced.admin.access)
    assert fetched.json()["prices"] == both
    listing = await priced.api.get("/api/points/packages/?page_size=100")
    assert listing.status_code == 200
    shown = next(p for p in listing.json()["results"] if p["id"] == created["id"])
    assert shown["prices"] == both


async def test_a_price_in_the_default_currency_repeats_the_default_and_is_listed_once(priced):
    created = await priced.package(
        price_minor=1250,
        currency="KWD",
        prices=[
            {"currency": "KWD", "amount_minor": 1250},
            {"currency": "JPY", "amount_minor": 600},
        ],
    )
    assert created["prices"] == [_price("KWD", 1250, "1.250"), _price("JPY", 600, "600")]


async def test_paymob_without_a_currency_charges_the_egp_price_and_credits_once(priced):
    buyer = await priced.shop.user()
    package = await priced.package(
        price_minor=999, currency="USD", prices=[{"currency": "EGP", "amount_minor": 50000}]
    )
    response = await priced.purchase(buyer, package["id"], "paymob")
    assert response.status_code == 201, response.text
    payment = response.json()
    assert (payment["amount"], payment["amount_minor"], payment["currency"]) == (
        "500.00",
        50000,
        "EGP",
    )
    method, path, params = priced.paymob.requests[-1]
    assert (method, path) == ("POST", "/v1/intention/")
    assert (params["amount"], params["currency"]) == (50000, "EGP")
    # The paid callback matches what the payment stored, so the points are credited.
    tx = priced.paymob.pay(payment["redirect_url"])
    delivered = await priced.paymob.deliver(tx, url=priced.shop.url + PAYMOB_WEBHOOK)
    assert delivered.status_code == 200, delivered.text
    await outbox_settled(priced.shop.deps)
    assert (await priced.shop.payment(payment["id"])).status == "succeeded"
    assert await priced.shop.balance(buyer) == SIGNUP_BONUS + 250


async def test_stripe_without_a_currency_charges_the_default_usd_price(priced):
    buyer = await priced.shop.user()
    package = await priced.package(
        price_minor=999, currency="USD", prices=[{"currency": "EGP", "amount_minor": 50000}]
    )
    response = await priced.purchase(buyer, package["id"], "stripe")
    assert response.status_code == 201, response.text
    assert (response.json()["amount_minor"], response.json()["currency"]) == (999, "USD")


async def test_stripe_takes_a_package_whose_default_it_does_not_in_its_other_currency(priced):
    buyer = await priced.shop.user()
    package = await priced.package(
        price_minor=50000, currency="EGP", prices=[{"currency": "USD", "amount_minor": 1099}]
    )
    response = await priced.purchase(buyer, package["id"], "stripe")
    assert response.status_code == 201, response.text
    assert (response.json()["amount"], response.json()["currency"]) == ("10.99", "USD")
    price = priced.shop.stripe.requests[-1][2]["line_items"][0]["price_data"]
    assert (price["currency"], price["unit_amount"]) == ("usd", "1099")


async def test_stripe_in_egp_is_refused_naming_the_currencies_that_are_possible(priced):
    buyer = await priced.shop.user()
    package = await priced.package(
        price_minor=999, currency="USD", prices=[{"currency": "EGP", "amount_minor": 50000}]
    )
    response = await priced.purchase(buyer, package["id"], "stripe", currency="EGP")
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "currency_not_offered"
    assert (
        problem["package_currencies"],
        problem["gateway_currencies"],
        problem["possible_currencies"],
    ) == (["USD", "EGP"], ["USD"], ["USD"])
    assert problem["detail"] == (
        "This package cannot be paid in EGP through stripe; it can be paid in USD."
    )
    arabic_reader = await priced.shop.user(locale="ar")
    in_arabic = await priced.purchase(arabic_reader, package["id"], "stripe", currency="EGP")
    assert in_arabic.json()["detail"] == (
        "لا يمكن دفع ثمن هذه الباقة بعملة EGP عبر stripe؛ يمكن دفعه بعملة USD."
    )
    asked_for_usd = await priced.purchase(buyer, package["id"], "stripe", currency="USD")
    assert asked_for_usd.status_code == 201, asked_for_usd.text


async def test_a_package_in_no_currency_the_gateway_takes_is_refused(priced):
    buyer = await priced.shop.user()
    package = await priced.package(
        price_minor=50000, currency="EGP", prices=[{"currency": "SAR", "amount_minor": 3700}]
    )
    response = await priced.purchase(buyer, package["id"], "stripe")
    assert response.status_code == 400
    problem = response.json()
    assert (problem["code"], problem["possible_currencies"]) == ("currency_not_offered", [])
    assert problem["detail"] == (
        "This package cannot be paid through stripe: it is priced in EGP, SAR and stripe takes USD."
    )
    unknown = await priced.purchase(buyer, package["id"], "paymob", currency="USD")
    assert unknown.status_code == 400
    assert unknown.json()["possible_currencies"] == ["EGP"]


async def test_prices_are_validated_field_by_field(priced):
    response = await priced.create(
        **LEARNER,
        price_minor=999,
        currency="USD",
        prices=[
            {"currency": "egp", "amount_minor": 0},
            {"currency": "EUR"},
            {"currency": "GBP", "amount_minor": 800, "note": "x"},
            "USD",
        ],
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"] == {
        "prices.0.currency": ["Invalid value."],
        "prices.0.amount_minor": ["Must be at least 1."],
        "prices.1.amount_minor": ["This field is required."],
        "prices.2.note": ["Unknown field."],
        "prices.3": ["Must be an object."],
    }


async def test_a_currency_priced_twice_or_a_second_default_price_is_refused(priced):
    response = await priced.create(
        **LEARNER,
        price_minor=999,
        currency="USD",
        prices=[
            {"currency": "EGP", "amount_minor": 50000},
            {"currency": "EGP", "amount_minor": 40000},
            {"currency": "USD", "amount_minor": 1000},
        ],
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "prices.1.currency": ["This currency is priced twice."],
        "prices.2.amount_minor": [
            "The price in the package's own currency is its price_minor (999)."
        ],
    }


async def test_patch_replaces_the_prices_and_put_without_prices_leaves_only_the_default(priced):
    package = await priced.package(
        price_minor=999, currency="USD", prices=[{"currency": "EGP", "amount_minor": 50000}]
    )
    changed = await priced.patch(
        package["id"],
        prices=[
            {"currency": "EGP", "amount_minor": 45000},
            {"currency": "EUR", "amount_minor": 900},
        ],
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["prices"] == [
        _price("USD", 999, "9.99"),
        _price("EGP", 45000, "450.00"),
        _price("EUR", 900, "9.00"),
    ]
    renamed = await priced.patch(package["id"], name_en="Learner plus")
    assert renamed.json()["prices"] == changed.json()["prices"]
    replaced = await priced.api.put(
        f"{ADMIN_PACKAGES}{package['id']}/",
        token=priced.admin.access,
        json={**LEARNER, "price_minor": 1099, "currency": "USD"},
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["prices"] == [_price("USD", 1099, "10.99")]


async def test_a_new_default_currency_the_package_has_another_price_in_needs_the_prices(priced):
    package = await priced.package(
        price_minor=999, currency="USD", prices=[{"currency": "EGP", "amount_minor": 50000}]
    )
    ambiguous = await priced.patch(package["id"], currency="EGP", price_minor=48000)
    assert ambiguous.status_code == 400
    assert ambiguous.json()["errors"] == {
        "currency": ["This package has another price in EGP; send prices too."]
    }
    moved = await priced.patch(
        package["id"],
        currency="EGP",
        price_minor=48000,
        prices=[{"currency": "USD", "amount_minor": 999}],
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["prices"] == [_price("EGP", 48000, "480.00"), _price("USD", 999, "9.99")]


async def test_a_package_is_deleted_with_its_prices(priced):
    package = await priced.package(
        price_minor=999, currency="USD", prices=[{"currency": "EGP", "amount_minor": 50000}]
    )
    gone = await priced.api.delete(f"{ADMIN_PACKAGES}{package['id']}/", token=priced.admin.access)
    assert gone.status_code == 204
    async with priced.shop.deps.db.read() as session:
        left = await session.scalars(
            select(PointsPackagePrice).where(PointsPackagePrice.package_id == package["id"])
        )
        assert left.all() == []


@pytest.mark.parametrize(
    ("currency", "amount_minor"), [("usd", 100), ("US", 100), ("U1D", 100), ("EUR", 0)]
)
async def test_the_database_refuses_a_bad_currency_or_an_amount_of_nothing(
    priced, currency, amount_minor
):
    package = await priced.package(price_minor=999, currency="USD")
    with pytest.raises(IntegrityError):
        async with priced.shop.deps.db.uow() as uow:
            uow.session.add(
                PointsPackagePrice(
                    package_id=package["id"], currency=currency, amount_minor=amount_minor
                )
            )
            await uow.session.flush()


async def test_the_database_refuses_a_second_price_in_one_currency(priced):
    package = await priced.package(
        price_minor=999, currency="USD", prices=[{"currency": "EGP", "amount_minor": 50000}]
    )
    with pytest.raises(IntegrityError):
        async with priced.shop.deps.db.uow() as uow:
            uow.session.add(
                PointsPackagePrice(package_id=package["id"], currency="EGP", amount_minor=100)
            )
            await uow.session.flush()
