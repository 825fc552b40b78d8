"""The operators' dashboard over real HTTP: sign-in, its cookie, its timeouts, xsrf, the
security headers, and every form's effect as the API then shows it, with its audit row."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from skillswap.http.dashboard.base import CONTENT_SECURITY_POLICY

WRONG = "Wrong email or password, or not an administrator."


class Dashboard:
    """A browser's view of the dashboard: a cookie jar, forms posted with their _xsrf."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(path, **kwargs)

    def xsrf(self) -> str:
        token = self.client.cookies.get("_xsrf")
        assert token, "no _xsrf cookie yet: GET a page first"
        return str(token)

    async def post(self, path: str, data: dict[str, Any], **kwargs: Any) -> httpx.Response:
        """Post a form as the page's own form does (its _xsrf field included)."""
        if "_xsrf" not in self.client.cookies:
            await self.client.get("/admin/login")
        return await self.client.post(path, data={"_xsrf": self.xsrf(), **data}, **kwargs)

    async def sign_in(self, email: str, password: str) -> httpx.Response:
        await self.client.get("/admin/login")
        return await self.post("/admin/login", {"email": email, "password": password})


@contextlib.asynccontextmanager
async def dashboard(server: str) -> AsyncIterator[Dashboard]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as client:
        yield Dashboard(client)


@pytest.fixture
async def admin(make_user):  # type: ignore[no-untyped-def]
    return await make_user(admin=True)


@pytest.fixture
async def signed_in(server, admin):  # type: ignore[no-untyped-def]
    async with dashboard(server) as page:
        response = await page.sign_in(admin.email, admin.password)
        assert response.status_code == 303, response.text
        yield page


# -- signing in ----------------------------------------------------------------------------------


async def test_an_administrator_signs_in_and_sees_the_overview(server, admin):
    async with dashboard(server) as page:
        response = await page.sign_in(admin.email, admin.password)
        assert response.status_code == 303
        assert response.headers["Location"] == "/admin/"
        overview = await page.get("/admin/")
        assert overview.status_code == 200
        assert 'action="/admin/logout"' in overview.text
        assert '<html lang="en" dir="ltr">' in overview.text


async def test_a_wrong_password_and_a_non_administrator_get_the_same_answer(
    server, admin, make_user
):
    member = await make_user()
    async with dashboard(server) as page:
        wrong = await page.sign_in(admin.email, "not the password")
        not_admin = await page.sign_in(member.email, member.password)
        unknown = await page.sign_in("nobody@example.com", "whatever it is")
    for response in (wrong, not_admin, unknown):
        assert response.status_code == 401
        assert WRONG in response.text
        assert "skillswap_admin=" not in response.headers.get("set-cookie", "")
        assert "WWW-Authenticate" not in response.headers


async def test_sign_in_is_throttled_like_the_api_after_repeated_failures(server, admin, deps):
    async with dashboard(server) as page:
        for _ in range(deps.settings.login_max_failures):
            assert (await page.sign_in(admin.email, "wrong password!")).status_code == 401
        throttled = await page.sign_in(admin.email, admin.password)
    assert throttled.status_code == 429
    assert "Too many failed sign-in attempts" in throttled.text
    assert throttled.headers["Retry-After"] == str(deps.settings.login_delay_base_seconds)
    from skillswap.accounts.signin_throttle import SignInAttempt

    await deps.limiter.reset(SignInAttempt.of(f"user:{admin.id}", "127.0.0.1").pair)


def _set_cookie(response: httpx.Response, name: str) -> str:
    found = [v for v in response.headers.get_list("set-cookie") if v.startswith(name + "=")]
    assert found, response.headers
    return found[-1]


async def test_the_session_cookie_is_signed_httponly_strict_and_scoped_to_the_dashboard(
    server, admin
):
    async with dashboard(server) as page:
        response = await page.sign_in(admin.email, admin.password)
    cookie = _set_cookie(response, "skillswap_admin")
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/admin"} <= flags
    assert "secure" not in flags  # plain http


async def test_the_cookies_are_secure_behind_an_https_proxy(settings, deps, admin):
    from tests.conftest import serving

    https = settings.with_overrides(trust_proxy_headers=True)
    async with serving(https, deps) as url, dashboard(url) as page:
        page.client.headers["X-Forwarded-Proto"] = "https"
        form = await page.get("/admin/login")
        # httpx keeps Secure cookies for https only: send the xsrf token by hand.
        xsrf = _set_cookie(form, "_xsrf").split(";")[0].split("=", 1)[1]
        response = await page.client.post(
            "/admin/login",
            data={"_xsrf": xsrf, "email": admin.email, "password": admin.password},
            headers={"Cookie": f"_xsrf={xsrf}"},
        )
    assert response.status_code == 303, response.text
    for name in ("_xsrf", "skillswap_admin"):
        source = form if name == "_xsrf" else response
        flags = {p.strip().lower() for p in _set_cookie(source, name).split(";")[1:]}
        assert {"secure", "httponly", "samesite=strict", "path=/admin"} <= flags, name


async def test_a_signed_out_visitor_is_sent_to_sign_in_and_refused_a_post(server):
    async with dashboard(server) as page:
        response = await page.get("/admin/orders/?status=disputed")
        assert response.status_code == 302
        assert response.headers["Location"] == (
            "/admin/login?next=%2Fadmin%2Forders%2F%3Fstatus%3Ddisputed"
        )
        refused = await page.post("/admin/categories/", {"action": "create", "slug": "x"})
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("text/html")


async def test_a_forged_cookie_is_no_session(server, admin):
    async with dashboard(server) as page:
        page.client.cookies.set(
            "skillswap_admin", f"2|1:0|10:1|{admin.id}|x|1|1|abc", path="/admin"
        )
        assert (await page.get("/admin/")).status_code == 302


async def test_a_session_left_idle_too_long_ends(signed_in, deps):
    idle = deps.settings.admin_session_idle_seconds
    with deps.clock.moved(timedelta(seconds=idle - 60)):
        assert (await signed_in.get("/admin/")).status_code == 200  # used: idle again from now
        with deps.clock.moved(timedelta(seconds=idle - 60)):
            assert (await signed_in.get("/admin/")).status_code == 200
            with deps.clock.moved(timedelta(seconds=idle + 1)):
                ended = await signed_in.get("/admin/")
    assert ended.status_code == 302
    assert ended.headers["Location"].startswith("/admin/login")


