"""The dashboard in a real browser (Debian's chromium through Playwright), in English and in
Arabic: sign in, the overview's charts and its range picker, ban and unban a user, a user's
page, delete a user's account and reinstate it, hide a skill, close a report, resolve a dispute, adjust a wallet, refund a payment; no
console error and no CSP violation on any page; a screenshot of every page."""

from __future__ import annotations

from typing import Any

from tests.browser_support import WATCH_CSP, launch_chromium, needs_chromium, screenshot_path
from tests.factories import TestUser, insert_skill
from tests.payments_support import Shop, stripe_shop

pytestmark = needs_chromium


async def _paid_payment(shop: Shop) -> tuple[TestUser, int]:
    buyer = await shop.user()
    payment = await shop.buy(buyer, await shop.package(points=100, price_minor=500))
    session_id = await shop.session_of(payment["id"])
    shop.stripe.pay(session_id)
    await shop.send(shop.stripe.session_event("checkout.session.completed", session_id))
    return buyer, int(payment["id"])


async def _disputed_order(shop: Shop) -> int:
    buyer, seller = await shop.user(), await shop.user()
    skill_id = await insert_skill(shop.deps, owner_id=seller.id, price=10)
    placed = await shop.api.post(
        "/api/points/orders/", token=buyer.access, json={"skill_id": skill_id}
    )
    order_id = int(placed.json()["id"])
    for who, action in ((seller, "accept"), (seller, "deliver"), (buyer, "dispute")):
        done = await shop.api.post(
            f"/api/points/orders/{order_id}/{action}/", token=who.access, json={}
        )
        assert done.status_code == 200, done.text
    return order_id


async def _cases(shop: Shop) -> dict[str, Any]:
    """What one language's run acts on: its own user, skill, dispute and payment."""
    member = await shop.user()
    owner = await shop.user()
    skill_id = await insert_skill(shop.deps, owner_id=owner.id, price=5)
    buyer, payment_id = await _paid_payment(shop)
    reporter = await shop.user()
    filed = await shop.api.post(
        "/api/reports/",
        token=reporter.access,
        json={"target_type": "user", "target_id": owner.id, "reason": "abuse"},
    )
    assert filed.status_code == 201, filed.text
    return {
        "report_id": int(filed.json()["id"]),
        "member": member,
        "owner": owner,
        "skill_id": skill_id,
        "order_id": await _disputed_order(shop),
        "buyer": buyer,
        "payment_id": payment_id,
    }


async def test_the_dashboard_works_in_a_real_browser_in_english_and_arabic() -> None:
    from playwright.async_api import async_playwright

    async with stripe_shop() as shop, async_playwright() as p:
        admin = await shop.user(admin=True)
        browser = await launch_chromium(p)
        try:
            for lang in ("en", "ar"):
                await _run(browser, shop, admin, lang, await _cases(shop))
        finally:
            await browser.close()
        await shop.assert_ledger_clean()


