"""The uvicorn internals svc_common.serving.protocol relies on exist in the installed uvicorn."""

import asyncio
import inspect
from importlib.metadata import version

import pytest
import uvicorn
from starlette.applications import Starlette
from svc_common.serving.lane import LaneHandler, LaneRequest
from svc_common.serving.protocol import (
    ASGI_CYCLE_INTERNALS,
    CYCLE_INTERNALS,
    UVICORN_INTERNALS,
    LaneProtocol,
    _LaneCycle,
)
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState


class SocketlessTransport:
    """Enough of a transport for connection_made: addresses and no TLS."""

    def get_extra_info(self, name: str) -> object:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def _connected(protocol_class: type[HttpToolsProtocol]) -> HttpToolsProtocol:
    config = uvicorn.Config(Starlette(), log_config=None)
    protocol = protocol_class(config, ServerState(), {}, _loop=asyncio.new_event_loop())
    protocol.connection_made(SocketlessTransport())  # type: ignore[arg-type]
    protocol.on_message_begin()  # per-request state (url, headers, scope) exists from here
    return protocol


@pytest.mark.parametrize("name", UVICORN_INTERNALS)
def test_every_protocol_internal_the_lane_relies_on_exists(name: str) -> None:
    protocol = _connected(HttpToolsProtocol)
    assert hasattr(protocol, name), (
        f"uvicorn {version('uvicorn')}: HttpToolsProtocol.{name} is gone; "
        "svc_common/serving/protocol.py relies on it (see UVICORN_INTERNALS)"
    )


@pytest.mark.parametrize("name", CYCLE_INTERNALS)
def test_every_cycle_attribute_uvicorn_reads_is_one_the_lane_cycle_has(name: str) -> None:
    # uvicorn reads these on whatever sits in protocol.cycle, a lane request's cycle included.
    assert name in RequestResponseCycle.__init__.__code__.co_names or hasattr(
        RequestResponseCycle, name
    ), f"uvicorn {version('uvicorn')}: RequestResponseCycle.{name} is gone"
    assert hasattr(_lane_cycle(), name)


@pytest.mark.parametrize("name", ASGI_CYCLE_INTERNALS)
def test_every_attribute_of_uvicorn_s_request_cycle_the_protocol_reads_exists(name: str) -> None:
    assert name in RequestResponseCycle.__init__.__code__.co_names, (
        f"uvicorn {version('uvicorn')}: RequestResponseCycle.{name} is gone"
    )


def test_uvicorn_s_request_cycle_takes_what_the_lane_builds_one_with() -> None:
    # LaneProtocol.asgi_cycle builds one for a lane request the ASGI app answers after all.
    taken = set(inspect.signature(RequestResponseCycle).parameters)
    assert taken == {
        *("scope", "transport", "flow", "logger", "access_logger", "access_log"),
        *("default_headers", "message_event", "expect_100_continue", "keep_alive"),
        "on_response",
    }, f"uvicorn {version('uvicorn')}: RequestResponseCycle's arguments changed: {taken}"


def _lane_cycle() -> object:
    protocol = _connected(LaneProtocol)
    request = LaneRequest(path="/", raw_path=b"/", query=b"", headers=[], client=None)
    return _LaneCycle(protocol, LaneHandler(), request)  # type: ignore[arg-type]


def test_the_installed_uvicorn_is_within_the_bound_the_suite_ran_on() -> None:
    # common/pyproject.toml bounds uvicorn to one minor version: a new one runs this suite first.
    major, minor = (int(part) for part in version("uvicorn").split(".")[:2])
    assert (major, minor) == (0, 54), "run the suite on the new uvicorn, then move the bound"