async def test_a_session_ends_at_its_absolute_timeout_even_when_used(signed_in, deps):
    step = deps.settings.admin_session_idle_seconds - 60
    steps = deps.settings.admin_session_max_seconds // step
    clock = deps.clock
    start = clock.offset
    try:
        for _ in range(steps):
            clock.offset += timedelta(seconds=step)
            assert (await signed_in.get("/admin/")).status_code == 200
        clock.offset += timedelta(seconds=step)
        assert (await signed_in.get("/admin/")).status_code == 302
    finally:
        clock.offset = start


async def test_signing_out_ends_a_copied_cookie_too(server, signed_in):
    stolen = signed_in.client.cookies.get("skillswap_admin", path="/admin")
    assert (await signed_in.post("/admin/logout", {})).status_code == 303
    async with dashboard(server) as thief:
        thief.client.cookies.set("skillswap_admin", stolen, path="/admin")
        assert (await thief.get("/admin/")).status_code == 302
    assert (await signed_in.get("/admin/")).status_code == 302


async def test_an_administrator_whose_sessions_were_ended_is_signed_out(signed_in, admin, api):
    changed = await api.post(
        "/api/auth/password/change/",
        token=admin.access,
        json={"current_password": admin.password, "new_password": "another long password 7"},
    )
    assert changed.status_code in (200, 204), changed.text
    assert (await signed_in.get("/admin/")).status_code == 302


async def test_an_administrator_who_lost_the_rights_is_signed_out(signed_in, admin, deps):
    from skillswap.models import User

    async with deps.db.uow() as uow:
        user = await uow.session.get(User, admin.id)
        assert user is not None
        user.is_admin = False
        await uow.commit()
    deps.signed_in.forget(admin.id)
    assert (await signed_in.get("/admin/")).status_code == 302


async def test_a_post_without_its_xsrf_token_is_refused(signed_in):
    response = await signed_in.client.post("/admin/categories/", data={"action": "create"})
    assert response.status_code == 403
    assert "This form has expired" in response.text
    wrong = await signed_in.client.post(
        "/admin/categories/", data={"action": "create", "_xsrf": "2|00|00|00"}
    )
    assert wrong.status_code == 403


PAGES = [
    "/admin/",
    "/admin/users/",
    "/admin/skills/",
    "/admin/reports/",
    "/admin/reports/?status=all",
    "/admin/ledger/",
    "/admin/orders/",
    "/admin/disputes/",
    "/admin/payments/",
    "/admin/audit/",
    "/admin/categories/",
    "/admin/packages/",
]


async def test_every_page_sends_the_strict_security_headers(signed_in, admin):
    extra = ["/admin/login", "/admin/disputes/case?order=0", f"/admin/users/{admin.id}/"]
    for path in [*PAGES, *extra]:
        response = await signed_in.get(path)
        assert response.status_code in (200, 302, 404), path
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, path
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert response.headers["Cache-Control"] == "no-store"
        assert "<script" not in response.text and "style=" not in response.text, path


async def test_an_unknown_order_is_a_404_page(signed_in):
    response = await signed_in.get("/admin/disputes/case?order=0")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "This order does not exist." in response.text


async def test_arabic_pages_are_right_to_left_and_remember_the_choice(signed_in):
    arabic = await signed_in.get("/admin/?lang=ar")
    assert '<html lang="ar" dir="rtl">' in arabic.text
    again = await signed_in.get("/admin/payments/")
    assert '<html lang="ar" dir="rtl">' in again.text
    assert "المدفوعات" in again.text
    back = await signed_in.get("/admin/?lang=en")
    assert '<html lang="en" dir="ltr">' in back.text


async def test_the_browser_language_is_used_before_any_choice(server, admin):
    async with dashboard(server) as page:
        page.client.headers["Accept-Language"] = "ar-EG,ar;q=0.9"
        login = await page.get("/admin/login")
    assert '<html lang="ar" dir="rtl">' in login.text


# -- what the forms do ---------------------------------------------------------------------------


async def _audit(api, admin, **query: Any) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    response = await api.get("/api/admin/audit/", token=admin.access, params=query)
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


async def test_categories_are_created_edited_and_deactivated_from_the_dashboard(
    signed_in, api, admin
):
    slug = f"dash-{admin.id}"
    created = await signed_in.post(
        "/admin/categories/",
        {
            "action": "create",
            "slug": slug,
            "name_en": "Pottery",
            "name_ar": "فخار",
            "parent_id": "",
        },
    )
    assert created.status_code == 303, created.text
    listed = (await api.get("/api/admin/categories/", token=admin.access)).json()["results"]
    category = next(c for c in listed if c["slug"] == slug)
    assert (category["name_en"], category["name_ar"]) == ("Pottery", "فخار")
    page = await signed_in.get("/admin/categories/")
    assert "Saved." in page.text
    edited = await signed_in.post(
        "/admin/categories/",
        {
            "action": "edit",
            "category_id": category["id"],
            "slug": slug,
            "name_en": "Ceramics",
            "name_ar": "خزف",
            "parent_id": "",
            "position": "3",
        },
    )
    assert edited.status_code == 303, edited.text
    off = await signed_in.post(
        "/admin/categories/", {"action": "deactivate", "category_id": category["id"]}
    )
    assert off.status_code == 303
    listed = (await api.get("/api/admin/categories/", token=admin.access)).json()["results"]
    category = next(c for c in listed if c["id"] == category["id"])
    assert (category["name_en"], category["position"], category["is_active"]) == (
        "Ceramics",
        3,
        False,
    )
    actions = [
        e["action"] for e in await _audit(api, admin, actor=admin.id, target_type="category")
    ]
    assert len(actions) == 3, actions


