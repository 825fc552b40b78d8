"""The rate-limit policies: RATE_LIMITS parsing, whom a request counts against, and GCRA's exact
allowance and waits on a clock the test moves (in memory, and the Lua script on Redis)."""

from __future__ import annotations

import secrets

import pytest

from skillswap.auth.ratelimits import (
    DEFAULT_POLICIES,
    Decision,
    Limits,
    MemoryLimitStore,
    PolicyError,
    Rate,
    RedisLimitStore,
    parse_policies,
    parse_rate,
    subject_for,
)
from skillswap.settings import ConfigError, Settings
from tests.conftest import BACKENDS


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_empty_setting_keeps_every_default_policy() -> None:
    assert parse_policies("") == dict(DEFAULT_POLICIES)
    assert DEFAULT_POLICIES["order"] == Rate(30, 60)
    assert DEFAULT_POLICIES["register"] == Rate(5, 3600)


def test_named_policies_replace_their_defaults_only() -> None:
    policies = parse_policies(" Order=2/minute , report=100/15minutes,login=3/second")
    assert policies is not None
    assert policies["order"] == Rate(2, 60)
    assert policies["report"] == Rate(100, 900)
    assert policies["login"] == Rate(3, 1)
    assert policies["message"] == DEFAULT_POLICIES["message"]


def test_off_turns_every_limit_off() -> None:
    assert parse_policies("off") is None
    assert parse_policies(" OFF ") is None
    assert not Limits(parse_policies("off"), MemoryLimitStore()).enabled


@pytest.mark.parametrize(
    "unit,seconds", [("second", 1), ("minutes", 60), ("hour", 3600), ("day", 86400)]
)
def test_rates_are_counts_per_period(unit: str, seconds: int) -> None:
    assert parse_rate(f"7/{unit}") == Rate(7, seconds)
    assert parse_rate(f"7 / 2{unit}") == Rate(7, 2 * seconds)


def test_an_unknown_policy_is_a_startup_error_naming_the_known_ones() -> None:
    with pytest.raises(PolicyError, match=r"no policy named 'orders' \(there are: register, login"):
        parse_policies("orders=5/minute")


@pytest.mark.parametrize("bad", ["order=5/week", "order=0/minute", "order=five/minute", "order"])
def test_a_bad_rate_is_a_startup_error(bad: str) -> None:
    with pytest.raises(PolicyError, match="RATE_LIMITS"):
        parse_policies(bad)


def test_serving_validates_rate_limits_and_the_connection_cap() -> None:
    with pytest.raises(ConfigError, match="no policy named 'nope'"):
        Settings(rate_limits="nope=1/minute").validate_for_serving()
    with pytest.raises(ConfigError, match="WS_MAX_CONNECTIONS_PER_USER"):
        Settings(ws_max_connections_per_user=0).validate_for_serving()
    assert Settings.from_env({"RATE_LIMITS": "order=2/minute"}).rate_limits == "order=2/minute"


def test_a_signed_in_request_counts_against_its_user_wherever_it_comes_from() -> None:
    assert subject_for(42, "203.0.113.9") == subject_for(42, "198.51.100.1") == "user:42"


def test_an_anonymous_request_counts_against_its_address() -> None:
    assert subject_for(None, "203.0.113.9") == "ip:203.0.113.9"
    assert subject_for(None, "203.0.113.10") != subject_for(None, "203.0.113.9")


def test_ipv6_addresses_are_grouped_by_their_64_bit_prefix() -> None:
    one = subject_for(None, "2001:db8:1:2:aaaa::1")
    assert one == "ip:2001:db8:1:2::/64"
    assert subject_for(None, "2001:db8:1:2:ffff:ffff:ffff:ffff") == one
    assert subject_for(None, "2001:db8:1:3::1") != one
    # An IPv4 client seen through a dual-stack socket is its IPv4 address.
    assert subject_for(None, "::ffff:203.0.113.9") == "ip:203.0.113.9"


