"""Traces across the processes: gateway -> balancer -> server -> PostgreSQL and Redis, one
trace per request on the lane and on the ASGI path, exported over OTLP/HTTP to a real receiver."""

import asyncio
import json
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser import headless_chromium
from tests.integration.databases import create_database, drop_database
from tests.integration.otlp_receiver import OtlpReceiver, ReceivedSpan, waterfall_html
from tests.integration.stack import Stack

OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "integration"
HOPS = ("api_gateway", "load_balancer", "server", "server2")
SERVERS = {"server", "server2"}


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    """The OTLP/HTTP endpoint every service exports to."""
    with OtlpReceiver() as running:
        yield running


@pytest.fixture(scope="module", params=["lane", "asgi"])
def traced(
    request: pytest.FixtureRequest, receiver: OtlpReceiver, redis_url: str
) -> Iterator[Stack]:
    """Gateway, balancer and both servers on PostgreSQL + Redis, with traces on (sampled all);
    once with the lane (FAST_LANE=true) and once with every request on the ASGI path."""
    database = asyncio.run(create_database("traces"))
    workdir = OUTPUT / f"stack-traced-{request.param}"
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("*.log"):
        old.unlink()
    stack = Stack(
        request.param,
        workdir,
        database,
        redis_url,
        extra_env={
            "FAST_LANE": str(request.param == "lane").lower(),
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # milliseconds: the test waits for the batches
        },
    )
    try:
        stack.start_all(HOPS)
        yield stack
    finally:
        stack.stop_all()
        asyncio.run(drop_database(database))


@pytest.fixture(scope="module")
def client(traced: Stack) -> Iterator[httpx.Client]:
    """A client of the traced gateway, logged in as admin."""
    with httpx.Client(base_url=traced.url("api_gateway"), timeout=10) as plain:
        login = plain.post("/login", json={"username": "admin", "password": "admin123"})
        token = login.json()["data"]["access_token"]
        plain.headers["Authorization"] = f"Bearer {token}"
        yield plain


def _trace_of(response: httpx.Response) -> tuple[str, str]:
    """(trace id, span id) of the gateway's span, from the traceparent it answered with."""
    version, trace_id, span_id, _flags = response.headers["traceparent"].split("-")
    assert version == "00"
    return trace_id, span_id


def _one(spans: list[ReceivedSpan], **wanted: object) -> ReceivedSpan:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in wanted.items())]
    assert len(found) == 1, f"expected one span {wanted}, got {found}"
    return found[0]


def _below(spans: list[ReceivedSpan], top: ReceivedSpan) -> list[ReceivedSpan]:
    """Every span under top, at any depth."""
    ids = {top.span_id}
    found: list[ReceivedSpan] = []
    grew = True
    while grew:
        grew = False
        for span in spans:
            if span.parent_id in ids and span.span_id not in ids:
                ids.add(span.span_id)
                found.append(span)
                grew = True
    return found


def _complete(spans: list[ReceivedSpan]) -> bool:
    """Every hop's server span, and client spans for PostgreSQL and Redis under a server."""
    services = {span.service for span in spans if span.kind == "server"}
    systems = {_db_system(span) for span in spans if span.service in SERVERS}
    return (
        {"api_gateway", "load_balancer"} <= services
        and bool(services & SERVERS)
        and {
            "postgresql",
            "redis",
        }
        <= systems
    )


def _complete_read(spans: list[ReceivedSpan]) -> bool:
    """Every hop's server span of a read (a cached page may need no database span)."""
    services = {span.service for span in spans if span.kind == "server"}
    return {"api_gateway", "load_balancer"} <= services and bool(services & SERVERS)


def _db_system(span: ReceivedSpan) -> object:
    return span.attributes.get("db.system") or span.attributes.get("db.system.name")


