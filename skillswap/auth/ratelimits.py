"""Named rate limits on what costs (sign-ups, sign-ins, orders, messages, payments...).

Each policy allows `limit` requests per `period` seconds to one subject: the signed-in user,
else the client's address (an IPv6 address by its /64, which one subscriber usually holds
whole). The algorithm is GCRA (the generic cell rate algorithm, a leaky bucket kept as one
timestamp): a subject may spend the whole `limit` at once, and one more request returns every
`period / limit` seconds; there is no window edge at which twice the limit gets through.

The state is one number per (policy, subject): in Redis, shared by every node, updated by a
short Lua script in one round trip; in memory on the embedded default. If Redis cannot be
reached the limits fail open (the request goes through, and that is logged once per outage):
a limiter must not turn a Redis restart into an outage of sign-in and ordering.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import redis.exceptions

from skillswap import metrics
from skillswap.errors import TooManyRequests
from skillswap.i18n import N_, lazy, lazy_plural

if TYPE_CHECKING:
    from skillswap.settings import Settings

log = logging.getLogger("skillswap.ratelimits")

_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE_RE = re.compile(r"^(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day)s?$")


@dataclass(frozen=True)
class Rate:
    """`limit` requests per `period` seconds."""

    limit: int
    period: int

    @property
    def interval(self) -> float:
        """Seconds after which one more request is allowed again."""
        return self.period / self.limit


DEFAULT_POLICIES: Mapping[str, Rate] = {
    "register": Rate(5, 3600),  # new accounts from one address
    "login": Rate(20, 60),  # sign-ins from one address (beside the failure throttle)
    "order": Rate(30, 60),  # orders placed by one user
    "message": Rate(60, 60),  # chat messages by one user, REST and WebSocket together
    "purchase": Rate(10, 60),  # payments started by one user
    "skill": Rate(20, 3600),  # skills listed by one user
    "resend": Rate(3, 3600),  # verification and password-reset mails asked for
    "report": Rate(10, 3600),  # reports filed by one user (REPORTS_PER_DAY caps the day)
    "export": Rate(3, 3600),  # copies of one's data asked for (one a day is built)
}


# What each policy counts, as a refused client is told it.
_COUNTED = {
    "register": N_("sign-ups"),
    "login": N_("sign-ins"),
    "order": N_("orders"),
    "message": N_("messages"),
    "purchase": N_("payments"),
    "skill": N_("new skills"),
    "resend": N_("emails asked for"),
    "report": N_("reports"),
    "export": N_("data exports"),
}


def parse_rate(text: str) -> Rate:
    """`30/minute`, `5/hour`, `100/15minutes`: a Rate, or ValueError saying what is wrong."""
    match = _RATE_RE.match(text.strip().lower())
    if match is None:
        raise ValueError(f"{text!r} is not a rate such as 30/minute")
    limit, count, unit = int(match[1]), int(match[2] or 1), match[3]
    if limit < 1 or count < 1:
        raise ValueError(f"{text!r}: the count and the period must be at least 1")
    return Rate(limit, count * _PERIODS[unit])


class PolicyError(ValueError):
    """RATE_LIMITS names a policy that does not exist or a rate that is not one (the settings
    turn it into their ConfigError: this module does not import them)."""


def parse_policies(text: str) -> dict[str, Rate] | None:
    """RATE_LIMITS as the policies in force (the defaults for those it leaves out); None: off."""
    if text.strip().lower() == "off":
        return None
    policies = dict(DEFAULT_POLICIES)
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, rate = item.partition("=")
        name = name.strip().lower()
        if not sep:
            raise PolicyError(f"RATE_LIMITS: {item!r} is not name=rate (e.g. order=30/minute)")
        if name not in DEFAULT_POLICIES:
            known = ", ".join(DEFAULT_POLICIES)
            raise PolicyError(f"RATE_LIMITS: no policy named {name!r} (there are: {known})")
        try:
            policies[name] = parse_rate(rate)
        except ValueError as exc:
            raise PolicyError(f"RATE_LIMITS: {name}: {exc}") from None
    return policies


def subject_for(user_id: int | None, address: str | None) -> str:
    """Whom a request counts against: its user, else its address (IPv6 by its /64)."""
    if user_id is not None:
        return f"user:{user_id}"
    try:
        ip = ipaddress.ip_address((address or "").split("%")[0])
    except ValueError:
        return f"ip:{address or 'unknown'}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"ip:{ip.ipv4_mapped}"
        return f"ip:{ipaddress.IPv6Network((ip, 64), strict=False)}"
    return f"ip:{ip}"


@dataclass(frozen=True)
class Decision:
    """One request's outcome under a policy, with what the client is told of it."""

    policy: str
    rate: Rate
    allowed: bool
    remaining: int
    # Seconds until one more request is allowed: the wait when refused, 0 while some are left.
    retry_after: float
    # Seconds within which no more than `remaining` can be used (until one more returns).
    reset: float

    def headers(self) -> dict[str, str]:
        """The RateLimit fields (draft-ietf-httpapi-ratelimit-headers-11), Retry-After if refused."""
        fields = {
            "RateLimit-Policy": f'"{self.policy}";q={self.rate.limit};w={self.rate.period}',
            "RateLimit": f'"{self.policy}";r={self.remaining};t={math.ceil(self.reset)}',
        }
        if not self.allowed:
            fields["Retry-After"] = str(self.retry_after_seconds)
        return fields

    @property
    def retry_after_seconds(self) -> int:
        return max(1, math.ceil(self.retry_after))

    def refusal(self) -> TooManyRequests:
        """The 429 `rate_limited` a refused request answers, naming its policy."""
        seconds = self.retry_after_seconds
        return TooManyRequests(
            lazy_plural(
                "Too many {what} for now. Try again in {n} second.",
                "Too many {what} for now. Try again in {n} seconds.",
                seconds,
                what=lazy(_COUNTED[self.policy]),
            ),
            code="rate_limited",
            headers=self.headers(),
            extra={"policy": self.policy, "retry_after": seconds},
        )