async def test_a_refused_form_shows_the_service_message_on_its_page(signed_in, make_category):
    taken = await make_category()
    response = await signed_in.post(
        "/admin/categories/",
        {"action": "create", "slug": taken["slug"], "name_en": "Again", "name_ar": "مرة"},
    )
    assert response.status_code == 409
    assert 'class="problem"' in response.text
    assert "New category" in response.text  # the form's own page
    invalid = await signed_in.post(
        "/admin/categories/", {"action": "create", "slug": "", "name_en": "", "name_ar": "x"}
    )
    assert invalid.status_code == 400
    assert "<code>name_en</code>" in invalid.text


async def test_packages_are_created_and_repriced_from_the_dashboard(signed_in, api, admin):
    created = await signed_in.post(
        "/admin/packages/",
        {
            "action": "create",
            "name_en": "Dash pack",
            "name_ar": "باقة",
            "points": "120",
            "price_minor": "499",
            "currency": "USD",
            "prices": "EGP 15000",
            "sort_order": "0",
            "is_active": "true",
        },
    )
    assert created.status_code == 303, created.text
    listed = (await api.get("/api/admin/packages/?page_size=100", token=admin.access)).json()
    package = next(p for p in listed["results"] if p["name_en"] == "Dash pack")
    edited = await signed_in.post(
        "/admin/packages/",
        {
            "action": "edit",
            "package_id": package["id"],
            "name_en": "Dash pack",
            "name_ar": "باقة",
            "points": "150",
            "price_minor": "599",
            "currency": "USD",
            "prices": "EGP 18000, SAR 2200",
            "sort_order": "0",
        },
    )
    assert edited.status_code == 303, edited.text
    listed = (await api.get("/api/admin/packages/?page_size=100", token=admin.access)).json()
    package = next(p for p in listed["results"] if p["id"] == package["id"])
    assert package["points"] == 150 and package["is_active"] is False
    prices = {p["currency"]: p["amount_minor"] for p in package["prices"]}
    assert prices == {"USD": 599, "EGP": 18000, "SAR": 2200}
    rows = await _audit(api, admin, actor=admin.id, target_type="package", target_id=package["id"])
    assert len(rows) == 2


async def _disputed_order(api, deps, make_user, price: int = 10) -> tuple[Any, Any, int]:  # type: ignore[no-untyped-def]
    from tests.factories import insert_skill

    buyer, seller = await make_user(), await make_user()
    skill_id = await insert_skill(deps, owner_id=seller.id, price=price)
    placed = await api.post("/api/points/orders/", token=buyer.access, json={"skill_id": skill_id})
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]
    for who, action in ((seller, "accept"), (seller, "deliver"), (buyer, "dispute")):
        done = await api.post(f"/api/points/orders/{order_id}/{action}/", token=who.access, json={})
        assert done.status_code == 200, done.text
    return buyer, seller, order_id


async def test_a_dispute_is_split_from_its_case_page(signed_in, api, deps, admin, make_user):
    buyer, _seller, order_id = await _disputed_order(api, deps, make_user, price=10)
    listing = await signed_in.get("/admin/disputes/")
    assert f'id="order-{order_id}"' in listing.text
    case = await signed_in.get(f"/admin/disputes/case?order={order_id}")
    assert case.status_code == 200 and 'id="resolve"' in case.text
    resolved = await signed_in.post(
        f"/admin/disputes/case?order={order_id}",
        {"action": "resolve", "resolution": "split", "seller_points": "7", "note": "half done"},
    )
    assert resolved.status_code == 303, resolved.text
    order = (await api.get(f"/api/points/orders/{order_id}/", token=buyer.access)).json()
    assert order["status"] == "resolved"
    assert order["resolution"] == "split"
    assert (order["settlement"]["seller_points"], order["settlement"]["refunded_points"]) == (7, 3)
    rows = await _audit(api, admin, actor=admin.id, target_type="order", target_id=order_id)
    assert [r["action"] for r in rows] == ["order.resolve"]
    again = await signed_in.post(
        f"/admin/disputes/case?order={order_id}", {"action": "resolve", "resolution": "refund"}
    )
    assert again.status_code == 409
    assert 'class="problem"' in again.text


async def test_orders_are_filtered_by_status_and_exported(signed_in, api, deps, make_user):
    _, _, order_id = await _disputed_order(api, deps, make_user)
    disputed = await signed_in.get("/admin/orders/?status=disputed")
    assert f'id="order-{order_id}"' in disputed.text
    pending = await signed_in.get("/admin/orders/?status=pending")
    assert f'id="order-{order_id}"' not in pending.text
    export = await signed_in.get("/admin/orders/?status=disputed&format=csv")
    assert export.headers["content-type"].startswith("text/csv")
    lines = export.text.lstrip("\ufeff").splitlines()
    assert lines[0].startswith("id,status,")
    assert any(line.startswith(f"{order_id},disputed,") for line in lines[1:])


async def test_csv_cells_that_could_run_as_formulas_are_quoted(signed_in, admin):
    slug = f"csv-{admin.id}"
    made = await signed_in.post(
        "/admin/categories/",
        {"action": "create", "slug": slug, "name_en": '=HYPERLINK("x")', "name_ar": "@SUM(1)"},
    )
    assert made.status_code == 303, made.text
    export = await signed_in.get("/admin/categories/?format=csv")
    line = next(row for row in export.text.splitlines() if f",{slug}," in row)
    assert ',"\'=HYPERLINK(""x"")",\'@SUM(1),' in line
    assert 'filename="categories.csv"' in export.headers["content-disposition"]


def test_safe_cells_quote_formula_starts_only():
    from skillswap.http.dashboard.export import safe_cell

    assert [safe_cell(v) for v in ("=1+1", "+1", "-x", "@a", "plain", -5, None, True)] == [
        "'=1+1",
        "'+1",
        "'-x",
        "'@a",
        "plain",
        "-5",
        "",
        "true",
    ]


def test_template_text_has_no_inline_script_or_style():
    from pathlib import Path

    import skillswap.http

    folder = Path(skillswap.http.__file__).parent / "templates" / "admin"
    for template in folder.glob("*.html"):
        text = template.read_text()
        assert not re.search(r'<script|style=|<style|\son[a-z]+="', text), template.name


