"""/metrics: Prometheus text through the real app, the token, and what the counters count.

The metrics of the apps in this process share the client's registry, so each test reads a
scrape before and after what it does and asserts the difference.
"""

from __future__ import annotations

import secrets

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from skillswap.http.metrics import loggable_uri
from skillswap.notifications.outgoing import MAIL_CODE
from tests.chat_support import wait_for, ws_connect
from tests.conftest import extra_server
from tests.factories import unique_name
from tests.outbox_support import outbox_settled

DURATION = "skillswap_http_request_duration_seconds"
METRICS_TOKEN = "metrics-token-for-the-test-0123456789"


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of an exposition: its name, labels and value."""
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def value(text: str, metric: str, /, **labels: str) -> float:
    """The sample `metric` with exactly `labels` (0 when it is not there yet)."""
    found = [v for n, got, v in samples(text) if n == metric and got == labels]
    assert len(found) <= 1, (metric, labels, found)
    return found[0] if found else 0.0


def label_values(text: str, name: str, label: str) -> set[str]:
    return {got[label] for n, got, _v in samples(text) if n == name and label in got}


async def scrape(client: httpx.AsyncClient | object, **kwargs: object) -> str:
    response = await client.get("/metrics", **kwargs)  # type: ignore[attr-defined]
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain"), response.headers
    return str(response.text)


async def test_requests_are_timed_under_their_route_template_never_the_raw_path(
    api, make_user, make_skill
):
    owner = await make_user()
    skill = await make_skill(owner)
    route = "/api/skills/{skill_id}/"
    before = await scrape(api)
    for _ in range(3):
        shown = await api.get(f"/api/skills/{skill['id']}/", token=owner.access)
        assert shown.status_code == 200
    missing = await api.get("/api/skills/999999999/", token=owner.access)
    assert missing.status_code == 404
    after = await scrape(api)

    def count(text: str, status: str) -> float:
        return value(text, f"{DURATION}_count", route=route, method="GET", status=status)

    assert count(after, "200") - count(before, "200") == 3
    assert count(after, "404") - count(before, "404") == 1
    routes = label_values(after, f"{DURATION}_count", "route")
    assert not any(str(skill["id"]) in r or "999999999" in r for r in routes), routes
    # Paths no route serves share one label, whatever they are.
    await api.get(f"/no/such/{skill['id']}/page")
    assert "unmatched" in label_values(await scrape(api), f"{DURATION}_count", "route")


async def test_the_scrape_has_every_family_the_dashboards_and_alerts_read(api):
    text = await scrape(api)
    names = {family.name for family in text_string_to_metric_families(text)}
    for name in (
        DURATION,
        "skillswap_http_requests_in_flight",
        "skillswap_websocket_connections",
        "skillswap_websocket_messages",
        "skillswap_realtime_bridge_lag_seconds",
        "skillswap_db_pool_connections_in_use",
        "skillswap_db_pool_waiting",
        "skillswap_db_pool_wait_seconds",
        "skillswap_outbox_rows",
        "skillswap_outbox_oldest_due_age_seconds",
        "skillswap_tasks",
        "skillswap_task_duration_seconds",
        "skillswap_scheduled_jobs",
        "skillswap_ledger_check_ok",
        "skillswap_ledger_transfers",
        "skillswap_payments",
        "skillswap_rate_limit_refusals",
    ):
        assert name in names, name
    # The scrape itself is in flight while it is rendered.
    assert value(text, "skillswap_http_requests_in_flight") >= 0
    for status in ("pending", "running", "failed"):
        assert value(text, "skillswap_outbox_rows", status=status) >= 0


async def test_a_sign_up_counts_its_mail_task_and_its_verification_the_bonus_transfer(
    api, deps, make_user
):
    before = await scrape(api)
    await make_user()  # registers, and confirms the emailed code
    await outbox_settled(deps)
    after = await scrape(api)
    done = value(after, "skillswap_tasks_total", task=MAIL_CODE, outcome="done") - value(
        before, "skillswap_tasks_total", task=MAIL_CODE, outcome="done"
    )
    assert done >= 1
    bonus = value(after, "skillswap_ledger_transfers_total", kind="signup_bonus") - value(
        before, "skillswap_ledger_transfers_total", kind="signup_bonus"
    )
    assert bonus == 1
    points = value(after, "skillswap_ledger_points_total", kind="signup_bonus") - value(
        before, "skillswap_ledger_points_total", kind="signup_bonus"
    )
    assert points == deps.settings.signup_bonus_points


async def test_the_metrics_token_is_asked_for_when_set(settings):
    async with (
        extra_server(settings.with_overrides(metrics_token=METRICS_TOKEN)) as (url, _deps),
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        none = await client.get("/metrics")
        assert none.status_code == 401
        assert none.headers["content-type"].startswith("application/problem+json")
        assert none.json()["code"] == "metrics_token_required"
        assert none.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
        assert wrong.status_code == 401
        assert wrong.json()["code"] == "invalid_token"
        # A user's access token is not the metrics token either.
        basic = await client.get("/metrics", headers={"Authorization": f"Basic {METRICS_TOKEN}"})
        assert basic.status_code == 401
        text = await scrape(client, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert f"# TYPE {DURATION} histogram" in text
        refused = await client.post(
            "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        )
        assert refused.status_code == 405


async def test_openmetrics_is_served_to_a_scraper_that_asks_for_it(api):
    response = await api.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


async def test_the_metrics_endpoint_is_not_in_the_api_document(api):
    document = (await api.get("/api/schema/")).json()
    assert "/metrics" not in document["paths"]


@pytest.mark.parametrize(
    ("path", "query", "logged"),
    [
        ("/api/skills/", "", "/api/skills/"),
        ("/api/skills/", "page=2&search=guitar", "/api/skills/?page=2&search=guitar"),
        (
            "/api/auth/oauth/google/callback/",
            "code=4%2F0Ab&state=xyz",
            "/api/auth/oauth/google/callback/?code=%5Bredacted%5D&state=%5Bredacted%5D",
        ),
        ("/ws/", "token=eyJhbGciOi", "/ws/?token=%5Bredacted%5D"),
    ],
)
def test_credentials_in_a_query_string_are_blanked_in_the_access_log(
    path: str, query: str, logged: str
):
    assert loggable_uri(path, query) == logged


async def test_a_refusal_by_a_rate_limit_is_counted_under_its_policy(settings):
    limited = settings.with_overrides(rate_limits="register=1/hour", trust_proxy_headers=True)
    async with (
        extra_server(limited) as (url, _deps),
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        here = {"X-Forwarded-For": f"10.77.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"}
        before = await scrape(client)

        async def register() -> httpx.Response:
            name = unique_name("rl")
            body = {"email": f"{name}@example.com", "username": name, "password": "pw " * 5}
            return await client.post("/api/auth/register/", json=body, headers=here)

        assert (await register()).status_code == 201
        refused = [await register(), await register()]
        assert [r.status_code for r in refused] == [429, 429]
        after = await scrape(client)
    name = "skillswap_rate_limit_refusals_total"
    assert value(after, name, policy="register") - value(before, name, policy="register") == 2


async def test_websocket_connections_and_frames_are_counted(api, server, make_user):
    user = await make_user()
    connections = "skillswap_websocket_connections"
    frames = "skillswap_websocket_messages_total"
    before = await scrape(api)
    client = await ws_connect(server, user.access)
    await client.send(type="ping")
    await client.of_type("pong")
    during = await scrape(api)
    assert value(during, connections) - value(before, connections) == 1
    assert value(during, frames, direction="in") - value(before, frames, direction="in") >= 1
    assert value(during, frames, direction="out") - value(before, frames, direction="out") >= 1
    client.conn.close()

    async def closed() -> bool:
        return value(await scrape(api), connections) == value(before, connections)

    await wait_for(closed, within=5, every=0.05)
