"""The forwarding path against real loopback backends: retries, deadlines, bodies, headers."""

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from balancer_fakes import DyingBackend, ScriptedBackend, balancer_for, refused_url
from load_balancer.proxy import Balancer

Client = Callable[..., Awaitable[tuple[Balancer, httpx.AsyncClient]]]


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[..., Awaitable[ScriptedBackend]]]:
    """Start scripted backends on demand; all closed afterwards."""
    started: list[ScriptedBackend] = []

    async def make(name: str, mode: str = "ok", **kwargs: Any) -> ScriptedBackend:
        backend = await ScriptedBackend(name, mode, **kwargs).start()
        started.append(backend)
        return backend

    yield make
    for backend in started:
        await backend.close()


@pytest.fixture
def dying() -> AsyncIterator[Callable[..., DyingBackend]]:
    """Backends that die like a SIGKILLed process; stopped afterwards."""
    started: list[DyingBackend] = []

    def make(*, read_first: bool) -> DyingBackend:
        started.append(DyingBackend(read_first=read_first))
        return started[-1]

    yield make  # type: ignore[misc]
    for backend in started:
        backend.close()


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    """A client of a balancer over the given backend URLs, in that round-robin order."""
    opened: list[tuple[Balancer, httpx.AsyncClient]] = []

    async def make(urls: list[str], **settings: Any) -> tuple[Balancer, httpx.AsyncClient]:
        balancer, app = balancer_for(urls, **settings)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://lb")
        opened.append((balancer, http))
        return balancer, http

    yield make
    for balancer, http in opened:
        await http.aclose()
        balancer.close()


async def test_requests_take_turns_over_the_backends(scripted: Any, client: Client) -> None:
    a, b = await scripted("a"), await scripted("b")
    _, http = await client([a.url, b.url])
    served = [(await http.get("/itens")).headers["x-served-by"] for _ in range(4)]
    assert served == ["a", "b", "a", "b"]


async def test_a_refused_connection_sends_even_a_post_to_the_next_backend(
    scripted: Any, client: Client
) -> None:
    ok = await scripted("ok")
    balancer, http = await client([refused_url(), ok.url])
    response = await http.post("/itens", json={"nome": "x"})
    assert response.status_code == 201
    assert [h.method for h in ok.hits] == ["POST"]
    assert balancer.pool.backends[0].failures == 1


async def test_a_request_left_unread_by_a_dying_backend_is_retried_whatever_its_method(
    scripted: Any, dying: Any, client: Client
) -> None:
    dead, ok = dying(read_first=False), await scripted("ok")
    _, http = await client([dead.url, ok.url])
    response = await http.post("/itens", json={"nome": "x"})
    assert response.status_code == 201
    assert len(ok.hits) == 1


async def test_without_idempotency_keys_a_post_the_backend_read_before_dying_is_not_resent(
    scripted: Any, dying: Any, client: Client
) -> None:
    dead, ok = dying(read_first=True), await scripted("ok")
    _, http = await client([dead.url, ok.url], add_idempotency_keys=False)
    response = await http.post("/itens", json={"nome": "x"})
    assert response.status_code == 502
    assert response.json() == {
        "status": "error",
        "data": None,
        "message": "Upstream server failed",
    }
    assert len(dead.requests) == 1
    assert ok.hits == []


async def test_a_get_the_backend_read_before_dying_is_retried_once_elsewhere(
    scripted: Any, dying: Any, client: Client
) -> None:
    dead, ok = dying(read_first=True), await scripted("ok")
    _, http = await client([dead.url, ok.url])
    assert (await http.get("/itens")).status_code == 200
    assert len(dead.requests) == 1  # once: not again on the same backend
    assert len(ok.hits) == 1


async def test_a_request_that_reached_two_backends_is_not_tried_a_third_time(
    scripted: Any, dying: Any, client: Client
) -> None:
    first, second = dying(read_first=True), dying(read_first=True)
    ok = await scripted("ok")
    _, http = await client([first.url, second.url, ok.url])
    assert (await http.get("/itens")).status_code == 502
    assert ok.hits == []


async def test_a_post_with_an_idempotency_key_may_be_sent_again(
    scripted: Any, dying: Any, client: Client
) -> None:
    dead, ok = dying(read_first=True), await scripted("ok")
    _, http = await client([dead.url, ok.url])
    response = await http.post("/itens", json={"nome": "x"}, headers={"Idempotency-Key": "k-1"})
    assert response.status_code == 201
    assert ok.hits[0].headers["idempotency-key"] == "k-1"


async def test_with_added_idempotency_keys_a_post_may_be_sent_again_under_one_key(
    scripted: Any, dying: Any, client: Client
) -> None:
    dead, ok = dying(read_first=True), await scripted("ok")
    _, http = await client([dead.url, ok.url])  # keys are added by default
    assert (await http.post("/itens", json={"nome": "x"})).status_code == 201
    [first] = dead.requests
    key = ok.hits[0].headers["idempotency-key"]
    assert f"idempotency-key: {key}".encode() in first.lower()