async def test_a_ban_and_an_unban_from_the_dashboard_reach_the_api_and_the_audit(
    signed_in, api, admin, make_user
):
    member = await make_user()
    refused = await signed_in.post(
        "/admin/users/", {"action": "ban", "user_id": member.id, "reason": ""}
    )
    assert refused.status_code == 400 and 'class="problem"' in refused.text
    banned = await signed_in.post(
        "/admin/users/", {"action": "ban", "user_id": member.id, "reason": "spam"}
    )
    assert banned.status_code == 303, banned.text
    assert (await api.get("/api/auth/profile/", token=member.access)).status_code == 401
    detail = (await api.get(f"/api/admin/users/{member.id}/", token=admin.access)).json()
    assert detail["user"]["is_active"] is False
    listed = await signed_in.get(f"/admin/users/?search={member.username}&status=banned")
    assert f'id="user-{member.id}"' in listed.text and "The user is banned." in listed.text
    unbanned = await signed_in.post(
        "/admin/users/", {"action": "unban", "user_id": member.id, "reason": "appeal"}
    )
    assert unbanned.status_code == 303
    verified = await signed_in.post("/admin/users/", {"action": "verify", "user_id": member.id})
    assert verified.status_code == 303
    detail = (await api.get(f"/api/admin/users/{member.id}/", token=admin.access)).json()
    assert (detail["user"]["is_active"], detail["user"]["is_verified"]) == (True, True)
    rows = await _audit(api, admin, actor=admin.id, target_type="user", target_id=member.id)
    assert len(rows) == 3
    assert {r["reason"] for r in rows} >= {"spam", "appeal"}


async def test_a_banned_administrator_is_signed_out_of_the_dashboard(server, signed_in, make_user):
    other = await make_user(admin=True)
    async with dashboard(server) as theirs:
        assert (await theirs.sign_in(other.email, other.password)).status_code == 303
        banned = await signed_in.post(
            "/admin/users/", {"action": "ban", "user_id": other.id, "reason": "stolen account"}
        )
        assert banned.status_code == 303, banned.text
        assert (await theirs.get("/admin/")).status_code == 302


async def test_a_skill_is_hidden_and_listed_again_from_the_dashboard(
    signed_in, api, admin, make_user, make_skill
):
    owner = await make_user()
    skill = await make_skill(owner)
    hidden = await signed_in.post(
        "/admin/skills/", {"action": "hide", "skill_id": skill["id"], "note": "copied text"}
    )
    assert hidden.status_code == 303, hidden.text
    assert (await api.get(f"/api/skills/{skill['id']}/")).status_code == 404
    page = await signed_in.get(f"/admin/skills/?owner={owner.id}")
    assert "copied text" in page.text and "The skill is hidden." in page.text
    restored = await signed_in.post(
        "/admin/skills/", {"action": "restore", "skill_id": skill["id"]}
    )
    assert restored.status_code == 303
    assert (await api.get(f"/api/skills/{skill['id']}/")).status_code == 200
    rows = await _audit(api, admin, actor=admin.id, target_type="skill", target_id=skill["id"])
    assert len(rows) == 2


async def test_an_adjustment_is_made_once_per_form_and_shows_on_the_statement(
    signed_in, api, admin, make_user
):
    member = await make_user()
    before = (await api.get("/api/points/balance/", token=member.access)).json()["balance"]
    form = {"user_id": member.id, "amount": "25", "reason": "goodwill", "idempotency_key": "k-1"}
    first = await signed_in.post("/admin/ledger/", form)
    assert first.status_code == 303, first.text
    assert first.headers["Location"] == f"/admin/ledger/?user={member.id}"
    again = await signed_in.post("/admin/ledger/", form)  # a double click
    assert again.status_code == 303
    after = (await api.get("/api/points/balance/", token=member.access)).json()["balance"]
    assert after == before + 25
    statement = await signed_in.get(f"/admin/ledger/?user={member.id}")
    assert f'<strong id="balance">{after}</strong>' in statement.text
    overdraw = await signed_in.post(
        "/admin/ledger/",
        {
            "user_id": member.id,
            "amount": str(-(after + 1)),
            "reason": "too much",
            "idempotency_key": "k-2",
        },
    )
    assert overdraw.status_code == 409 and 'class="problem"' in overdraw.text
    rows = await _audit(api, admin, actor=admin.id, target_type="wallet")
    assert sum(1 for r in rows if r["reason"] == "goodwill") == 1


# -- the overview --------------------------------------------------------------------------------


def _figure(page: httpx.Response, key: str) -> str:
    found = re.search(rf'id="figure-{key}"><span class="value">([^<]*)</span>', page.text)
    assert found, key
    return found.group(1)


async def test_the_overview_shows_the_api_s_numbers_and_draws_them(
    signed_in, api, deps, admin, make_user
):
    from babel.numbers import format_decimal, format_percent

    await _disputed_order(api, deps, make_user)
    member = await make_user()
    taken = await api.post(  # a negative day of adjustments draws a bar below the axis
        "/api/admin/ledger/adjustments/",
        token=admin.access,
        json={"user_id": member.id, "amount": -3, "reason": "duplicate bonus"},
    )
    assert taken.status_code == 201, taken.text
    figures = (await api.get("/api/admin/stats/", token=admin.access)).json()
    page = await signed_in.get("/admin/?lang=en")
    assert page.status_code == 200

    def n(value: int) -> str:
        return format_decimal(value, locale="en")

    today = {k: v for k, v in figures["orders"]["series"][-1].items()}
    expected = {
        "orders-placed": n(today["placed"]),
        "orders-disputed": n(today["disputed"]),
        "new-users": n(figures["users"]["series"][-1]["new"]),
        "messages": n(figures["chat"]["series"][-1]["messages"]),
        "in-circulation": n(figures["points"]["in_circulation"]),
        "held-in-escrow": n(figures["points"]["held_in_escrow"]),
        "range-orders-placed": n(figures["orders"]["totals"]["placed"]),
        "range-new-users": n(figures["users"]["totals"]["new"]),
        "users-total": n(figures["users"]["totals"]["total"]),
        "users-verified": n(figures["users"]["totals"]["verified"]),
        "skills-active": n(figures["skills"]["totals"]["active"]),
        "points-bought": n(figures["points"]["totals"]["bought"]),
        "points-adjusted": n(figures["points"]["totals"]["adjusted"]),
        "completion-rate": format_percent(
            figures["orders"]["totals"]["completion_rate"], format="#,##0.#%", locale="en"
        ),
    }
    assert {key: _figure(page, key) for key in expected} == expected
    assert today["placed"] >= 1 and today["disputed"] >= 1
    assert figures["points"]["totals"]["adjusted"] != 0
    for chart in ("orders", "new-users", "success-rate", "points", "messages"):
        svg = re.search(rf'id="chart-{chart}">.*?(<svg .*?</svg>)', page.text, re.S)
        assert svg, chart
        assert re.match(r'<svg [^>]*role="img"[^>]*><title>[^<]+</title>', svg.group(1)), chart
        assert 'height="-' not in svg.group(1) and "style=" not in svg.group(1)
    orders_chart = re.search(r'id="chart-orders">.*?</svg>', page.text, re.S)
    assert orders_chart and f"{n(today['placed'])}</title></circle>" in orders_chart.group(0)
    adjusted = figures["points"]["series"][-1]["adjusted"]
    points_chart = re.search(r'id="chart-points">.*?</svg>', page.text, re.S)
    assert points_chart and f": {n(adjusted)}</title></circle>" in points_chart.group(0)