async def test_the_whole_quota_may_be_spent_at_once_then_one_returns_per_interval() -> None:
    clock = Clock()
    limits = Limits({"order": Rate(3, 60)}, MemoryLimitStore(clock))
    decisions = [await limits.take("order", "user:1") for _ in range(4)]
    assert [(d.allowed, d.remaining) for d in decisions if d] == [
        (True, 2),
        (True, 1),
        (True, 0),
        (False, 0),
    ]
    refused = decisions[3]
    assert refused is not None
    assert refused.retry_after == pytest.approx(20.0)
    clock.now += 19.9
    again = await limits.take("order", "user:1")
    assert again is not None and not again.allowed
    assert again.retry_after == pytest.approx(0.1)
    clock.now += 0.1
    back = await limits.take("order", "user:1")
    assert back is not None and back.allowed and back.remaining == 0
    # Another subject has its own budget.
    other = await limits.take("order", "user:2")
    assert other is not None and other.allowed and other.remaining == 2


@pytest.mark.parametrize(("count", "period"), [(1, 3600), (5, 3600), (3, 60), (20, 86400)])
async def test_a_full_quota_is_spent_at_any_moment_whatever_the_clock_reads(
    count: int, period: int
) -> None:
    # Floating seconds: at some readings of the clock `(now + interval) - now` exceeds
    # `interval` by an ulp, which once refused the last request of a quota spent at once.
    clock = Clock()
    for step in range(2_000):
        clock.now = 1_000.0 + step * 13.7113
        limits = Limits({"register": Rate(count, period)}, MemoryLimitStore(clock))
        taken = [await limits.take("register", "ip:10.0.0.1") for _ in range(count + 1)]
        assert [d.allowed for d in taken if d] == [True] * count + [False], clock.now


async def test_an_idle_subject_gets_its_whole_quota_back_and_no_more() -> None:
    clock = Clock()
    limits = Limits({"message": Rate(5, 10)}, MemoryLimitStore(clock))
    for _ in range(5):
        await limits.take("message", "user:1")
    clock.now += 3600
    allowed = [await limits.take("message", "user:1") for _ in range(6)]
    assert [d.allowed for d in allowed if d] == [True] * 5 + [False]


async def test_the_fields_follow_the_ratelimit_headers_draft() -> None:
    clock = Clock()
    limits = Limits({"order": Rate(30, 60)}, MemoryLimitStore(clock))
    first = await limits.take("order", "user:1")
    assert first is not None
    # 29 left, and 2 seconds (60 / 30) until the next returns.
    assert first.headers() == {
        "RateLimit-Policy": '"order";q=30;w=60',
        "RateLimit": '"order";r=29;t=2',
    }
    for _ in range(29):
        await limits.take("order", "user:1")
    clock.now += 0.5
    refused = await limits.take("order", "user:1")
    assert refused is not None
    assert refused.headers() == {
        "RateLimit-Policy": '"order";q=30;w=60',
        "RateLimit": '"order";r=0;t=2',
        "Retry-After": "2",
    }


async def test_a_refusal_is_a_429_naming_its_policy() -> None:
    decision = Decision("order", Rate(2, 60), False, 0, 12.2, 12.2)
    error = decision.refusal()
    assert (error.status, error.code) == (429, "rate_limited")
    assert error.extra == {"policy": "order", "retry_after": 13}
    assert error.headers["Retry-After"] == "13"


async def test_a_policy_left_unlimited_decides_nothing() -> None:
    limits = Limits(None, MemoryLimitStore())
    assert await limits.take("order", "user:1") is None


@pytest.mark.redis
async def test_the_redis_script_decides_exactly_as_the_memory_store() -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(BACKENDS.redis_url)
    try:
        store = RedisLimitStore(redis, prefix=f"test-limits-{secrets.token_hex(4)}:")
        rate = Rate(3, 60)
        clock = Clock()
        memory = MemoryLimitStore(clock)
        for clock.now in (1000.0, 1000.0, 1000.0, 1000.0, 1019.9, 1020.0, 1020.0, 1100.0):
            expected = await memory.take("k", rate)
            got = await store.take("k", rate, now=clock.now)
            assert got[:2] == expected[:2], clock.now
            assert got[2] == pytest.approx(expected[2], abs=1e-5), clock.now
    finally:
        await redis.aclose()


async def test_an_unreachable_redis_lets_requests_through(caplog: pytest.LogCaptureFixture) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        limits = Limits({"order": Rate(1, 60)}, RedisLimitStore(redis, prefix="x:"))
        assert await limits.take("order", "user:1") is None
        assert await limits.take("order", "user:1") is None
    finally:
        await redis.aclose()
    warnings = [r for r in caplog.records if "rate limits are off" in r.getMessage()]
    assert len(warnings) == 1
