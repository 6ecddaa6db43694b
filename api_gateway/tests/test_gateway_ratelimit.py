"""Rate-limit decisions, their headers, and the in-process fallback when Redis is gone."""

import time

import pytest
from api_gateway.config import GatewaySettings
from api_gateway.ratelimit import RateLimiter
from gateway_apps import closed_port
from limits import parse
from pydantic import ValidationError
from redis.exceptions import ResponseError

from conftest import TEST_KEY

POLICIES = {"default": parse("3/hour"), "login": parse("2/hour")}


async def test_requests_over_the_limit_are_refused_with_retry_after() -> None:
    limiter = RateLimiter(POLICIES, None)
    decisions = [await limiter.hit("default", "user:ana") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    last = decisions[-1]
    assert 1 <= last.reset_after <= 3600
    assert last.headers()["Retry-After"] == str(last.reset_after)
    assert "Retry-After" not in decisions[0].headers()


async def test_keys_and_policies_are_counted_apart() -> None:
    limiter = RateLimiter(POLICIES, None)
    for _ in range(3):
        await limiter.hit("default", "user:ana")
    assert (await limiter.hit("default", "user:bob")).allowed
    assert (await limiter.hit("login", "user:ana")).allowed


async def test_headers_follow_the_ietf_draft_and_the_x_ratelimit_convention() -> None:
    limiter = RateLimiter(POLICIES, None)
    decision = await limiter.hit("default", "ip:203.0.113.9")
    headers = decision.headers()
    assert headers["RateLimit-Policy"] == '"default";q=3;w=3600'
    assert headers["RateLimit"] == f'"default";r=2;t={decision.reset_after}'
    assert headers["X-RateLimit-Limit"] == "3"
    assert headers["X-RateLimit-Remaining"] == "2"
    reset_at = int(headers["X-RateLimit-Reset"])
    assert abs(reset_at - (time.time() + decision.reset_after)) <= 2


async def test_windows_are_aligned_to_the_clock() -> None:
    limiter = RateLimiter({"default": parse("10/minute")}, None)
    decision = await limiter.hit("default", "user:ana")
    # The window ends on a whole minute, whenever the first request came.
    ends = (time.time() + decision.reset_after) % 60
    assert min(ends, 60 - ends) <= 1.0


async def test_reset_forgets_the_current_window() -> None:
    limiter = RateLimiter(POLICIES, None)
    for _ in range(2):
        await limiter.hit("login", "ip|ana")
    await limiter.reset("login", "ip|ana")
    assert (await limiter.hit("login", "ip|ana")).remaining == 1


async def test_an_unreachable_redis_falls_back_to_counting_in_process() -> None:
    limiter = RateLimiter(POLICIES, f"redis://127.0.0.1:{closed_port()}/0")
    decisions = [await limiter.hit("default", "user:ana") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert limiter.backend == "memory (redis down)"
    await limiter.reset("default", "user:ana")
    assert (await limiter.hit("default", "user:ana")).allowed


class _RedisWithoutExpireNx:
    """Answers as a Redis 6 would: INCRBY counts, EXPIRE ... NX is an error."""

    def __init__(self) -> None:
        self.count = 0

    async def run(self, *commands: tuple[object, ...]) -> list[object]:
        self.count += 1
        return [self.count, ResponseError("ERR wrong number of arguments for 'expire'")]

    async def close(self) -> None:
        """Nothing to wait for."""


async def test_a_redis_that_cannot_give_a_window_its_lifetime_is_not_used() -> None:
    limiter = RateLimiter(POLICIES, "redis://127.0.0.1:6379/0")
    limiter._pipeline = _RedisWithoutExpireNx()  # type: ignore[assignment]
    decisions = [await limiter.hit("default", "user:ana") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert limiter.backend == "memory (redis down)"
    await limiter.close()


@pytest.mark.parametrize(
    "rate", ["banana", "", "10/fortnight", "10/second;100/minute", "-1/second"]
)
def test_a_malformed_rate_stops_the_gateway_from_starting(rate: str) -> None:
    with pytest.raises(ValidationError, match="rate_limit"):
        GatewaySettings(secret_key=TEST_KEY, rate_limit=rate, demo_users=True, _env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("trusted_proxies", "10.0.0.0/33"),
        ("trusted_proxies", "proxy.local"),
        ("cors_origins", "evil"),
    ],
)
def test_malformed_network_settings_are_refused(setting: str, value: str) -> None:
    with pytest.raises(ValidationError, match=setting):
        GatewaySettings(secret_key=TEST_KEY, demo_users=True, _env_file=None, **{setting: value})  # type: ignore[arg-type]


async def test_raw_rate_limit_headers_are_the_headers_as_the_wire_carries_them() -> None:
    limiter = RateLimiter({"default": parse("2/minute")}, None)
    for _ in range(3):
        decision = await limiter.hit("default", "user:alice")
    raw = decision.raw_headers()
    assert raw == [(k.lower().encode(), v.encode()) for k, v in decision.headers().items()]
    assert (b"retry-after", str(decision.reset_after).encode()) in raw