def assert_hop_tree(
    spans: list[ReceivedSpan], *, name: str, server_name: str, gateway_span: str
) -> ReceivedSpan:
    """gateway -> balancer -> server, each a server span of the one before, named by the route
    each one knows (the proxies' bounded label, the server's own template); the server's."""
    gateway = _one(spans, service="api_gateway", kind="server", span_id=gateway_span)
    assert gateway.name == name
    balancer = _one(spans, service="load_balancer", kind="server", parent_id=gateway.span_id)
    assert balancer.name == name
    assert balancer.attributes["lb.backend"]
    server = _one(spans, kind="server", parent_id=balancer.span_id)
    assert server.service in SERVERS
    assert server.name == server_name
    assert server.attributes["http.route"] == server_name.split(" ", 1)[1]
    return server


def _log_lines(stack: Stack, service: str, request_id: str) -> list[dict[str, object]]:
    """The service's lines of one request (access lines leave in batches: waits for them)."""
    deadline = time.monotonic() + 5
    while True:
        lines = stack.log_path(service).read_text(errors="replace").splitlines()
        parsed = [json.loads(line) for line in lines if line.startswith("{")]
        found = [line for line in parsed if line.get("request_id") == request_id]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_a_write_on_the_asgi_path_is_one_trace_from_the_gateway_to_postgres_and_redis(
    client: httpx.Client, receiver: OtlpReceiver, traced: Stack
) -> None:
    request_id = secrets.token_hex(8)
    created = client.post(
        "/itens",
        json={"nome": "traced", "descricao": "asgi", "preco": 1.5},
        headers={"X-Request-ID": request_id},
    )
    assert created.status_code == 201, created.text
    trace_id, gateway_span = _trace_of(created)
    spans = receiver.wait_for(trace_id, _complete)
    server = assert_hop_tree(
        spans, name="POST /itens", server_name="POST /itens", gateway_span=gateway_span
    )
    below = _below(spans, server)
    assert any(_db_system(s) == "postgresql" and s.kind == "client" for s in below), below
    assert any(_db_system(s) == "redis" and s.kind == "client" for s in below), below
    # Every hop's access line names its own span of the trace, beside the request id.
    for service in ("api_gateway", "load_balancer", server.service):
        lines = _log_lines(traced, service, request_id)
        assert lines, f"no line of {service} for {request_id}"
        assert {line.get("trace_id") for line in lines} == {trace_id}
        hop = next(s for s in spans if s.service == service and s.kind == "server")
        assert hop.span_id in {line.get("span_id") for line in lines}


def test_a_read_by_id_continues_the_clients_trace_down_to_postgres_and_redis(
    client: httpx.Client, receiver: OtlpReceiver
) -> None:
    created = client.post("/itens", json={"nome": "lane", "descricao": "read", "preco": 2})
    item_id = created.json()["data"]["id"]
    # A write leaves the item out of the cache: the read goes to PostgreSQL, then fills Redis.
    client.put(f"/itens/{item_id}", json={"nome": "lane", "descricao": "again", "preco": 3})
    caller_trace, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    read = client.get(
        f"/itens/{item_id}", headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"}
    )
    assert read.status_code == 200, read.text
    # The client named the trace itself: the gateway has nothing to tell it.
    assert "traceparent" not in read.headers
    spans = receiver.wait_for(caller_trace, _complete)
    gateway_span = _one(spans, service="api_gateway", kind="server").span_id
    assert _one(spans, service="api_gateway", kind="server").parent_id == caller_span
    server = assert_hop_tree(
        spans, name="GET /itens/{id}", server_name="GET /itens/{item_id}", gateway_span=gateway_span
    )
    below = _below(spans, server)
    assert any(_db_system(s) == "postgresql" for s in below), below
    assert any(_db_system(s) == "redis" for s in below), below


