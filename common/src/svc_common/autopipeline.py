"""Redis commands issued at the same time share one pipelined round trip.

Each request still sends its own commands and gets its own answers; what is shared is the
trip. Commands that arrive while a pipeline is in flight wait for it and go together in the
next one, so under load one write and one read serve many requests, and redis-py's
per-command work (taking a connection, the retry wrapper, the timeout) is paid per batch.
"""

import asyncio
import contextlib
import contextvars
import inspect
from typing import Any

from opentelemetry import context as otel_context
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from svc_common import tracing

Command = tuple[Any, ...]
# (the commands of one caller, the caller's future for their answers, its trace hop)
_Entry = tuple[tuple[Command, ...], "asyncio.Future[list[Any]]", tracing.Hop | None]


def _fail(batch: list[_Entry], error: Exception) -> None:
    for _, future, _ in batch:
        if not future.done():
            future.set_exception(error)


class AutoPipeline:
    """One in-flight pipeline at a time; callers of the same moment ride together."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._pending: list[_Entry] = []
        self._in_flight: asyncio.Task[None] | None = None
        # Looked up once: on Python 3.11 each lookup is a getpid() system call (a fork check).
        self._loop: asyncio.AbstractEventLoop | None = None
        # The pipeline class's execute as redis-py wrote it, found on the first trip. With
        # traces on the Redis instrumentation wraps it on the class; a trip no span is wanted
        # for goes straight to it, as the wrapper would after finding the trip's context quiet
        # (inspect.unwrap follows the wrapper's __wrapped__).
        self._execute_quietly: Any = None
        # Trips run in a context of their own where the client instrumentations stay quiet,
        # not in that of the request that happened to start the drain (see _send).
        self._context = contextvars.Context()
        self._context.run(tracing.quiet_outside_requests)

    async def run(self, *commands: Command) -> list[Any]:
        """The answers to these commands, in order; an error answer comes back as the
        exception object in its place. Raises what Redis raised when the trip failed."""
        loop = self._loop
        if loop is None or not loop.is_running():
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        self._pending.append((commands, future, tracing.current()))
        if self._in_flight is None:
            self._in_flight = loop.create_task(self._drain(), context=self._context)
        return await future

    async def _drain(self) -> None:
        try:
            # Yield once first, so commands of the same loop iteration share the first trip.
            await asyncio.sleep(0)
            while self._pending:
                batch, self._pending = self._pending, []
                await self._send(batch)
        finally:
            self._in_flight = None

    async def _send(self, batch: list[_Entry]) -> None:
        # A trip reports under the request that opened it (the first it carries), when that
        # one is sampled: a tenth of the trips, as of the requests, rather than every trip a
        # sampled request rides (a Redis client span costs more than the hop's own). Any
        # other trip needs nothing: the drain's context is quiet.
        hop = batch[0][2]
        if hop is None or hop.span is None:
            await self._trip(batch, traced=False)
            return
        token = tracing.client_spans_under(hop)
        try:
            await self._trip(batch, traced=True)
        finally:
            otel_context.detach(token)  # type: ignore[arg-type]

    async def _trip(self, batch: list[_Entry], *, traced: bool) -> None:
        pipe: Any = self._redis.pipeline(transaction=False)
        for commands, _, _ in batch:
            for command in commands:
                pipe.execute_command(*command)
        try:
            # A wrapper put on this pipeline itself (not on its class) is always kept.
            if traced or "execute" in vars(pipe):
                answers = await pipe.execute(raise_on_error=False)
            else:
                if self._execute_quietly is None:
                    self._execute_quietly = inspect.unwrap(type(pipe).execute)
                answers = await self._execute_quietly(pipe, raise_on_error=False)
        except RuntimeError as exc:
            # uvloop refuses a write on a transport Redis has just closed with a RuntimeError,
            # which redis-py neither translates nor drops the connection for: a lost connection.
            with contextlib.suppress(Exception):
                await self._redis.connection_pool.disconnect(inuse_connections=False)
            _fail(batch, RedisConnectionError(f"connection lost: {exc}"))
            return
        except Exception as exc:  # every caller learns it and takes its own fallback
            _fail(batch, exc)
            return
        except BaseException:
            for _, future, _ in batch:
                future.cancel()
            raise
        start = 0
        for commands, future, _ in batch:
            if not future.done():
                future.set_result(answers[start : start + len(commands)])
            start += len(commands)

    async def close(self) -> None:
        """Wait for the trip in flight (lifespan end)."""
        if self._in_flight is not None:
            await asyncio.gather(self._in_flight, return_exceptions=True)
