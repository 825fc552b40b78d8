"""The `skillswap` command as an operator runs it."""

from __future__ import annotations

import os
import subprocess

from sqlalchemy import select

from skillswap.models import User
from skillswap.settings import DEV_SECRET_KEY, ConfigError, Settings
from tests.conftest import REDIS_PREFIX, run_skillswap
from tests.factories import unique_name


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_skillswap(*args, env=env)


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        REDIS_PREFIX=REDIS_PREFIX,
        SECRET_KEY=settings.secret_key,
        LOG_LEVEL="WARNING",
        ARGON2_TIME_COST="1",
        ARGON2_MEMORY_KIB="1024",
    )
    env.update(extra)
    return env


async def test_createadmin_non_interactive_creates_then_promotes(settings, deps, api):
    name = unique_name("admin")
    done = _run(
        "createadmin",
        "--email",
        f"{name}@example.com",
        "--username",
        name,
        "--password",
        "a strong admin secret",
        env=_env(settings),
    )
    assert done.returncode == 0, done.stderr
    assert "created administrator" in done.stdout
    async with deps.db.read() as session:
        user = await session.scalar(select(User).where(User.username_key == name.lower()))
    assert user is not None and user.is_admin and user.email_verified
    login = await api.post(
        "/api/auth/login/", json={"username": name, "password": "a strong admin secret"}
    )
    assert login.json()["user"]["is_admin"] is True
    again = _run(
        "createadmin",
        "--email",
        f"{name}@example.com",
        "--username",
        name,
        "--password",
        "whatever it is 123",
        env=_env(settings),
    )
    assert again.returncode == 0
    assert "promoted" in again.stdout


async def test_createadmin_refuses_a_weak_password(settings):
    name = unique_name("admin")
    done = _run(
        "createadmin",
        "--email",
        f"{name}@example.com",
        "--username",
        name,
        "--password",
        "password",
        env=_env(settings),
    )
    assert done.returncode == 2
    assert "password" in done.stderr


def test_production_refuses_the_development_secret_key():
    settings = Settings(database_url="postgresql://x@localhost/db", secret_key=DEV_SECRET_KEY)
    try:
        settings.validate_for_serving()
    except ConfigError as exc:
        assert "SECRET_KEY" in str(exc)
    else:
        raise AssertionError("the development key was accepted in production")
    done = _run(
        "serve",
        "--port",
        "1",
        env={
            **os.environ,
            "DATABASE_URL": "postgresql://x@127.0.0.1:1/db",
            "SECRET_KEY": DEV_SECRET_KEY,
        },
    )
    assert done.returncode == 2
    assert "SECRET_KEY" in done.stderr


def test_embedded_default_needs_no_configuration():
    settings = Settings.from_env({})
    assert not settings.is_production
    assert settings.effective_database_url.startswith("sqlite+aiosqlite:///")
    settings.validate_for_serving()  # the development key is fine on the embedded default


def test_settings_read_typed_values_from_the_environment():
    settings = Settings.from_env(
        {
            "ACCESS_TOKEN_TTL_SECONDS": "60",
            "TRUST_PROXY_HEADERS": "yes",
            "WS_ALLOWED_ORIGINS": "https://a.example, https://b.example",
            "DATABASE_URL": "postgres://u@h/db",
        }
    )
    assert settings.access_token_ttl_seconds == 60
    assert settings.trust_proxy_headers is True
    assert settings.ws_allowed_origins == ("https://a.example", "https://b.example")
    assert settings.effective_database_url == "postgresql+asyncpg://u@h/db"
    try:
        Settings.from_env({"ACCESS_TOKEN_TTL_SECONDS": "soon"})
    except ConfigError as exc:
        assert "ACCESS_TOKEN_TTL_SECONDS" in str(exc)
    else:
        raise AssertionError("a non-number was accepted")
