"""The one set of test factories: users, categories, skills, orders and their chat rooms.

Users, categories and skills made through the API (`make_user`, `make_category`, `make_skill`)
go the way a client's do. `insert_skill` writes a listing's rows directly, for tests of orders
and points that read nothing else of a skill (and for statuses the API would not let a listing
start in). conftest.py binds the API factories to the running app as fixtures of the same names.
"""

from __future__ import annotations

import itertools
import os
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from skillswap import ledger
from skillswap.auth.sealing import Sealer
from skillswap.models import Category, OutboxRow, Skill, User
from skillswap.notifications.outgoing import MAIL_CODE

if TYPE_CHECKING:
    from skillswap.deps import Deps
    from tests.conftest import Api

_counter = itertools.count(1)


def unique_name(prefix: str = "user") -> str:
    """A name no other test (and no concurrent run) uses."""
    return f"{prefix}{os.getpid() % 1000}x{next(_counter)}{secrets.token_hex(2)}"


@dataclass
class TestUser:
    __test__ = False  # a user of the tests, not a test class

    id: int
    email: str
    username: str
    password: str
    access: str
    refresh: str
    data: dict[str, Any]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


async def verification_code(deps: Deps, user_id: int) -> str:
    """The latest email-verification code sent to the user, opened from its outbox row (what
    the mail carries; the account keeps only its hash)."""
    async with deps.db.read() as session:
        rows = (
            await session.scalars(
                select(OutboxRow)
                .where(OutboxRow.kind == MAIL_CODE)
                .order_by(OutboxRow.id.desc())
                .limit(50)
            )
        ).all()
    for row in rows:
        if row.payload["user_id"] == user_id and row.payload["purpose"] == "verify_email":
            return Sealer(deps.settings.secret_key).unseal(row.payload["code"], bound_to=row.key)
    raise AssertionError(f"no verification code was sent to user {user_id}")


async def verify_email(api: Api, deps: Deps, user_id: int) -> None:
    """Verify the user's email the way they would: the emailed code, to the verify endpoint."""
    code = await verification_code(deps, user_id)
    response = await api.post("/api/auth/verify-email/", json={"token": code})
    assert response.status_code == 200, response.text


async def make_user(
    api: Api,
    deps: Deps,
    *,
    password: str = "correct horse battery",
    locale: str | None = None,
    admin: bool = False,
    verified: bool = True,
    **extra: Any,
) -> TestUser:
    """A real user registered through the API, its email verified with the emailed code unless
    `verified=False` (so it has its signup bonus and may order), made an administrator in the
    database when asked."""
    username = extra.pop("username", None) or unique_name()
    email = extra.pop("email", None) or f"{username}@example.com"
    body: dict[str, Any] = {"email": email, "username": username, "password": password, **extra}
    if locale:
        body["locale"] = locale
    response = await api.post("/api/auth/register/", json=body)
    assert response.status_code == 201, response.text
    data = response.json()
    if verified:
        await verify_email(api, deps, data["user"]["id"])
        data["user"]["verified"] = True
    if admin:
        async with deps.db.uow() as uow:
            user = await uow.session.get(User, data["user"]["id"])
            assert user is not None
            user.is_admin = True
            await uow.commit()
    return TestUser(
        id=data["user"]["id"],
        email=email.lower(),
        username=username,
        password=password,
        access=data["access"],
        refresh=data["refresh"],
        data=data,
    )


async def make_category(
    api: Api,
    admin: TestUser,
    *,
    parent_id: int | None = None,
    name_en: str | None = None,
    name_ar: str | None = None,
) -> dict[str, Any]:
    """A new active category (a fresh slug) made by `admin` through the admin API."""
    slug = unique_name("cat").lower()
    body: dict[str, Any] = {
        "slug": slug,
        "name_en": name_en or f"Category {slug}",
        "name_ar": name_ar or f"فئة {slug}",
        "parent_id": parent_id,
    }
    response = await api.post("/api/admin/categories/", json=body, token=admin.access)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def make_skill(
    api: Api, owner: TestUser, *, category_id: int, **fields: Any
) -> dict[str, Any]:
    """A skill listed by `owner` through the API; its body as the API answers it."""
    body: dict[str, Any] = {
        "title_en": "Guitar lessons",
        "description_en": "Chords and rhythm for beginners.",
        "price_points": 10,
        "level": "beginner",
        "delivery_days": 3,
        "category_id": category_id,
        **fields,
    }
    response = await api.post("/api/skills/", json=body, token=owner.access)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def insert_skill(
    deps: Deps, *, owner_id: int, price: int = 10, status: str = "active", title_ar: str = ""
) -> int:
    """The rows of a listing owned by `owner_id`, written directly; its id."""
    now = deps.clock()
    async with deps.db.uow() as uow:
        slug = "orders-tests"
        category = await uow.session.scalar(select(Category).where(Category.slug == slug))
        if category is None:
            category = Category(
                slug=slug, name_en="Orders tests", name_ar="اختبارات الطلبات", created_at=now
            )
            uow.session.add(category)
            await uow.session.flush()
        skill = Skill(
            owner_id=owner_id,
            category_id=category.id,
            title_en=f"Lesson {unique_name('s')}",
            title_ar=title_ar,
            description_en="A lesson.",
            price_points=price,
            level="beginner",
            languages=["en"],
            tags=[],
            delivery_days=3,
            status=status,
            created_at=now,
            updated_at=now,
        )
        uow.session.add(skill)
        await uow.session.flush()
        await uow.commit()
    return skill.id


async def place_order(api: Api, deps: Deps, buyer: TestUser, seller: TestUser) -> dict[str, Any]:
    """A real order of a 1-point skill of `seller`, placed by `buyer` through the API."""
    skill_id = await insert_skill(deps, owner_id=seller.id, price=1)
    response = await api.post(
        "/api/points/orders/", token=buyer.access, json={"skill_id": skill_id}
    )
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    return order


async def order_room(api: Api, deps: Deps, buyer: TestUser, seller: TestUser) -> int:
    """The chat room that comes with a new order between `buyer` and `seller`."""
    order = await place_order(api, deps, buyer, seller)
    listing = await api.get("/api/chat/rooms/?page_size=100", token=buyer.access)
    assert listing.status_code == 200, listing.text
    for room in listing.json()["results"]:
        if room["order_id"] == order["id"]:
            return int(room["id"])
    raise AssertionError(f"no chat room for order {order['id']}")


async def balance(deps: Deps, user_id: int) -> tuple[int, int]:
    """(balance, held) of the user's wallet."""
    async with deps.db.read() as session:
        wallet = await ledger.wallet_balance(session, user_id)
    return wallet.balance, wallet.held


async def skill_row(deps: Deps, skill_id: int) -> Skill:
    """A skill's row as stored."""
    async with deps.db.read() as session:
        skill = await session.get(Skill, skill_id)
    assert skill is not None
    return skill