def test_charts_draw_negative_values_below_the_axis_and_escape_their_text():
    from skillswap.http.dashboard import charts

    bars = str(charts.bar_chart([("<a>", -2), ("b", 3)], title="Points & more"))
    assert bars.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    assert "<title>Points &amp; more</title>" in bars and "&lt;a&gt;: -2" in bars
    assert 'class="bar negative"' in bars and 'height="-' not in bars
    heights = [float(h) for h in re.findall(r'<rect class="bar[^"]*" [^>]*height="([\d.]+)"', bars)]
    assert len(heights) == 2 and heights[1] == pytest.approx(heights[0] * 1.5, rel=0.01)
    gap = str(
        charts.lines_chart(
            ["a", "b", "c"],
            [charts.Series("rate", [0.5, None, 1]), charts.Series("other", [0, 0, 0])],
            title="t",
            high=1,
        )
    )
    assert gap.count("<polyline") == 1  # the rate's line breaks where it has no value
    assert gap.count('class="key series-') == 2  # a legend for two series


async def test_the_overview_takes_a_range_and_refuses_a_bad_one_on_its_page(signed_in, admin, api):
    week = await signed_in.get("/admin/?from=2026-01-05&to=2026-02-01&interval=week")
    assert week.status_code == 200
    figures = (
        await api.get(
            "/api/admin/stats/?from=2026-01-05&to=2026-02-01&interval=week", token=admin.access
        )
    ).json()
    assert len(figures["buckets"]) == 4
    orders_chart = re.search(r'id="chart-orders">.*?</svg>', week.text, re.S)
    assert orders_chart and orders_chart.group(0).count('<circle class="dot series-0"') == 4
    assert 'value="2026-01-05"' in week.text and 'value="week" selected' in week.text
    assert _figure(week, "range-orders-placed") == str(figures["orders"]["totals"]["placed"])
    assert 'id="figure-new-users"' in week.text  # today's figures are still shown
    bad = await signed_in.get("/admin/?from=soon")
    assert bad.status_code == 400 and "<code>from</code>" in bad.text
    wide = await signed_in.get("/admin/?from=2000-01-01&to=2026-01-01&interval=day")
    assert wide.status_code == 400 and "<code>interval</code>" in wide.text
    arabic = await signed_in.get("/admin/?lang=ar&from=2026-03-01&to=2026-03-31&interval=month")
    assert '<html lang="ar" dir="rtl">' in arabic.text and "مارس" in arabic.text
    await signed_in.get("/admin/?lang=en")


# -- reports -------------------------------------------------------------------------------------


async def _report(api, who, target_type: str, target_id: int, reason: str = "spam") -> int:  # type: ignore[no-untyped-def]
    filed = await api.post(
        "/api/reports/",
        token=who.access,
        json={"target_type": target_type, "target_id": target_id, "reason": reason},
    )
    assert filed.status_code == 201, filed.text
    return int(filed.json()["id"])


