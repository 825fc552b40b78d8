"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from skillswap.errors import ServiceUnavailable
from skillswap.http.base import BaseHandler, public, route
from skillswap.http.operations import operation
from skillswap.http.schemas import Health, Readiness
from skillswap.i18n import all_of, lazy

# What the readiness message calls each service (the codes stay in `checks` and `down`).
SERVICE_LABELS = {"database": lazy("database"), "redis": lazy("Redis")}


class HealthHandler(BaseHandler):
    @operation("getHealth", tag="Operations", response=Health)
    @public
    async def get(self) -> None:
        """The process is alive and serving."""
        self.send({"status": "ok"})


class ReadyHandler(BaseHandler):
    @operation("getReadiness", tag="Operations", response=Readiness, problems=(503,))
    @public
    async def get(self) -> None:
        """The database (and Redis, when configured) answer; 503 naming what is down otherwise."""
        checks: dict[str, str] = {}
        down: list[str] = []
        try:
            await asyncio.wait_for(self.deps.db.ping(), timeout=3)
            checks["database"] = "ok"
        except Exception:
            checks["database"] = "down"
            down.append("database")
        if self.deps.redis is not None:
            try:
                await asyncio.wait_for(self.deps.redis.ping(), timeout=3)
                checks["redis"] = "ok"
            except Exception:
                checks["redis"] = "down"
                down.append("redis")
        if down:
            raise ServiceUnavailable(
                lazy(
                    "Not ready: {services} unreachable.",
                    services=all_of(SERVICE_LABELS.get(name, name) for name in down),
                ),
                code="not_ready",
                extra={"checks": checks, "down": down},
            )
        self.send({"status": "ready", "checks": checks})


routes = [route("/healthz", HealthHandler), route("/readyz", ReadyHandler)]