async def _run(browser: Any, shop: Shop, admin: TestUser, lang: str, case: dict[str, Any]) -> None:
    context = await browser.new_context(locale="en-US")
    page = await context.new_page()
    await page.add_init_script(WATCH_CSP)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    base = shop.url

    async def shot(name: str) -> None:
        violations = await page.evaluate("window.__cspViolations")
        assert violations == [], (name, violations)
        direction = "rtl" if lang == "ar" else "ltr"
        assert await page.get_attribute("html", "dir") == direction, name
        assert await page.get_attribute("html", "lang") == lang, name
        await page.screenshot(path=screenshot_path(f"dashboard-{lang}-{name}"), full_page=True)

    async def flashed() -> None:
        await page.wait_for_selector(".flash", timeout=10_000)
        assert await page.locator(".problem").count() == 0

    await page.goto(f"{base}/admin/login?lang={lang}")
    await shot("login")
    await page.fill("input[name=email]", admin.email)
    await page.fill("input[name=password]", admin.password)
    await page.click("form button[type=submit]")
    await page.wait_for_url(f"{base}/admin/")
    assert await page.locator(".chart svg").count() >= 5
    assert await page.locator("#figure-orders-placed .value").inner_text()
    await shot("overview")
    await page.select_option("#range select[name=interval]", "week")
    await page.click("#range button[type=submit]")
    await page.wait_for_url("**interval=week**")
    assert await page.locator(".chart svg title").count() >= 5
    await shot("overview-by-week")

    member = case["member"]
    await page.goto(f"{base}/admin/users/?search={member.username}")
    row = page.locator(f"#user-{member.id}")
    await row.locator("input[name=reason]").fill("spam")
    await row.locator("button[value=ban]").click()
    await flashed()
    await shot("users-banned")
    await page.locator(f"#user-{member.id} input[name=reason]").fill("appeal upheld")
    await page.locator(f"#user-{member.id} button[value=unban]").click()
    await flashed()
    await shot("users")
    await page.click(f"#user-{member.id} a[href='/admin/users/{member.id}/']")
    await page.wait_for_selector("#wallet")
    await shot("user")
    await page.fill("#leaving input[name=reason]", "asked by mail")
    await page.click("#leaving button[value=delete]")
    await flashed()
    assert await page.locator("#deletion-date").count() == 1
    await shot("user-deletion-scheduled")
    await page.fill("#leaving input[name=reason]", "changed their mind")
    await page.click("#leaving button[value=reinstate]")
    await flashed()
    assert await page.locator("#leaving button[value=delete]").count() == 1

    await page.goto(f"{base}/admin/skills/?owner={case['owner'].id}")
    row = page.locator(f"#skill-{case['skill_id']}")
    await row.locator("input[name=note]").fill("misleading title")
    await row.locator("button[type=submit]").click()
    await flashed()
    await shot("skills")

    await page.goto(f"{base}/admin/reports/")
    await shot("reports-queue")
    row = page.locator(f"#report-{case['report_id']}")
    await row.locator("select[name=outcome]").select_option("warned")
    await row.locator("textarea[name=note]").fill("told by mail")
    await row.locator("button[type=submit]").click()
    await flashed()
    await page.goto(f"{base}/admin/reports/?status=all")
    assert await page.locator(f"#report-{case['report_id']} form").count() == 0
    await shot("reports-closed")

    await page.goto(f"{base}/admin/disputes/")
    await shot("disputes")
    await page.goto(f"{base}/admin/disputes/case?order={case['order_id']}")
    await page.check("#resolve input[value=release]")
    await page.click("#resolve button[type=submit]")
    await flashed()
    await shot("dispute-resolved")

    await page.goto(f"{base}/admin/ledger/")
    await page.fill("#adjust input[name=user_id]", str(member.id))
    await page.fill("#adjust input[name=amount]", "15")
    await page.fill("#adjust input[name=reason]", "goodwill")
    await page.click("#adjust button[type=submit]")
    await flashed()
    await shot("ledger")

    await page.goto(f"{base}/admin/payments/")
    row = page.locator(f"#payment-{case['payment_id']}")
    await row.locator("summary").click()
    await row.locator("input[name=reason]").fill("asked by the buyer")
    await row.locator("button[type=submit]").click()
    await flashed()
    await shot("payments")

    for name in ("orders", "audit", "categories", "packages"):
        await page.goto(f"{base}/admin/{name}/")
        await shot(name)

    assert errors == [], errors
    await context.close()

    # What the browser did, as the API sees it.
    api, token = shop.api, admin.access
    user = (await api.get(f"/api/admin/users/{member.id}/", token=token)).json()["user"]
    assert user["is_active"] is True
    assert user["deletion_scheduled_for"] is None
    audited = await api.get(
        f"/api/admin/audit/?target_type=user&target_id={member.id}&sort=id", token=token
    )
    actions = [r["action"] for r in audited.json()["results"]]
    assert actions[-2:] == ["user.delete", "user.reinstate"], actions
    assert (await api.get(f"/api/skills/{case['skill_id']}/")).status_code == 404
    order = await api.get(f"/api/points/orders/{case['order_id']}/", token=case["owner"].access)
    assert order.status_code == 404  # not theirs; the admin's view:
    admin_order = await api.get(f"/api/points/orders/{case['order_id']}/", token=token)
    assert admin_order.json()["status"] == "resolved"
    payment = await shop.payment(case["payment_id"])
    assert payment.status == "refunded"
    closed = await api.get("/api/admin/reports/?status=closed&page_size=100", token=token)
    report = next(r for r in closed.json()["results"] if r["id"] == case["report_id"])
    assert (report["outcome"], report["note"]) == ("warned", "told by mail")