_SLACK = 1e-6  # seconds


def gcra(tat: float | None, now: float, rate: Rate) -> tuple[float | None, int, float, float]:
    """One request at `now` against the theoretical arrival time `tat` (None: never seen).

    Returns the new `tat` (None: refused, keep the old one), the requests left, the wait
    before the next is allowed and the seconds until one more returns. The Lua script below
    is this function, line for line, on Redis's clock.
    """
    interval, period = rate.interval, float(rate.period)
    new_tat = max(tat if tat is not None else now, now) + interval
    debt = new_tat - now  # how far ahead of an idle subject this request puts it
    # In floating seconds `(now + interval) - now` may come out an ulp above `interval`, which
    # refused the last request of a full quota (the first of 1/hour) at one `now` in six; a
    # microsecond of slack is what the script's integer microseconds give exactly.
    if debt > period + _SLACK:
        wait = debt - period
        return None, 0, wait, wait
    remaining = math.floor((period - debt) / interval + 1e-9)
    return new_tat, remaining, 0.0, debt - period + (remaining + 1) * interval


# KEYS[1]: the subject's key. ARGV: interval and period in microseconds, and optionally `now`
# (tests); otherwise Redis's own clock, so that nodes whose clocks differ agree.
_GCRA_LUA = """
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local debt = new_tat - now
if debt > period then
  return {0, 0, tostring(debt - period)}
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(debt / 1000))
local remaining = math.floor((period - debt) / interval + 1e-9)
return {1, remaining, tostring(debt - period + (remaining + 1) * interval)}
"""


class LimitStore(Protocol):
    """Where the policies' state lives (Redis or this process's memory)."""

    async def take(self, key: str, rate: Rate) -> tuple[bool, int, float]:
        """Spend one request of `key` under `rate`: (allowed, remaining, seconds to wait/reset)."""
        ...


class MemoryLimitStore:
    """The embedded default: one process, so its own memory is the truth."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tats: dict[str, float] = {}

    async def take(self, key: str, rate: Rate) -> tuple[bool, int, float]:
        now = self._clock()
        if len(self._tats) > 100_000:  # forget subjects that are idle again
            self._tats = {k: tat for k, tat in self._tats.items() if tat > now}
        new_tat, remaining, _wait, reset = gcra(self._tats.get(key), now, rate)
        if new_tat is None:
            return False, 0, reset
        self._tats[key] = new_tat
        return True, remaining, reset


class RedisLimitStore:
    """Shared by every node: one EVALSHA per request (redis-py loads the script once)."""

    def __init__(self, redis: Any, *, prefix: str) -> None:
        self._prefix = prefix
        self._script = redis.register_script(_GCRA_LUA)

    async def take(
        self, key: str, rate: Rate, *, now: float | None = None
    ) -> tuple[bool, int, float]:
        args = [round(rate.interval * 1e6), rate.period * 1_000_000]
        if now is not None:
            args.append(round(now * 1e6))
        allowed, remaining, reset = await self._script(keys=[self._prefix + key], args=args)
        return bool(allowed), int(remaining), float(reset) / 1e6


_UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class Limits:
    """The policies in force over a store: what handlers and the WebSocket ask."""

    def __init__(self, policies: Mapping[str, Rate] | None, store: LimitStore) -> None:
        self.policies: Mapping[str, Rate] = policies or {}
        self._store = store
        self._failing_open = False

    @property
    def enabled(self) -> bool:
        """False with RATE_LIMITS=off: nothing is counted and no header is sent."""
        return bool(self.policies)

    def rate(self, policy: str) -> Rate | None:
        return self.policies.get(policy)

    async def take(self, policy: str, subject: str) -> Decision | None:
        """Spend one request of `subject` under `policy`; None when it is not limited now."""
        rate = self.policies.get(policy)
        if rate is None:
            return None
        try:
            allowed, remaining, wait = await self._store.take(f"{policy}:{subject}", rate)
        except _UNREACHABLE as exc:
            if not self._failing_open:
                self._failing_open = True
                log.warning("rate limits are off until Redis answers again (%s)", exc)
            return None
        if self._failing_open:
            self._failing_open = False
            log.warning("rate limits are back: Redis answers again")
        if not allowed:
            metrics.RATE_LIMIT_REFUSALS.labels(policy).inc()  # every caller refuses it with 429
        return Decision(
            policy=policy,
            rate=rate,
            allowed=allowed,
            remaining=remaining,
            retry_after=0.0 if allowed else wait,
            reset=wait,
        )


def build_limits(settings: Settings, redis: Any | None) -> Limits:
    """RATE_LIMITS over Redis when there is one, else over this process's memory."""
    policies = parse_policies(settings.rate_limits)
    if redis is None:
        return Limits(policies, MemoryLimitStore())
    return Limits(policies, RedisLimitStore(redis, prefix=f"{settings.redis_prefix}limits:"))


def no_limits() -> Limits:
    """Limits that limit nothing (RATE_LIMITS=off)."""
    return Limits(None, MemoryLimitStore())
