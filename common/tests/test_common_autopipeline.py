"""The shared Redis round trip, with a fake client: how a failed trip reaches its callers."""

import asyncio
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
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
