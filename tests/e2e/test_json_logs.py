"""LOG_FORMAT=json on a real `serve`: every line one JSON object, the access line of each
request with its route, status, duration, request id and user id, and not one of the secrets
the session used anywhere in the log: passwords, tokens, emailed codes, the webhook secret
and its signatures, the metrics token, the signing key.

Mail goes over real SMTP (tests/smtp_server.py), so codes are read out of the delivered mails
as a person would copy them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx

from tests.chat_support import wait_for
from tests.conftest import free_port, node_env, own_database
from tests.factories import unique_name
from tests.processes import skillswap
from tests.smtp_server import SmtpServer

VERIFY_CODE = re.compile(r"confirm your email address: ([\w-]+)$", re.MULTILINE)
RESET_CODE = re.compile(r"choose a new password: ([\w-]+)\. ")
WEBHOOK_SECRET = "whsec_json_logs_test_0123456789abcdef"
STRIPE_KEY = "sk_test_json_logs_0123456789abcdef"
METRICS_TOKEN = "metrics-token-json-logs-0123456789"


def stripe_signature(body: bytes, secret: str) -> str:
    stamp = int(time.time())
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={mac}"


async def mail_to(smtp: SmtpServer, address: str, pattern: re.Pattern[str], count: int) -> str:
    """The code in the `count`-th mail to `address`, once it has arrived."""
    await wait_for(lambda: len(smtp.to(address)) >= count, within=20, every=0.1)
    found = pattern.search(smtp.to(address)[count - 1].text)
    assert found, smtp.to(address)[count - 1].text
    return found.group(1)


async def test_json_logs_are_one_object_per_line_and_hold_no_secret(tmp_path: Path):
    secrets_used: list[str] = [WEBHOOK_SECRET, STRIPE_KEY, METRICS_TOKEN]
    with SmtpServer() as smtp:
        async with own_database() as own:
            port = free_port()
            env = {
                # No Redis: this one process is its own worker, so mails leave from it too.
                **node_env(own, redis_url=""),
                "LOG_FORMAT": "json",
                "LOG_LEVEL": "DEBUG",
                "SMTP_HOST": "127.0.0.1",
                "SMTP_PORT": str(smtp.port),
                "SMTP_TLS": "none",
                "EMAIL_FROM": "SkillSwap <no-reply@skillswap.test>",
                "STRIPE_SECRET_KEY": STRIPE_KEY,
                "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "STRIPE_API_BASE": "http://127.0.0.1:9",
                "METRICS_TOKEN": METRICS_TOKEN,
                "ARGON2_TIME_COST": "1",
                "ARGON2_MEMORY_KIB": "1024",
            }
            secrets_used.append(own.secret_key)
            serve = await skillswap("serve", "serve", "--port", str(port), env=env, logs=tmp_path)
            try:
                async with httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}", timeout=20
                ) as client:
                    user_id = await _a_session_with_secrets(client, smtp, serve, secrets_used)
            finally:
                assert await serve.stop() == 0, serve.log()
    lines = [line for line in serve.log().splitlines() if line.strip()]
    assert lines
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
    text = serve.log()
    for secret in secrets_used:
        assert secret not in text, f"a secret reached the log: {secret[:6]}..."
    profile = [
        r
        for r in records
        if r["logger"] == "tornado.access" and r.get("route") == "/api/auth/profile/"
    ]
    assert profile, "no access line for the profile"
    line = profile[-1]
    assert line["status"] == 200
    assert line["method"] == "GET"
    assert line["user_id"] == user_id
    assert isinstance(line["duration_ms"], float | int)
    assert re.fullmatch(r"[0-9a-f]{32}", line["request_id"])
    assert line["pid"] == serve.process.pid


async def _a_session_with_secrets(
    client: httpx.AsyncClient, smtp: SmtpServer, serve: Any, secrets_used: list[str]
) -> int:
    """Sign up, confirm, sign in, refresh, reset the password, sign in again, read the profile
    and the metrics, receive a webhook: every secret involved goes into `secrets_used`."""

    async def answers() -> bool:
        if not serve.running:
            raise RuntimeError(serve.log())
        try:
            return (await client.get("/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    await wait_for(answers, within=60, every=0.2)
    name = unique_name("logs")
    address = f"{name}@example.com"
    password = f"first password {unique_name()}"
    secrets_used.append(password)
    registered = await client.post(
        "/api/auth/register/", json={"email": address, "username": name, "password": password}
    )
    assert registered.status_code == 201, registered.text
    body = registered.json()
    secrets_used += [body["access"], body["refresh"]]
    user_id = int(body["user"]["id"])
    code = await mail_to(smtp, address, VERIFY_CODE, 1)
    secrets_used.append(code)
    verified = await client.post("/api/auth/verify-email/", json={"token": code})
    assert verified.status_code == 200, verified.text

    signed_in = await client.post("/api/auth/login/", json={"email": address, "password": password})
    assert signed_in.status_code == 200, signed_in.text
    secrets_used += [signed_in.json()["access"], signed_in.json()["refresh"]]
    # A wrong password is refused and logged as a refusal, never with what was typed.
    wrong = f"wrong password {unique_name()}"
    secrets_used.append(wrong)
    refused = await client.post("/api/auth/login/", json={"email": address, "password": wrong})
    assert refused.status_code == 401
    refreshed = await client.post(
        "/api/auth/refresh/", json={"refresh": signed_in.json()["refresh"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    secrets_used += [refreshed.json()["access"], refreshed.json()["refresh"]]

    asked = await client.post("/api/auth/password/reset/", json={"email": address})
    assert asked.status_code in (200, 202), asked.text
    reset_code = await mail_to(smtp, address, RESET_CODE, 2)
    secrets_used.append(reset_code)
    new_password = f"second password {unique_name()}"
    secrets_used.append(new_password)
    confirmed = await client.post(
        "/api/auth/password/reset/confirm/",
        json={"token": reset_code, "new_password": new_password},
    )
    assert confirmed.status_code == 200, confirmed.text
    again = await client.post("/api/auth/login/", json={"email": address, "password": new_password})
    assert again.status_code == 200, again.text
    access = again.json()["access"]
    secrets_used += [access, again.json()["refresh"]]
    profile = await client.get("/api/auth/profile/", headers={"Authorization": f"Bearer {access}"})
    assert profile.status_code == 200
    # A token in a query string (the WebSocket handshake takes one there) is blanked too.
    await client.get(f"/api/skills/?token={access}")

    scraped = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert scraped.status_code == 200
    event = json.dumps(
        {
            "id": f"evt_{unique_name()}",
            "type": "checkout.session.completed",
            "data": {"object": {"id": "cs_test_unknown", "object": "checkout.session"}},
        }
    ).encode()
    signature = stripe_signature(event, WEBHOOK_SECRET)
    secrets_used.append(signature.split("v1=")[1])
    webhook = await client.post(
        "/api/payments/stripe/webhook/",
        content=event,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
    )
    assert webhook.status_code == 200, webhook.text
    return user_id