async def test_reports_are_closed_from_the_queue_with_their_action_done(
    signed_in, api, admin, make_user, make_skill
):
    owner, reporter = await make_user(), await make_user()
    skill = await make_skill(owner, title_en="Copied lessons")
    skill_report = await _report(api, reporter, "skill", skill["id"])
    user_report = await _report(api, reporter, "user", owner.id, reason="fraud")
    queue = await signed_in.get("/admin/reports/?target_type=skill")
    assert f'id="report-{skill_report}"' in queue.text and "Copied lessons" in queue.text
    assert f'id="report-{user_report}"' not in queue.text
    assert '<option value="skill_hidden">' in queue.text

    wrong = await signed_in.post(
        "/admin/reports/", {"report_id": user_report, "outcome": "skill_hidden", "note": "x"}
    )
    assert wrong.status_code == 400 and "Only a report of a skill can hide a skill." in wrong.text
    unknown = await signed_in.post("/admin/reports/", {"report_id": user_report, "outcome": "?"})
    assert unknown.status_code == 400 and "<code>outcome</code>" in unknown.text
    hidden = await signed_in.post(
        "/admin/reports/",
        {"report_id": skill_report, "outcome": "skill_hidden", "note": "copied text"},
    )
    assert hidden.status_code == 303, hidden.text
    assert (await api.get(f"/api/skills/{skill['id']}/")).status_code == 404
    closed = (
        await api.get("/api/admin/reports/?status=closed&page_size=100", token=admin.access)
    ).json()["results"]
    mine = next(r for r in closed if r["id"] == skill_report)
    assert (mine["outcome"], mine["closed_by"], mine["note"]) == (
        "skill_hidden",
        admin.id,
        "copied text",
    )
    again = await signed_in.post(
        "/admin/reports/", {"report_id": skill_report, "outcome": "dismissed"}
    )
    assert again.status_code == 409 and "This report is already closed." in again.text

    no_note = await signed_in.post(
        "/admin/reports/", {"report_id": user_report, "outcome": "user_banned", "note": ""}
    )
    assert no_note.status_code == 400 and "<code>note</code>" in no_note.text
    banned = await signed_in.post(
        "/admin/reports/",
        {"report_id": user_report, "outcome": "user_banned", "note": "stolen cards"},
    )
    assert banned.status_code == 303
    profile = (await api.get(f"/api/admin/users/{owner.id}/", token=admin.access)).json()
    assert profile["user"]["is_active"] is False
    page = await signed_in.get("/admin/reports/?status=all")
    assert "The report is closed." in page.text
    assert f'id="report-{user_report}"' in page.text
    open_queue = await signed_in.get("/admin/reports/")
    assert f'id="report-{user_report}"' not in open_queue.text

    rows = await _audit(api, admin, actor=admin.id, target_type="report")
    assert {(r["target_id"], r["after"]["outcome"]) for r in rows} >= {
        (skill_report, "skill_hidden"),
        (user_report, "user_banned"),
    }
    [hide] = await _audit(api, admin, target_type="skill", target_id=skill["id"])
    assert (hide["action"], hide["reason"]) == ("skill.hide", "copied text")
    [ban] = await _audit(api, admin, target_type="user", target_id=owner.id)
    assert (ban["action"], ban["reason"]) == ("user.ban", "stolen cards")

    export = await signed_in.get("/admin/reports/?status=all&target_type=skill&format=csv")
    assert 'filename="reports.csv"' in export.headers["content-disposition"]
    lines = export.text.lstrip("\ufeff").splitlines()
    assert lines[0].startswith("id,created_at,status,target_type,target_id,target,")
    line = next(row for row in lines if row.startswith(f"{skill_report},"))
    assert ",closed,skill," in line and "skill_hidden,copied text" in line
    assert not any(row.startswith(f"{user_report},") for row in lines)


# -- a user's page -------------------------------------------------------------------------------


async def test_a_user_s_page_shows_them_whole_and_changes_them(
    signed_in, api, deps, admin, make_user
):
    from skillswap.models import Payment

    buyer, seller, order_id = await _disputed_order(api, deps, make_user)
    async with deps.db.uow() as uow:
        payment = Payment(
            user_id=buyer.id,
            gateway="stripe",
            status="failed",
            points=50,
            amount_minor=250,
            currency="USD",
            failure_reason="card declined",
        )
        uow.session.add(payment)
        await uow.session.flush()
        payment_id = payment.id
        await uow.commit()
    report_id = await _report(api, seller, "user", buyer.id, reason="abuse")
    listed = await signed_in.get(f"/admin/users/?search={buyer.username}")
    assert f'href="/admin/users/{buyer.id}/"' in listed.text
    balance = (await api.get("/api/points/balance/", token=buyer.access)).json()

    page = await signed_in.get(f"/admin/users/{buyer.id}/")
    assert page.status_code == 200
    assert buyer.email in page.text and buyer.username in page.text
    assert f'<dd id="user-balance">{balance["balance"]}</dd>' in page.text
    buying = page.text.split('id="orders-as-buyer"')[1].split('id="orders-as-seller"')[0]
    assert f'id="order-{order_id}"' in buying and f"/admin/users/{seller.id}/" in buying
    assert f'id="payment-{payment_id}"' in page.text and "$2.50" in page.text
    assert f'id="report-{report_id}"' in page.text and "abuse" in page.text
    for link in (
        f"/admin/ledger/?user={buyer.id}",
        f"/admin/audit/?target_type=user&amp;target_id={buyer.id}",
        f"/admin/skills/?owner={buyer.id}",
    ):
        assert f'href="{link}"' in page.text, link

    banned = await signed_in.post(
        f"/admin/users/{buyer.id}/", {"action": "ban", "reason": "abusive chat"}
    )
    assert banned.status_code == 303 and banned.headers["Location"] == f"/admin/users/{buyer.id}/"
    after = await signed_in.get(f"/admin/users/{buyer.id}/")
    assert "The user is banned." in after.text and 'value="unban"' in after.text
    verified = await signed_in.post(f"/admin/users/{buyer.id}/", {"action": "verify"})
    assert verified.status_code == 303
    detail = (await api.get(f"/api/admin/users/{buyer.id}/", token=admin.access)).json()
    assert (detail["user"]["is_active"], detail["user"]["is_verified"]) == (False, True)
    assert [o["id"] for o in detail["orders_as_buyer"]] == [order_id]
    rows = await _audit(api, admin, target_type="user", target_id=buyer.id)
    assert [r["action"] for r in rows] == ["user.verify", "user.ban"]
    own = await signed_in.post(f"/admin/users/{admin.id}/", {"action": "revoke_admin"})
    assert own.status_code == 409 and 'class="problem"' in own.text

    missing = await signed_in.get("/admin/users/99999999999/")
    assert missing.status_code == 404 and "This user does not exist." in missing.text
    arabic = await signed_in.get(f"/admin/users/{buyer.id}/?lang=ar")
    assert '<html lang="ar" dir="rtl">' in arabic.text
    await signed_in.get("/admin/?lang=en")


# -- sorting -------------------------------------------------------------------------------------


async def _payments(deps, user_id: int, amounts: list[int]) -> list[int]:  # type: ignore[no-untyped-def]
    """Payments that never reached a gateway (failed), which move no points."""
    from skillswap.models import Payment

    async with deps.db.uow() as uow:
        made = [
            Payment(
                user_id=user_id,
                gateway="paypal",
                status="failed",
                points=1,
                amount_minor=amount,
                currency="USD",
            )
            for amount in amounts
        ]
        uow.session.add_all(made)
        await uow.session.flush()
        ids = [p.id for p in made]
        await uow.commit()
    return ids