def test_a_clients_unsampled_trace_passes_every_hop_untouched_and_names_their_lines(
    client: httpx.Client, receiver: OtlpReceiver, traced: Stack
) -> None:
    created = client.post("/itens", json={"nome": "unsampled", "descricao": "x", "preco": 1})
    item_id = created.json()["data"]["id"]
    trace_id, span_id, request_id = (
        secrets.token_hex(16),
        secrets.token_hex(8),
        secrets.token_hex(8),
    )
    read = client.get(
        f"/itens/{item_id}",
        headers={"traceparent": f"00-{trace_id}-{span_id}-00", "X-Request-ID": request_id},
    )
    assert read.status_code == 200, read.text
    assert "traceparent" not in read.headers, "the client named the trace itself"
    for service in ("api_gateway", "load_balancer", read.headers["X-Served-By"]):
        lines = _log_lines(traced, service, request_id)
        assert lines, f"no line of {service} for {request_id}"
        ids = {(line.get("trace_id"), line.get("span_id")) for line in lines}
        assert ids == {(trace_id, span_id)}, f"{service}: {ids}"
    time.sleep(0.5)  # a batch every 100 ms (OTEL_BSP_SCHEDULE_DELAY)
    assert [s for s in receiver.spans if s.trace_id == trace_id] == []


def test_polled_paths_and_background_work_make_no_traces(
    traced: Stack, receiver: OtlpReceiver
) -> None:
    answer = httpx.get(f"{traced.url('api_gateway')}/saude")
    assert answer.status_code == 200
    assert "traceparent" not in answer.headers
    time.sleep(0.5)
    assert not [s for s in receiver.spans if s.attributes.get("url.path") == "/saude"]
    # Nor do the queries of health checks (the balancer polls each server's /saude, which
    # asks PostgreSQL and Redis) or of background work: every trace starts at a request.
    traces = {s.trace_id for s in receiver.spans if s.kind == "server"}
    assert [s for s in receiver.spans if s.trace_id not in traces] == []


def test_traces_are_off_by_default_and_a_clients_traceparent_is_left_alone(
    stack: Stack, gateway: httpx.Client
) -> None:
    request_id = secrets.token_hex(8)
    parent = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
    answer = gateway.get("/itens", headers={"traceparent": parent, "X-Request-ID": request_id})
    assert answer.status_code == 200
    assert "traceparent" not in answer.headers
    for service in ("api_gateway", "load_balancer"):
        lines = _log_lines(stack, service, request_id)
        assert lines
        assert not [line for line in lines if "trace_id" in line]


def test_swagger_shows_the_traceparent_whose_trace_the_receiver_holds(
    traced: Stack, receiver: OtlpReceiver
) -> None:
    with headless_chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            page.goto(f"{traced.url('api_gateway')}/docs")
            page.locator(".auth-wrapper .authorize").click()
            page.fill("#oauth_username", "user")
            page.fill("#oauth_password", "user123")
            page.locator(".auth-btn-wrapper .authorize").click()
            expect(page.locator(".auth-btn-wrapper")).to_contain_text("Logout")
            page.locator(".btn-done").click()
            list_itens = page.locator(".opblock-get").filter(
                has=page.locator('.opblock-summary-path[data-path="/itens"]')
            )
            list_itens.locator(".opblock-summary").click()
            list_itens.locator(".try-out__btn").click()
            with page.expect_response(re.compile(r"/itens(\\?.*)?$")) as answer:
                list_itens.locator(".execute").click()
            trace_id = answer.value.headers["traceparent"].split("-")[1]
            headers = list_itens.locator(".live-responses-table pre").filter(has_text="traceparent")
            expect(headers).to_contain_text(f"traceparent: 00-{trace_id}-")
            headers.scroll_into_view_if_needed()
            page.screenshot(path=str(OUTPUT / f"trace-swagger-{traced.name}.png"))
            spans = receiver.wait_for(trace_id, _complete_read)
            assert {"api_gateway", "load_balancer"} <= {s.service for s in spans}
            page.set_content(waterfall_html(trace_id, spans))
            expect(page.locator("h2")).to_contain_text(trace_id)
            page.screenshot(path=str(OUTPUT / f"trace-waterfall-{traced.name}.png"), full_page=True)
        finally:
            page.close()