async def test_a_silent_backend_costs_a_get_one_try_timeout_then_it_moves_on(
    scripted: Any, client: Client
) -> None:
    hung, ok = await scripted("hung", "hang"), await scripted("ok")
    _, http = await client([hung.url, ok.url], try_timeout=0.3)
    response = await http.get("/itens")
    assert response.status_code == 200
    assert response.headers["x-served-by"] == "ok"


async def test_without_idempotency_keys_a_post_to_a_silent_backend_is_a_504_not_resent(
    scripted: Any, client: Client
) -> None:
    hung, ok = await scripted("hung", "hang"), await scripted("ok")
    _, http = await client([hung.url, ok.url], try_timeout=0.3, add_idempotency_keys=False)
    response = await http.post("/itens", json={"nome": "x"})
    assert response.status_code == 504
    assert response.json()["message"] == "Upstream server timed out"
    assert ok.hits == []


async def test_the_overall_deadline_ends_a_request_no_try_finished(
    scripted: Any, client: Client
) -> None:
    hung = await scripted("hung", "hang")
    _, http = await client([hung.url], upstream_timeout=0.3, try_timeout=5)
    assert (await http.get("/itens")).status_code == 504


async def test_no_reachable_backend_is_a_503_envelope_with_retry_after(client: Client) -> None:
    _, http = await client([refused_url(), refused_url()])
    response = await http.get("/itens")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["message"] == "No backend server available"


async def test_a_body_over_the_buffer_limit_streams_through_whole(
    scripted: Any, client: Client
) -> None:
    ok = await scripted("ok")
    _, http = await client([ok.url], retry_buffer_bytes=1024)
    payload = bytes(range(256)) * 800

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 10_000):
            yield payload[start : start + 10_000]

    response = await http.post("/upload", content=chunks())
    assert response.status_code == 201
    assert ok.hits[0].body == payload


async def test_a_streamed_body_is_not_replayed_once_it_has_gone_out(
    scripted: Any, dying: Any, client: Client
) -> None:
    dead, ok = dying(read_first=True), await scripted("ok")
    _, http = await client([dead.url, ok.url], retry_buffer_bytes=16)
    response = await http.put("/itens/1", content=b"y" * 4096)
    assert response.status_code == 502
    assert ok.hits == []


async def test_a_large_response_streams_back_whole(scripted: Any, client: Client) -> None:
    big = await scripted("big", response_size=8192 * 40)
    _, http = await client([big.url])
    response = await http.get("/itens")
    assert response.status_code == 200
    assert len(response.content) == 8192 * 40


async def test_hop_by_hop_headers_are_dropped_and_forwarded_headers_kept_or_added(
    scripted: Any, client: Client
) -> None:
    ok = await scripted("ok")
    _, http = await client([ok.url])
    response = await http.get(
        "/itens?q=caf%C3%A9",
        headers={
            "Connection": "keep-alive, X-Hop",
            "X-Hop": "secret",
            "Keep-Alive": "timeout=5",
            "X-Forwarded-For": "203.0.113.7",
            "X-Forwarded-Host": "api.example.org",
            "X-Forwarded-Proto": "https",
            "Authorization": "Bearer t",
        },
    )
    seen = ok.hits[0]
    assert seen.path == "/itens?q=caf%C3%A9"
    assert "x-hop" not in seen.headers
    assert "keep-alive" not in seen.headers
    assert seen.headers["authorization"] == "Bearer t"
    assert seen.headers["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert seen.headers["x-forwarded-host"] == "api.example.org"
    assert seen.headers["x-forwarded-proto"] == "https"
    # ...and on the way back, the backend's own hop-by-hop headers stay behind too.
    assert "x-private-hop" not in {name.lower() for name in response.headers}


async def test_a_backend_redirect_is_relayed_not_followed(scripted: Any, client: Client) -> None:
    moved = await scripted("moved", "redirect")
    _, http = await client([moved.url])
    response = await http.get("/itens")
    assert response.status_code == 307
    assert response.headers["location"] == "/elsewhere"
    assert len(moved.hits) == 1


async def test_a_5xx_is_relayed_once_and_repeated_ones_eject_the_backend(
    scripted: Any, client: Client
) -> None:
    broken, ok = await scripted("broken", "error"), await scripted("ok")
    balancer, http = await client([broken.url, ok.url], eject_after=2)
    statuses = [(await http.get("/itens")).status_code for _ in range(4)]
    assert statuses == [500, 200, 500, 200]
    assert balancer.pool.backends[0].state == "ejected"
    assert [(await http.get("/itens")).status_code for _ in range(3)] == [200, 200, 200]
    assert len(broken.hits) == 2


async def test_the_last_backend_taking_traffic_is_never_ejected(
    scripted: Any, client: Client
) -> None:
    broken = await scripted("broken", "error")
    balancer, http = await client([broken.url], eject_after=1)
    for _ in range(3):
        assert (await http.get("/itens")).status_code == 500
    assert balancer.pool.backends[0].state != "ejected"


async def test_the_balancers_own_paths_are_not_forwarded(scripted: Any, client: Client) -> None:
    ok = await scripted("ok")
    _, http = await client([ok.url])
    assert (await http.get("/status")).text == "balancer's own route"
    assert ok.hits == []