async def test_payments_sort_by_a_column_in_the_api_and_on_the_page(
    signed_in, api, deps, admin, make_user
):
    member = await make_user()
    base = 10**11
    ids = await _payments(deps, member.id, [base + 2, base + 9, base + 5])
    top = await api.get(
        "/api/admin/payments/?sort=-amount&status=failed&page_size=3", token=admin.access
    )
    assert top.status_code == 200, top.text
    assert [p["id"] for p in top.json()["results"]] == [ids[1], ids[2], ids[0]]
    rising = await api.get("/api/admin/payments/?sort=amount&page_size=50", token=admin.access)
    amounts = [p["amount_minor"] for p in rising.json()["results"]]
    assert amounts == sorted(amounts)
    by_id = await api.get("/api/admin/payments/?sort=id&page_size=50", token=admin.access)
    ids_up = [p["id"] for p in by_id.json()["results"]]
    assert ids_up == sorted(ids_up)
    bad = await api.get("/api/admin/payments/?sort=password", token=admin.access)
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"sort"}
    refused = await api.get("/api/admin/payments/?sort=password", token=member.access)
    assert refused.status_code == 403 and refused.json()["code"] == "admin_only"

    page = await signed_in.get("/admin/payments/?sort=-amount&status=failed")
    shown = [int(i) for i in re.findall(r'<tr id="payment-(\d+)">', page.text)]
    assert shown[:3] == [ids[1], ids[2], ids[0]]
    assert 'aria-sort="descending"' in page.text
    assert 'href="/admin/payments/?sort=amount&amp;status=failed"' in page.text  # flips
    assert '<input type="hidden" name="sort" value="-amount">' in page.text
    export = await signed_in.get("/admin/payments/?sort=-amount&status=failed&format=csv")
    rows = export.text.lstrip("\ufeff").splitlines()[1:4]
    assert [int(r.split(",")[0]) for r in rows] == [ids[1], ids[2], ids[0]]
    schema = (await api.get("/api/schema/")).json()
    params = schema["paths"]["/api/admin/payments/"]["get"]["parameters"]
    sort = next(p for p in params if p["name"] == "sort")
    assert "-amount" in sort["schema"]["enum"] or any(
        "-amount" in (s.get("enum") or []) for s in sort["schema"].get("anyOf", [])
    )


async def test_the_audit_trail_sorts_by_a_column_in_the_api_and_on_the_page(
    signed_in, api, admin, make_user
):
    member = await make_user()
    for action in ("verify", "ban", "unban"):
        done = await signed_in.post(
            "/admin/users/", {"action": action, "user_id": member.id, "reason": "sorting"}
        )
        assert done.status_code == 303, done.text
    rows = await _audit(api, admin, target_type="user", target_id=member.id, sort="action")
    assert [r["action"] for r in rows] == ["user.ban", "user.unban", "user.verify"]
    rows = await _audit(api, admin, target_type="user", target_id=member.id, sort="-action")
    assert [r["action"] for r in rows] == ["user.verify", "user.unban", "user.ban"]
    rows = await _audit(api, admin, target_type="user", target_id=member.id, sort="id")
    assert [r["action"] for r in rows] == ["user.verify", "user.ban", "user.unban"]
    bad = await api.get("/api/admin/audit/?sort=reason", token=admin.access)
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"sort"}
    page = await signed_in.get(f"/admin/audit/?target_type=user&target_id={member.id}&sort=action")
    shown = re.findall(r"<td><code>(user\.[a-z_]+)</code></td>", page.text)
    assert shown == ["user.ban", "user.unban", "user.verify"]
    assert 'aria-sort="ascending"' in page.text


async def test_users_and_orders_lists_sort_and_search_as_their_services_do(
    signed_in, api, deps, admin, make_user
):
    _, seller, order_id = await _disputed_order(api, deps, make_user)
    by_email = (
        await api.get("/api/admin/users/?sort=email&page_size=25", token=admin.access)
    ).json()["results"]
    page = await signed_in.get("/admin/users/?sort=email")
    shown = [int(i) for i in re.findall(r'<tr id="user-(\d+)">', page.text)]
    assert shown == [u["id"] for u in by_email]
    found = await signed_in.get(f"/admin/orders/?search={seller.username}")
    assert [int(i) for i in re.findall(r'<tr id="order-(\d+)">', found.text)] == [order_id]

    cheap = await _disputed_order(api, deps, make_user, price=2)
    dear = await _disputed_order(api, deps, make_user, price=40)
    ours = {order_id, cheap[2], dear[2]}
    for sort, expected in (("price", [cheap[2], order_id, dear[2]]), ("-price", None)):
        listed = await api.get(
            f"/api/admin/orders/?status=disputed&sort={sort}&page_size=100", token=admin.access
        )
        assert listed.status_code == 200, listed.text
        results = listed.json()["results"]
        prices = [o["price_points"] for o in results]
        assert prices == sorted(prices, reverse=sort.startswith("-"))
        mine = [o["id"] for o in results if o["id"] in ours]
        assert mine == (expected or [dear[2], order_id, cheap[2]])
    bad = await api.get("/api/admin/orders/?sort=buyer", token=admin.access)
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"sort"}
    page = await signed_in.get("/admin/orders/?status=disputed&sort=-price")
    shown = [int(i) for i in re.findall(r'<tr id="order-(\d+)">', page.text)]
    assert [i for i in shown if i in ours] == [dear[2], order_id, cheap[2]]
    assert 'aria-sort="descending"' in page.text
    disputes = await signed_in.get("/admin/disputes/")
    assert "aria-sort" not in disputes.text  # that list has one order: newest first


# -- deleting an account and reinstating it ---------------------------------------------------


async def _user_api(api, admin, user_id: int) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = await api.get(f"/api/admin/users/{user_id}/", token=admin.access)
    assert response.status_code == 200, response.text
    return dict(response.json()["user"])


def _listed(page: httpx.Response) -> list[int]:
    return [int(i) for i in re.findall(r'<tr id="user-(\d+)">', page.text)]


