"""The lesson call in a real browser (Debian's chromium through Playwright, its fake camera and
microphone): the buyer and the seller of a lesson open /lessons/call/ in two pages, one after the
other, and their peer connections reach `connected` through the server's `call` frames; the
seller hangs up and the buyer's page waits again. A screenshot of each page at each step."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser_support import WATCH_CSP, launch_chromium, needs_chromium, screenshot_path
from tests.chat_support import wait_for
from tests.e2e.test_lesson_calls import accepted_lesson, notices

pytestmark = needs_chromium

STATE = "document.getElementById('state').dataset.state"


async def _state_is(page: Any, state: str, within_ms: float = 30_000) -> None:
    # A locator, not wait_for_function: the page's CSP allows no eval.
    await page.locator(f"#state[data-state={state}]").wait_for(timeout=within_ms)


async def _remote_video_plays(page: Any) -> None:
    async def playing() -> bool:
        return bool(await page.evaluate("document.getElementById('remote').videoWidth > 0"))

    await wait_for(playing, within=15, every=0.1)


# Either may come first: the one who waits has the lower user id (the buyer, made first) or the
# higher, so both sides of the collision of offers are taken.
@pytest.mark.parametrize("first", ["buyer", "seller"])
async def test_two_pages_connect_a_lesson_call_through_the_servers_signalling(
    server, api, deps, make_user, first: str
) -> None:
    from playwright.async_api import async_playwright

    buyer, seller = await make_user(), await make_user()
    order = await accepted_lesson(api, deps, buyer, seller)
    errors: list[str] = []
    async with async_playwright() as p:
        browser = await launch_chromium(
            p, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"
        )
        try:
            pages = {}
            for who in ("buyer", "seller"):
                context = await browser.new_context(locale="en-US")
                await context.grant_permissions(["camera", "microphone"], origin=server)
                page = await context.new_page()
                await page.add_init_script(WATCH_CSP)
                page.on(
                    "console",
                    lambda m, who=who: (
                        errors.append(f"{who}: {m.text}") if m.type == "error" else None
                    ),
                )
                page.on("pageerror", lambda exc, who=who: errors.append(f"{who}: {exc}"))
                pages[who] = page

            async def shot(who: str, name: str) -> None:
                page = pages[who]
                assert await page.evaluate("window.__cspViolations") == [], (who, name)
                await page.screenshot(path=screenshot_path(f"lesson-call-{who}-{name}"))

            # The first comes by a link and waits: their offer goes out before anyone hears it.
            second = "seller" if first == "buyer" else "buyer"
            users = {"buyer": buyer, "seller": seller}
            waiting = pages[first]
            await waiting.goto(
                f"{server}/lessons/call/#token={users[first].access}&order={order['id']}"
            )
            await _state_is(waiting, "waiting")
            assert "token" not in waiting.url  # the fragment is dropped once read
            await shot(first, "waiting")
            # The second types their token and the order in.
            joining = pages[second]
            await joining.goto(f"{server}/lessons/call/")
            await joining.fill("input[name=token]", users[second].access)
            await joining.fill("input[name=order]", str(order["id"]))
            await joining.click("#join button[type=submit]")
            buyer_page, seller_page = pages["buyer"], pages["seller"]
            for page in (buyer_page, seller_page):
                await _state_is(page, "connected")
                # The other side's fake camera is playing here.
                await _remote_video_plays(page)
                assert (
                    await page.evaluate(
                        "document.getElementById('local').srcObject.getVideoTracks().length"
                    )
                    == 1
                )
            assert await buyer_page.locator("#problem").is_hidden()
            await shot("buyer", f"connected-{first}-first")
            await shot("seller", f"connected-{first}-first")

            await seller_page.click("#hangup")
            await _state_is(seller_page, "closed")
            await _state_is(buyer_page, "waiting")
            await shot("seller", f"hung-up-{first}-first")
            await shot("buyer", f"other-hung-up-{first}-first")
        finally:
            await browser.close()

    room = order["room_id"]

    async def both_notices() -> list[tuple[int, str]] | None:
        found = await notices(deps, room)
        return found if len(found) == 2 else None

    found = await wait_for(both_notices, within=5)
    assert [body for _sender, body in found] == ["call_started", "call_ended"]
    assert found[1][0] == seller.id
    assert errors == [], errors


async def test_the_page_tells_why_a_call_cannot_be_joined(server, api, deps, make_user) -> None:
    from playwright.async_api import async_playwright

    buyer, seller, stranger = await make_user(), await make_user(), await make_user()
    order = await accepted_lesson(api, deps, buyer, seller)
    async with async_playwright() as p:
        browser = await launch_chromium(p)
        try:
            page = await browser.new_page()
            await page.goto(f"{server}/lessons/call/#token={stranger.access}&order={order['id']}")
            problem = page.locator("#problem")
            await problem.wait_for(state="visible", timeout=10_000)
            assert "(order_not_found)" in await problem.inner_text()
            assert await page.evaluate(STATE) == "idle"
            await page.screenshot(path=screenshot_path("lesson-call-refused"))
        finally:
            await browser.close()
