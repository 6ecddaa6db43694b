"""The protocol's limits on slow and too many clients, in a real uvicorn server."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from fastapi import FastAPI
from svc_common.serving.protocol import LaneProtocol
from svc_common.serving.stretch import Stretch
from test_common_lane import served


@asynccontextmanager
async def serving(protocol: type[LaneProtocol]) -> AsyncIterator[int]:
    """An app with GET /ok served with this protocol; yields the port."""
    app = FastAPI()

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    async with served(app, protocol=protocol) as url:
        yield int(url.rsplit(":", 1)[1])


async def test_connections_over_the_cap_are_closed_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    protocol = LaneProtocol.configured(read_timeout=5, max_connections=2)
    async with serving(protocol) as port:
        kept = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        with caplog.at_level(logging.WARNING, "svc_common.serving.protocol"):
            extra = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
            closed = [await asyncio.wait_for(reader.read(), 2) for reader, _ in extra]
        reader, writer = kept[0]
        writer.write(b"GET /ok HTTP/1.1\r\nhost: x\r\n\r\n")
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        for _, writer in kept + extra:
            writer.close()
    assert closed == [b"", b"", b""]
    assert answer.startswith(b"HTTP/1.1 200"), "the connections within the cap are served"
    assert [r.getMessage() for r in caplog.records].count(
        "over MAX_CONNECTIONS (2): closing new connections"
    ) == 1


async def test_a_client_that_keeps_sending_its_body_in_time_is_not_cut_off() -> None:
    protocol = LaneProtocol.configured(read_timeout=0.3, max_connections=10)
    async with serving(protocol) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /ok HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\n")
        for piece in b"abcde":
            await asyncio.sleep(0.2)  # each piece within read_timeout, the whole body not
            writer.write(bytes([piece]))
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 405"), "answered by the app, not timed out"


async def test_a_stretch_expires_once_its_time_has_passed_since_it_last_started() -> None:
    loop = asyncio.get_running_loop()
    expired: list[float] = []
    stretch = Stretch(loop, 0.1, lambda: expired.append(loop.time()))
    began = loop.time()
    stretch.start()
    await asyncio.sleep(0.06)
    stretch.start()  # progress: the clock starts again
    await asyncio.sleep(0.06)
    assert expired == []
    await asyncio.sleep(0.1)
    assert len(expired) == 1
    assert expired[0] - began >= 0.16
    stretch.start()
    stretch.stop()
    await asyncio.sleep(0.15)
    assert len(expired) == 1, "a stopped stretch does not expire"
    stretch.cancel()
