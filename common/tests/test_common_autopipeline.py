"""The shared Redis round trip, with a fake client: how a failed trip reaches its callers, and
which trips go through an instrumentation's wrapper."""

import asyncio
import functools
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.trace import SpanContext, TraceFlags
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from svc_common import tracing
from svc_common.autopipeline import AutoPipeline


class FakePool:
    def __init__(self) -> None:
        self.disconnects = 0

    async def disconnect(self, inuse_connections: bool = True) -> None:
        self.disconnects += 1


class FakeRedis:
    """A client whose every pipeline fails with `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.connection_pool = FakePool()

    def pipeline(self, transaction: bool = True) -> Any:
        error = self.error

        class Pipe:
            def execute_command(self, *_: Any) -> None:
                pass

            async def execute(self, raise_on_error: bool = True) -> list[Any]:
                raise error

        return Pipe()


async def test_a_write_on_a_transport_redis_closed_is_a_lost_connection_to_every_caller() -> None:
    redis = FakeRedis(RuntimeError("unable to perform operation on <TCPTransport closed=True>"))
    pipeline = AutoPipeline(redis)  # type: ignore[arg-type]
    results = await asyncio.gather(
        pipeline.run(("GET", "a")), pipeline.run(("GET", "b")), return_exceptions=True
    )
    assert all(isinstance(result, RedisConnectionError) for result in results)
    assert redis.connection_pool.disconnects == 1, "the broken connection is not reused"


async def test_a_redis_error_reaches_every_caller_as_it_is() -> None:
    redis = FakeRedis(RedisTimeoutError("timed out"))
    pipeline = AutoPipeline(redis)  # type: ignore[arg-type]
    with pytest.raises(RedisTimeoutError):
        await pipeline.run(("GET", "a"))
    assert redis.connection_pool.disconnects == 0


def _wrapped(execute: Callable[..., Any], calls: list[str]) -> Callable[..., Any]:
    """execute behind a wrapper, as an instrumentation puts one (functools.wraps sets
    __wrapped__, as wrapt's wrappers have it)."""

    @functools.wraps(execute)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append("wrapper")
        return await execute(*args, **kwargs)

    return wrapper


async def test_a_trip_no_span_is_wanted_for_skips_the_instrumentations_wrapper(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The Redis instrumentation wraps Pipeline.execute; below an unsampled request (or none)
    # it would only find its context quiet and call through, a cost on every trip.
    calls: list[str] = []

    class Pipe:
        def __init__(self) -> None:
            self.commands = 0

        def execute_command(self, *_: Any) -> None:
            self.commands += 1

        async def execute(self, raise_on_error: bool = True) -> list[Any]:
            calls.append("execute")
            return [b"OK"] * self.commands

    Pipe.execute = _wrapped(Pipe.execute, calls)  # type: ignore[method-assign]

    class Client:
        connection_pool = FakePool()

        def pipeline(self, transaction: bool = True) -> Pipe:
            return Pipe()

    monkeypatch.setattr(tracing, "ENABLED", True)  # requests' hops are seen; nothing exported
    pipeline = AutoPipeline(Client())  # type: ignore[arg-type]
    context = SpanContext(1, 2, False, TraceFlags(TraceFlags.SAMPLED))
    sampled = tracing.Hop(b"00-" + b"0" * 31 + b"1-" + b"0" * 15 + b"2-01", None, None)
    sampled.span = tracing.Recording(context, None, {})

    assert await pipeline.run(("GET", "a")) == [b"OK"]
    assert calls == ["execute"]
    token = tracing.attach(sampled)
    try:
        assert await pipeline.run(("GET", "b")) == [b"OK"]
    finally:
        tracing.detach(token)
    assert calls == ["execute", "wrapper", "execute"], "a sampled request's trip is traced"
