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
    assert throttled.headers["Retry-After"] == str(deps.settings.login_failure_window_seconds)
    await deps.limiter.reset(
        "login:account:" + __import__("hashlib").sha256(admin.email.encode()).hexdigest()
    )


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
    "/admin/ledger/",
    "/admin/orders/",
    "/admin/disputes/",
    "/admin/payments/",
    "/admin/audit/",
    "/admin/categories/",
    "/admin/packages/",
]


async def test_every_page_sends_the_strict_security_headers(signed_in):
    for path in [*PAGES, "/admin/login", "/admin/disputes/case?order=0"]:
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