async def test_an_account_is_deleted_and_reinstated_from_the_users_page(
    server, signed_in, api, deps, admin, make_user
):
    from tests.factories import insert_skill, skill_row

    member = await make_user()
    skill_id = await insert_skill(deps, owner_id=member.id)
    path = f"/admin/users/{member.id}/"
    page = await signed_in.get(path)
    assert 'value="delete"' in page.text and 'value="reinstate"' not in page.text

    # Not signed in: refused, nothing scheduled.
    async with dashboard(server) as stranger:
        refused = await stranger.post(path, {"action": "delete", "reason": "x"})
        assert refused.status_code == 403
    no_reason = await signed_in.post(path, {"action": "delete", "reason": "  "})
    assert no_reason.status_code == 400 and 'class="problem"' in no_reason.text
    assert "<code>reason</code>" in no_reason.text
    assert (await _user_api(api, admin, member.id))["deletion_scheduled_for"] is None

    done = await signed_in.post(path, {"action": "delete", "reason": "Asked by phone"})
    assert done.status_code == 303, done.text
    page = await signed_in.get(path)
    assert "deletion is scheduled." in page.text
    assert 'id="deletion-date"' in page.text and 'value="reinstate"' in page.text
    assert 'value="delete"' not in page.text
    scheduled = (await _user_api(api, admin, member.id))["deletion_scheduled_for"]
    assert scheduled is not None
    assert (await skill_row(deps, skill_id)).status == "paused"
    listed = await signed_in.get("/admin/users/?status=deleting")
    assert member.id in _listed(listed) and admin.id not in _listed(listed)
    assert "deletion scheduled" in listed.text
    twice = await signed_in.post(path, {"action": "delete", "reason": "Again"})
    assert twice.status_code == 409 and "already scheduled" in twice.text

    arabic = await signed_in.get(path + "?lang=ar")
    assert '<html lang="ar" dir="rtl">' in arabic.text
    assert "استعِد الحساب" in arabic.text and "الحذف مجدول" in arabic.text
    await signed_in.get(path + "?lang=en")

    back = await signed_in.post(path, {"action": "reinstate", "reason": "Changed their mind"})
    assert back.status_code == 303, back.text
    page = await signed_in.get(path)
    assert "its deletion is called off." in page.text and 'value="delete"' in page.text
    assert (await _user_api(api, admin, member.id))["deletion_scheduled_for"] is None
    assert (await skill_row(deps, skill_id)).status == "active"
    assert member.id not in _listed(await signed_in.get("/admin/users/?status=deleting"))
    rows = await _audit(api, admin, target_type="user", target_id=member.id)
    assert sorted((r["action"], r["reason"], r["actor_id"]) for r in rows) == [
        ("user.delete", "Asked by phone", admin.id),
        ("user.reinstate", "Changed their mind", admin.id),
    ]


async def test_a_deletion_refused_for_open_orders_lists_them_on_the_page(
    signed_in, api, deps, make_user
):
    from tests.factories import place_order

    _buyer, seller, disputed = await _disputed_order(api, deps, make_user)
    pending = await place_order(api, deps, seller, await make_user())
    await signed_in.get(f"/admin/users/{seller.id}/?lang=ar")
    refused = await signed_in.post(
        f"/admin/users/{seller.id}/", {"action": "delete", "reason": "Asked by mail"}
    )
    assert refused.status_code == 409 and 'class="problem"' in refused.text
    assert '<html lang="ar" dir="rtl">' in refused.text
    assert "لديك طلبات مفتوحة" in refused.text
    shown = re.findall(r'<li id="open-order-(\d+)">(.*?)</li>', refused.text, re.S)
    assert [int(i) for i, _ in shown] == sorted([disputed, pending["id"]])
    said = dict((int(i), text) for i, text in shown)
    assert "باعه" in said[disputed] and "يجب أن يكتمل أو يُفتح فيه نزاع أولًا" in said[disputed]
    assert "اشتراه" in said[pending["id"]] and "يمكنه إلغاؤه" in said[pending["id"]]
    assert f'href="/admin/disputes/case?order={disputed}"' in refused.text
    assert (await skill_row_status(deps, seller.id)) == ["active"]


async def skill_row_status(deps, owner_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from skillswap.models import Skill

    async with deps.db.read() as session:
        return list(
            await session.scalars(
                select(Skill.status).where(Skill.owner_id == owner_id).order_by(Skill.id)
            )
        )


async def test_a_carried_out_deletion_shows_the_tombstone_and_cannot_be_reinstated(
    signed_in, api, deps, admin, make_user
):
    from skillswap.accounts.deletion import erase_due_accounts

    member = await make_user()
    path = f"/admin/users/{member.id}/"
    assert (await signed_in.post(path, {"action": "delete", "reason": "Left"})).status_code == 303
    with deps.clock.moved(timedelta(days=15)):
        assert member.id in (await erase_due_accounts(deps, now=deps.clock())).erased

    # A page opened before the erasure still offers the form: the service refuses.
    late = await signed_in.post(path, {"action": "reinstate", "reason": "Too late"})
    assert late.status_code == 409 and "already deleted" in late.text
    page = await signed_in.get(path)
    assert 'id="deleted-date"' in page.text and f"deleted-user-{member.id}" in page.text
    assert 'id="moderation"' not in page.text
    assert 'value="reinstate"' not in page.text and 'value="delete"' not in page.text
    # Nor is a tombstone unbanned or made an administrator.
    unban = await signed_in.post(path, {"action": "unban", "reason": "no"})
    assert unban.status_code == 409 and "already deleted" in unban.text
    promoted = await api.patch(
        f"/api/admin/users/{member.id}/", token=admin.access, json={"is_admin": True}
    )
    assert (promoted.status_code, promoted.json()["code"]) == (409, "account_deleted")
    user = await _user_api(api, admin, member.id)
    assert (user["is_active"], user["is_admin"]) == (False, False)
    # The lists tell a tombstone from a ban, in the page and in the API.
    deleted = await signed_in.get("/admin/users/?status=deleted")
    assert member.id in _listed(deleted)
    assert member.id not in _listed(await signed_in.get("/admin/users/?status=banned"))
    listed = await api.get("/api/admin/users/?status=deleted&page_size=100", token=admin.access)
    assert member.id in [u["id"] for u in listed.json()["results"]]
    banned = await api.get("/api/admin/users/?status=banned&page_size=100", token=admin.access)
    assert member.id not in [u["id"] for u in banned.json()["results"]]
    rows = await _audit(api, admin, target_type="user", target_id=member.id)
    assert [r["action"] for r in rows] == ["user.delete"]
