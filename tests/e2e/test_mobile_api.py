"""What a mobile client leans on: ETags and 304, gzip when asked, and the API under /api/v1/.

Raw bytes are read with a client of their own (`raw_client`): the suite's `api` client decodes
gzip and reads every body for its schema check.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import AsyncIterator

import httpx
import pytest
from PIL import Image

from tests.chat_support import ws_connect
from tests.conftest import extra_server, media_folder

PROBLEM = "application/problem+json; charset=utf-8"
WEB = "https://app.skillswap.example"
SWAGGER_JS = "/static/vendor/swagger-ui/swagger-ui-bundle.js"


@pytest.fixture
async def raw_client(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as client:
        yield client


async def raw_get(
    client: httpx.AsyncClient, path: str, **headers: str
) -> tuple[httpx.Response, bytes]:
    """GET `path`; the answer and its body as it came over the wire (gzip not undone)."""
    async with client.stream("GET", path, headers=headers) as response:
        body = b"".join([chunk async for chunk in response.aiter_raw()])
    return response, body


def varies_on(response: httpx.Response) -> set[str]:
    return {name.strip().lower() for name in response.headers.get("vary", "").split(",")}


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


# -- ETag and 304 ---------------------------------------------------------------------------------


async def test_a_read_answers_its_own_etag_with_a_304_carrying_what_the_200_did(
    api, make_user, make_skill
):
    skill = await make_skill(await make_user())
    path = f"/api/skills/{skill['id']}/"
    first = await api.get(path)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag.startswith('W/"') and etag.endswith('"')
    assert first.headers["cache-control"] == "no-store"

    again = await api.get(path, headers={"If-None-Match": etag})
    assert (again.status_code, again.content) == (304, b"")
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == first.headers["cache-control"]
    assert varies_on(again) == varies_on(first) >= {"authorization", "accept-encoding"}
    assert "content-type" not in again.headers
    assert "content-encoding" not in again.headers
    assert again.headers["x-request-id"]

    head = await api.request("HEAD", path, headers={"If-None-Match": etag})
    assert (head.status_code, head.content, head.headers["etag"]) == (304, b"", etag)


@pytest.mark.parametrize(
    "if_none_match",
    [
        "{etag}",
        "{strong}",  # the same tag written strong: If-None-Match compares weakly
        '"not-it", {etag}',
        'W/"not-it",{strong}',
        "*",
    ],
)
async def test_if_none_match_takes_lists_weak_and_strong_forms_and_a_star(
    api, make_user, make_skill, if_none_match
):
    skill = await make_skill(await make_user())
    path = f"/api/skills/{skill['id']}/"
    etag = (await api.get(path)).headers["etag"]
    header = if_none_match.format(etag=etag, strong=etag.removeprefix("W/"))
    answer = await api.get(path, headers={"If-None-Match": header})
    assert (answer.status_code, answer.content, answer.headers["etag"]) == (304, b"", etag)


async def test_another_tag_or_a_changed_resource_gets_the_whole_answer(api, make_user, make_skill):
    owner = await make_user()
    skill = await make_skill(owner)
    path = f"/api/skills/{skill['id']}/"
    old = (await api.get(path)).headers["etag"]
    other = await api.get(path, headers={"If-None-Match": 'W/"0123", "4567"'})
    assert (other.status_code, other.headers["etag"]) == (200, old)
    assert other.json()["id"] == skill["id"]

    changed = await api.patch(path, token=owner.access, json={"title_en": "Knots, revised"})
    assert changed.status_code == 200
    after = await api.get(path, headers={"If-None-Match": old})
    assert after.status_code == 200
    assert after.json()["title_en"] == "Knots, revised"
    assert after.headers["etag"] != old


async def test_a_refusal_is_never_a_304_whatever_if_none_match_says(api):
    missing = await api.get("/api/skills/999999999/", headers={"If-None-Match": "*"})
    assert (missing.status_code, missing.headers["content-type"]) == (404, PROBLEM)
    assert "etag" not in missing.headers
    anonymous = await api.get("/api/auth/profile/", headers={"If-None-Match": "*"})
    assert anonymous.status_code == 401
    posted = await api.post("/api/auth/login/", json={}, headers={"If-None-Match": "*"})
    assert posted.status_code == 400


async def test_skills_pages_from_the_listing_cache_carry_the_tag_of_the_cached_body(
    api, make_user, make_category, make_skill
):
    owner = await make_user()
    category = await make_category()
    for _ in range(2):
        await make_skill(owner, category_id=category["id"])
    path = f"/api/skills/?category={category['id']}&ordering=newest"
    first = await api.get(path)
    cached = await api.get(path)  # the same read again: answered from the cache
    assert cached.content == first.content
    assert cached.headers["etag"] == first.headers["etag"]
    not_modified = await api.get(path, headers={"If-None-Match": first.headers["etag"]})
    assert (not_modified.status_code, not_modified.content) == (304, b"")

    await make_skill(owner, category_id=category["id"])  # a change empties the cache
    after = await api.get(path, headers={"If-None-Match": first.headers["etag"]})
    assert after.status_code == 200
    assert after.json()["count"] == 3

    tree = await api.get("/api/skills/categories/")
    again = await api.get(
        "/api/skills/categories/", headers={"If-None-Match": tree.headers["etag"]}
    )
    assert again.status_code == 304


async def test_a_private_answer_stays_private_and_another_users_tag_gets_them_their_own(
    api, make_user, make_skill
):
    alice, bob = await make_user(), await make_user()
    mine = await api.get("/api/auth/profile/", token=alice.access)
    assert mine.headers["cache-control"] == "no-store"
    etag = mine.headers["etag"]
    again = await api.get("/api/auth/profile/", token=alice.access, headers={"If-None-Match": etag})
    assert (again.status_code, again.headers["cache-control"]) == (304, "no-store")

    bobs = await api.get("/api/auth/profile/", token=bob.access, headers={"If-None-Match": etag})
    assert bobs.status_code == 200
    assert bobs.json()["id"] == bob.id
    assert bobs.headers["etag"] != etag

    # A paused skill: its owner's tag does not make it visible to anyone else.
    skill = await make_skill(alice)
    path = f"/api/skills/{skill['id']}/"
    paused = await api.patch(path, token=alice.access, json={"status": "paused"})
    assert paused.status_code == 200
    owners = await api.get(path, token=alice.access)
    assert owners.status_code == 200
    assert "authorization" in varies_on(owners)
    tag = {"If-None-Match": owners.headers["etag"]}
    assert (await api.get(path, headers=tag)).status_code == 404
    assert (await api.get(path, token=bob.access, headers=tag)).status_code == 404
    assert (await api.get(path, token=alice.access, headers=tag)).status_code == 304


async def test_a_web_app_on_a_configured_origin_may_send_if_none_match_and_read_the_etag(
    settings,
):
    async with (
        extra_server(settings.with_overrides(cors_origins=(WEB,))) as (url, _deps),
        httpx.AsyncClient(base_url=url) as client,
    ):
        preflight = await client.options(
            "/api/skills/categories/",
            headers={
                "Origin": WEB,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "if-none-match",
            },
        )
        assert preflight.status_code == 204
        assert "If-None-Match" in preflight.headers["Access-Control-Allow-Headers"].split(", ")
        first = await client.get("/api/skills/categories/", headers={"Origin": WEB})
        assert "ETag" in first.headers["Access-Control-Expose-Headers"].split(", ")
        again = await client.get(
            "/api/skills/categories/",
            headers={"Origin": WEB, "If-None-Match": first.headers["etag"]},
        )
    assert again.status_code == 304
    assert again.headers["Access-Control-Allow-Origin"] == WEB
    assert "ETag" in again.headers["Access-Control-Expose-Headers"].split(", ")
    assert varies_on(again) == varies_on(first) >= {"origin", "authorization", "accept-encoding"}


# -- gzip -----------------------------------------------------------------------------------------


async def test_json_is_gzipped_when_asked_with_the_same_etag_as_the_plain_answer(raw_client):
    zipped, wire = await raw_get(raw_client, "/api/schema/", **{"Accept-Encoding": "gzip"})
    plain, plain_body = await raw_get(raw_client, "/api/schema/", **{"Accept-Encoding": "identity"})
    assert zipped.status_code == plain.status_code == 200
    assert zipped.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in plain.headers
    assert int(zipped.headers["content-length"]) == len(wire) < len(plain_body) // 3
    assert gzip.decompress(wire) == plain_body
    assert zipped.headers["etag"] == plain.headers["etag"]
    assert zipped.headers["content-type"] == plain.headers["content-type"]
    assert "accept-encoding" in varies_on(zipped) and "accept-encoding" in varies_on(plain)

    # The tag of one answers the other (a cache revalidating either gets a 304, plain).
    for coding in ("gzip", "identity"):
        again, body = await raw_get(
            raw_client,
            "/api/schema/",
            **{"Accept-Encoding": coding, "If-None-Match": plain.headers["etag"]},
        )
        assert (again.status_code, body) == (304, b"")
        assert again.headers["etag"] == plain.headers["etag"]
        assert "content-encoding" not in again.headers
        assert "accept-encoding" in varies_on(again)


@pytest.mark.parametrize(
    "accept_encoding", ["gzip;q=0", "identity", "br", "*;q=0", "gzip;q=0, *", "gzip; q=nope"]
)
async def test_a_client_that_does_not_take_gzip_gets_plain_json(raw_client, accept_encoding):
    answer, body = await raw_get(raw_client, "/api/schema/", **{"Accept-Encoding": accept_encoding})
    assert answer.status_code == 200
    assert "content-encoding" not in answer.headers
    assert body.startswith(b'{"openapi":"3.1.0"')
    assert "accept-encoding" in varies_on(answer)


@pytest.mark.parametrize("accept_encoding", ["gzip, deflate, br", "br;q=1, gzip;q=0.5", "*"])
async def test_gzip_is_taken_however_the_client_lists_it(raw_client, accept_encoding):
    answer, body = await raw_get(raw_client, "/api/schema/", **{"Accept-Encoding": accept_encoding})
    assert answer.headers["content-encoding"] == "gzip"
    assert gzip.decompress(body).startswith(b'{"openapi":"3.1.0"')


async def test_a_small_answer_stays_plain(raw_client):
    answer, body = await raw_get(raw_client, "/healthz", **{"Accept-Encoding": "gzip"})
    assert answer.status_code == 200
    assert len(body) < 1024
    assert "content-encoding" not in answer.headers
    assert int(answer.headers["content-length"]) == len(body)
    assert "accept-encoding" in varies_on(answer)


async def test_a_large_problem_is_gzipped_like_json(raw_client):
    # A validation problem naming many unknown arguments is well over the minimum size.
    query = "&".join(f"unknown_argument_{n}=1" for n in range(60))
    answer, body = await raw_get(raw_client, f"/api/skills/?{query}", **{"Accept-Encoding": "gzip"})
    assert (answer.status_code, answer.headers["content-type"]) == (400, PROBLEM)
    assert answer.headers["content-encoding"] == "gzip"
    assert b'"code":"validation_error"' in gzip.decompress(body)


async def test_static_files_are_gzipped_but_never_a_range_of_them(raw_client):
    plain, plain_body = await raw_get(raw_client, SWAGGER_JS, **{"Accept-Encoding": "identity"})
    zipped, wire = await raw_get(raw_client, SWAGGER_JS, **{"Accept-Encoding": "gzip"})
    assert plain.status_code == zipped.status_code == 200
    assert zipped.headers["content-encoding"] == "gzip"
    assert gzip.decompress(wire) == plain_body
    # The file's version tag: strong on the plain bytes, weak on the gzipped ones.
    assert zipped.headers["etag"] == "W/" + plain.headers["etag"]
    revalidated, body = await raw_get(
        raw_client,
        SWAGGER_JS,
        **{"Accept-Encoding": "gzip", "If-None-Match": zipped.headers["etag"]},
    )
    assert (revalidated.status_code, body) == (304, b"")
    assert revalidated.headers["etag"] == zipped.headers["etag"]

    part, part_body = await raw_get(
        raw_client, SWAGGER_JS, **{"Accept-Encoding": "gzip", "Range": "bytes=0-99"}
    )
    assert part.status_code == 206
    assert "content-encoding" not in part.headers
    assert part_body == plain_body[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(plain_body)}"


async def test_images_from_media_are_sent_as_they_are(
    api, raw_client, deps, tmp_path, make_user, make_skill
):
    owner = await make_user()
    skill = await make_skill(owner)
    image = png()
    with media_folder(deps, tmp_path):
        uploaded = await api.post(
            f"/api/skills/{skill['id']}/images/",
            token=owner.access,
            content=image,
            headers={"Content-Type": "image/png"},
        )
        assert uploaded.status_code == 201, uploaded.text
        url = httpx.URL(uploaded.json()["url"])
        answer, body = await raw_get(raw_client, url.path, **{"Accept-Encoding": "gzip"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/png"
    assert "content-encoding" not in answer.headers
    assert int(answer.headers["content-length"]) == len(body)
    assert body[:8] == b"\x89PNG\r\n\x1a\n"


async def test_a_streamed_csv_export_is_gzipped_as_it_goes_and_decodes_whole(server, make_user):
    from tests.e2e.test_dashboard import dashboard

    admin = await make_user(admin=True)
    async with dashboard(server) as page:
        signed_in = await page.sign_in(admin.email, admin.password)
        assert signed_in.status_code == 303
        answer, wire = await raw_get(
            page.client,
            f"/admin/users/?search={admin.email}&format=csv",
            **{"Accept-Encoding": "gzip"},
        )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-encoding"] == "gzip"
    assert answer.headers["transfer-encoding"] == "chunked"  # written batch by batch
    assert "content-length" not in answer.headers
    lines = gzip.decompress(wire).decode("utf-8").lstrip("\ufeff").splitlines()
    assert lines[0].startswith("id,email,username,")
    assert [line.split(",")[1] for line in lines[1:]] == [admin.email]


async def test_the_metrics_scrape_is_gzipped_for_a_scraper_that_asks(raw_client):
    answer, body = await raw_get(raw_client, "/metrics", **{"Accept-Encoding": "gzip"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.headers["content-encoding"] == "gzip"
    assert b"# TYPE " in gzip.decompress(body)


async def test_the_websocket_upgrade_is_untouched_by_gzip(server, make_user):
    user = await make_user()
    socket = await ws_connect(server, user.access, headers={"Accept-Encoding": "gzip"})
    try:
        await socket.send(type="ping")
        assert (await socket.next()) == {"type": "pong"}
    finally:
        socket.close()


# -- /api/v1/ -------------------------------------------------------------------------------------


async def test_every_api_path_is_served_under_v1_by_the_same_handler(api, make_user, make_skill):
    owner = await make_user()
    skill = await make_skill(owner)
    for path in (
        f"/api/skills/{skill['id']}/",
        f"/api/skills/{skill['id']}",  # without its trailing slash too
        "/api/skills/categories/",
        f"/api/users/{owner.id}/",
    ):
        plain = await api.get(path)
        versioned = await api.get(path.replace("/api/", "/api/v1/", 1))
        assert (versioned.status_code, versioned.content) == (200, plain.content), path
        assert versioned.headers["etag"] == plain.headers["etag"]
    profile = await api.get("/api/v1/auth/profile/", token=owner.access)
    assert profile.json()["id"] == owner.id
    head = await api.request("HEAD", f"/api/v1/skills/{skill['id']}/")
    assert (head.status_code, head.content) == (200, b"")


async def test_v1_refuses_what_api_refuses_and_names_its_own_path(api):
    anonymous = await api.get("/api/v1/auth/profile/")
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "not_authenticated")
    missing = await api.get("/api/v1/skills/999999999/")
    assert missing.status_code == 404
    assert missing.json()["instance"] == "/api/v1/skills/999999999/"
    wrong_method = await api.request("PUT", "/api/v1/skills/")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "GET, HEAD, POST, OPTIONS"
    for unknown in ("/api/v2/skills/", "/api/v1/v1/skills/", "/v1/api/skills/"):
        assert (await api.get(unknown)).status_code == 404, unknown


async def test_links_keep_the_prefix_the_client_used(
    api, server, make_user, make_category, make_skill
):
    owner = await make_user()
    category = await make_category()
    for _ in range(2):
        await make_skill(owner, category_id=category["id"])
    query = f"?category={category['id']}&page_size=1&ordering=newest"
    versioned = (await api.get(f"/api/v1/skills/{query}")).json()
    assert versioned["next"].startswith(f"{server}/api/v1/skills/?")
    second = (await api.get(versioned["next"].removeprefix(server))).json()
    assert second["previous"].startswith(f"{server}/api/v1/skills/?")
    plain = (await api.get(f"/api/skills/{query}")).json()
    assert plain["next"].startswith(f"{server}/api/skills/?")
    assert [s["id"] for s in versioned["results"]] == [s["id"] for s in plain["results"]]

    # The standard envelope too (past the end of the list, so that it has a previous page).
    transactions = await api.get(
        "/api/v1/points/transactions/?page_size=1&page=2", token=owner.access
    )
    assert transactions.status_code == 200
    assert transactions.json()["previous"] == (
        f"{server}/api/v1/points/transactions/?page_size=1&page=1"
    )


async def test_a_creation_under_v1_names_it_under_v1_and_its_key_replays_under_either(
    api, server, make_user, make_category
):
    owner = await make_user()
    category = await make_category()
    body = {
        "title_en": "Splicing",
        "description_en": "Rope splices, one a lesson.",
        "price_points": 10,
        "level": "beginner",
        "delivery_days": 3,
        "category_id": category["id"],
    }
    key = {"Idempotency-Key": f"v1-{owner.id}"}
    created = await api.post("/api/v1/skills/", token=owner.access, json=body, headers=key)
    assert created.status_code == 201
    skill_id = created.json()["id"]
    assert created.headers["location"] == f"{server}/api/v1/skills/{skill_id}/"

    replayed = await api.post("/api/skills/", token=owner.access, json=body, headers=key)
    assert (replayed.status_code, replayed.headers["idempotent-replayed"]) == (201, "true")
    assert replayed.json()["id"] == skill_id
    assert replayed.headers["location"] == f"{server}/api/skills/{skill_id}/"

    other_body = await api.post(
        "/api/v1/skills/", token=owner.access, json={**body, "price_points": 11}, headers=key
    )
    assert other_body.status_code == 409
    mine = (await api.get("/api/skills/mine/", token=owner.access)).json()
    assert [s["id"] for s in mine["results"]].count(skill_id) == 1
    assert mine["count"] == 1


async def test_the_api_document_lists_each_path_once_and_says_v1_is_the_same(api):
    document = (await api.get("/api/schema/")).json()
    assert not [path for path in document["paths"] if path.startswith("/api/v1/")]
    assert "/api/skills/" in document["paths"]
    assert "/api/v1/" in document["info"]["description"]
    assert (await api.get("/api/v1/schema/")).json() == document


async def test_a_v1_request_is_timed_under_the_unversioned_route(api, make_user, make_skill):
    from tests.e2e.test_metrics import DURATION, label_values, scrape, value

    skill = await make_skill(await make_user())
    route = "/api/skills/{skill_id}/"
    before = await scrape(api)
    assert (await api.get(f"/api/v1/skills/{skill['id']}/")).status_code == 200
    after = await scrape(api)

    def count(text: str) -> float:
        return value(text, f"{DURATION}_count", route=route, method="GET", status="200")

    assert count(after) - count(before) == 1
    assert not [r for r in label_values(after, f"{DURATION}_count", "route") if "/v1/" in r]
