"""Every link the API writes is absolute, and its host is one the operator chose: PUBLIC_URL when
set, otherwise the request's own host (checked against ALLOWED_HOSTS when that is set). A forged
`Host` header never lands in a link, a cached answer or the OAuth redirect when PUBLIC_URL is set.
"""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import tornado.testing
from PIL import Image

from skillswap.app import make_app, make_server
from skillswap.bootstrap import bootstrap
from tests.conftest import extra_server, media_folder
from tests.fakes.oidc_provider import FakeOIDCProvider
from tests.tls import client_ssl_context

PUBLIC = "https://api.skillswap.example"
FORGED = {"Host": "evil.example"}


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), (10, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
async def skill_with_image(api, deps, tmp_path, make_user, make_skill):  # type: ignore[no-untyped-def]
    """A skill of a fresh owner with one uploaded image (files under tmp_path)."""
    with media_folder(deps, tmp_path):
        yield await _upload(api, make_user, make_skill)


async def _upload(api, make_user, make_skill):  # type: ignore[no-untyped-def]
    owner = await make_user()
    skill = await make_skill(owner)
    for _ in range(2):  # a second skill, so that a page of one has a next page
        await make_skill(owner, category_id=skill["category"]["id"])
    uploaded = await api.post(
        f"/api/skills/{skill['id']}/images/",
        token=owner.access,
        content=png(),
        headers={"Content-Type": "image/png"},
    )
    assert uploaded.status_code == 201, uploaded.text
    return owner, skill, uploaded.json()


async def test_with_public_url_every_link_uses_it_whatever_the_host_header(
    settings, deps, skill_with_image
):
    owner, skill, image = skill_with_image
    async with (
        extra_server(
            settings.with_overrides(public_url=PUBLIC + "/"),
            storage=deps.storage,  # the same folder, the same URLs
        ) as (base, _other),
        httpx.AsyncClient(base_url=base, headers=FORGED) as client,
    ):
        page = await client.get(
            "/api/skills/", params={"owner": owner.id, "page_size": 1, "ordering": "newest"}
        )
        assert page.status_code == 200, page.text
        assert page.json()["next"].startswith(f"{PUBLIC}/api/skills/?")
        transactions = await client.get(
            "/api/points/transactions/",
            params={"page_size": 1, "page": 2},  # past the one entry: a previous link
            headers={"Authorization": f"Bearer {owner.access}"},
        )
        assert transactions.status_code == 200
        assert transactions.json()["previous"] == (
            f"{PUBLIC}/api/points/transactions/?page_size=1&page=1"
        )
        detail = await client.get(f"/api/skills/{skill['id']}/")
        (shown,) = detail.json()["images"]
        assert shown["url"] == f"{PUBLIC}/media/{image['url'].split('/media/', 1)[1]}"
        created = await client.post(
            "/api/skills/",
            headers={"Authorization": f"Bearer {owner.access}"},
            json={
                "title_en": "Bread",
                "description_en": "Sourdough.",
                "category_id": skill["category"]["id"],
                "price_points": 5,
            },
        )
        assert created.status_code == 201, created.text
        assert created.headers["Location"] == f"{PUBLIC}/api/skills/{created.json()['id']}/"
        home = await client.get("/")
        assert home.json()["docs"] == f"{PUBLIC}/api/docs/"
        assert home.json()["websocket"] == "wss://api.skillswap.example/ws/"
        browser = await client.get("/", headers={"Accept": "text/html"})
        assert browser.headers["Location"] == f"{PUBLIC}/api/docs/"


async def test_uploaded_image_url_is_absolute_on_the_request_host(api, server, skill_with_image):
    _owner, skill, image = skill_with_image
    host = urlsplit(server).netloc
    assert image["url"].startswith(f"http://{host}/media/skills/{skill['id']}/")
    detail = await api.get(f"/api/skills/{skill['id']}/")
    assert detail.json()["images"][0]["url"] == image["url"]


async def test_without_public_url_or_allowed_hosts_links_follow_the_request_host_and_the_cache_keeps_them_apart(
    api, skill_with_image
):
    # Documented: with neither PUBLIC_URL nor ALLOWED_HOSTS set, the Host header is echoed.
    # What must hold even then: one host's answer is never served to another from the cache.
    _owner, skill, _image = skill_with_image
    path = f"/api/skills/{skill['id']}/"
    for host in ("one.example", "two.example", "one.example"):
        answer = await api.get(path, headers={"Host": host})
        assert answer.status_code == 200
        assert answer.json()["images"][0]["url"].startswith(f"http://{host}/media/")


async def test_with_allowed_hosts_a_foreign_host_gets_no_links_at_all(settings, skill_with_image):
    _owner, skill, _image = skill_with_image
    async with extra_server(settings.with_overrides(allowed_hosts=("api.local",))) as (base, _d):
        port = urlsplit(base).port
        async with httpx.AsyncClient(base_url=base) as client:
            refused = await client.get(f"/api/skills/{skill['id']}/", headers=FORGED)
            assert refused.status_code == 400
            assert refused.json()["code"] == "host_not_allowed"
            allowed = await client.get("/", headers={"Host": f"api.local:{port}"})
            assert allowed.json()["docs"] == f"http://api.local:{port}/api/docs/"


async def test_oauth_redirect_uri_comes_from_public_url_not_the_host_header(settings):
    provider = FakeOIDCProvider()
    await provider.start()
    google = settings.with_overrides(
        public_url=PUBLIC,
        google_client_id=provider.client_id,
        google_client_secret=provider.client_secret,
        google_discovery_url=provider.discovery_url,
    )
    deps = await bootstrap(google, http=httpx.AsyncClient(verify=client_ssl_context(), timeout=10))
    server = make_server(make_app(google, deps), google)
    sock, port = tornado.testing.bind_unused_port()
    server.add_sockets([sock])
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            started = await client.get("/api/auth/oauth/google/", headers=FORGED)
            assert started.status_code == 302, started.text
            query = parse_qs(urlsplit(started.headers["Location"]).query)
            assert query["redirect_uri"] == [f"{PUBLIC}/api/auth/oauth/google/callback/"]
    finally:
        server.stop()
        await deps.close()
        await provider.stop()


async def test_page_links_keep_every_value_of_a_repeated_argument(api, deps, make_user):
    from tests.factories import place_order

    buyer, seller = await make_user(), await make_user()
    for _ in range(2):
        await place_order(api, deps, buyer, seller)
    page = await api.get(
        "/api/points/orders/?status=pending&status=accepted&page_size=1", token=buyer.access
    )
    assert page.status_code == 200 and page.json()["count"] == 2
    next_link = page.json()["next"]
    assert parse_qs(urlsplit(next_link).query) == {
        "status": ["pending", "accepted"],
        "page_size": ["1"],
        "page": ["2"],
    }
    following = await api.get(next_link, token=buyer.access)
    assert following.json()["count"] == 2 and len(following.json()["results"]) == 1
