"""The gateway's lane handler driven in memory, against fake balancers on loopback sockets."""

import asyncio
import gzip
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from api_gateway.config import one_rate
from api_gateway.lane import GatewayLane, answer_later
from api_gateway.proxy import Upstream
from api_gateway.ratelimit import RateLimiter
from gateway_apps import gateway_settings
from redis.asyncio import Redis
from redis.exceptions import RedisError
from svc_common.auth import Principal, TokenVerifier
from svc_common.serving.lane import Answer, LaneRequest

from conftest import TEST_KEY, TokenFactory

REDIS_URL = "redis://127.0.0.1:6379/0"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]


def http_answer(body: bytes, *headers: tuple[str, str], status: str = "200 OK") -> bytes:
    """A whole HTTP/1.1 answer with a Content-Length and these headers."""
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return f"HTTP/1.1 {status}\r\n{head}content-length: {len(body)}\r\n\r\n".encode() + body


OK_BODY = orjson.dumps({"status": "success", "data": [], "message": None})
OK = http_answer(OK_BODY, ("content-type", "application/json"))


class Balancer:
    """A fake balancer: records each request head and answers every one with `answer`."""

    def __init__(self, answer: bytes = OK) -> None:
        self.answer = answer
        self.heads: list[bytes] = []

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                self.heads.append(await reader.readuntil(b"\r\n\r\n"))
                writer.write(self.answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads the request and never answers; ends when the client hangs up."""
    await reader.readuntil(b"\r\n\r\n")
    await reader.read()
    writer.close()


async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads the request and closes without a byte of answer."""
    await reader.readuntil(b"\r\n\r\n")
    writer.close()


@asynccontextmanager
async def upstream(handler: Handler) -> AsyncIterator[str]:
    """A server on a free loopback port; yields its base URL."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


def limiter_for(rate: str = "100/second", redis_url: str | None = None) -> RateLimiter:
    """The gateway's limiter with one default policy; in memory without redis_url."""
    return RateLimiter({"default": one_rate(rate)}, redis_url)


def lane_for(
    tmp_path: Path, url: str | None = None, *, limiter: RateLimiter | None = None, **settings: Any
) -> GatewayLane:
    """A GatewayLane over a balancer at url (a closed port when None)."""
    if url is not None:
        settings["load_balancer_url"] = url
    config = gateway_settings(tmp_path, **settings)
    return GatewayLane(
        config,
        pool=Upstream(config).start(),
        verifier=TokenVerifier(TEST_KEY),
        limiter=limiter or limiter_for(),
    )


def lane_request(
    path: str = "/itens",
    *,
    token: str | None = None,
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> LaneRequest:
    """A GET as the HTTP parser hands it to the lane, with a bearer token when given."""
    raw_headers = [(b"host", b"gateway.test"), *(headers or [])]
    if token is not None:
        raw_headers.append((b"authorization", f"Bearer {token}".encode()))
    request = LaneRequest(
        path=path,
        raw_path=path.encode(),
        query=query,
        headers=raw_headers,
        client=("203.0.113.7", 50000),
    )
    request.request_id = "req-lane-1"
    return request


def header_values(answer: Answer, name: bytes) -> list[bytes]:
    """Every value of a (lower-case) header of an answer."""
    return [value for key, value in answer.raw_headers if key == name]


def header(answer: Answer, name: bytes) -> bytes | None:
    """The only value of a header, or None; fails when it appears more than once."""
    values = header_values(answer, name)
    assert len(values) <= 1, f"{name!r} appears {len(values)} times"
    return values[0] if values else None


def envelope(answer: Answer) -> Any:
    """The decoded JSON body of an answer."""
    return orjson.loads(bytes(answer.body))


class Deliveries:
    """A deliver() that records every answer and lets a test await the first."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.first: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()

    def __call__(self, answer: Answer) -> None:
        self.answers.append(answer)
        if not self.first.done():
            self.first.set_result(answer)

    async def wait(self) -> Answer:
        """The first answer, within two seconds."""
        return await asyncio.wait_for(self.first, 2)


@pytest.fixture
async def redis_url() -> str:
    """The local Redis the in-process start() path needs (skipped without it; under CI=true a
    missing Redis fails)."""
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=0.5)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"no Redis at {REDIS_URL}: {exc}")
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    finally:
        await client.aclose()
    return REDIS_URL


# accepts()


@pytest.mark.parametrize(
    ("path", "route"),
    [("/itens", "/itens"), ("/itens/5", "/itens/{id}"), ("/identidade", "/identidade")],
)
async def test_a_forwarded_path_with_a_valid_token_is_accepted_with_its_route_label(
    tmp_path: Path, make_token: TokenFactory, path: str, route: str
) -> None:
    """The caller is noted and the route label set for the metrics."""
    lane = lane_for(tmp_path)
    request = lane_request(path, token=make_token(sub="ana", role="user"))
    assert lane.accepts(request)
    assert request.route == route
    assert isinstance(request.note, Principal)
    assert request.note.username == "ana"
    lane.pool.close()


async def test_a_request_without_a_token_is_declined(tmp_path: Path) -> None:
    """The ASGI path answers its 401."""
    lane = lane_for(tmp_path)
    request = lane_request("/itens")
    assert not lane.accepts(request)
    assert request.route == "unmatched"
    lane.pool.close()


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "wrong-key",
        "expired",
        "refresh",
    ],
)
async def test_a_request_with_a_bad_token_is_declined(
    tmp_path: Path, make_token: TokenFactory, token: str
) -> None:
    """Garbage, a foreign signature, an expired or a refresh token: the ASGI path's 401."""
    tokens = {
        "not-a-jwt": "not-a-jwt",
        "wrong-key": make_token(key="another-signing-key-0123456789abcdef-0123456789"),
        "expired": make_token(lifetime=-10),
        "refresh": make_token(type="refresh"),
    }
    lane = lane_for(tmp_path)
    assert not lane.accepts(lane_request("/itens", token=tokens[token]))
    lane.pool.close()


async def test_a_token_under_another_scheme_is_declined(tmp_path: Path) -> None:
    """Only `Authorization: Bearer` carries a token."""
    lane = lane_for(tmp_path)
    request = lane_request("/itens", headers=[(b"authorization", b"Basic " + b"YTpi")])
    assert not lane.accepts(request)
    lane.pool.close()


@pytest.mark.parametrize("path", ["/me", "/login", "/saude", "/itensx", "/identidadex", "/"])
async def test_a_path_that_is_not_forwarded_is_declined(
    tmp_path: Path, make_token: TokenFactory, path: str
) -> None:
    """The gateway's own routes take the ASGI path, token or not."""
    lane = lane_for(tmp_path)
    assert not lane.accepts(lane_request(path, token=make_token()))
    lane.pool.close()


async def test_with_cors_origins_set_a_request_carrying_origin_is_declined(
    tmp_path: Path, make_token: TokenFactory
) -> None:
    """The CORS middleware answers browser requests; the same GET without Origin is taken."""
    lane = lane_for(tmp_path, cors_origins="https://app.example")
    token = make_token()
    browser = lane_request("/itens", token=token, headers=[(b"origin", b"https://app.example")])
    assert not lane.accepts(browser)
    assert lane.accepts(lane_request("/itens", token=token))
    lane.pool.close()


async def test_without_cors_origins_a_request_carrying_origin_is_accepted(
    tmp_path: Path, make_token: TokenFactory
) -> None:
    """With no CORS configured there is nothing for the ASGI path to add."""
    lane = lane_for(tmp_path)
    request = lane_request("/itens", token=make_token(), headers=[(b"origin", b"https://x.test")])
    assert lane.accepts(request)
    lane.pool.close()


# respond(): start() returns False without Redis


async def test_without_redis_start_declines_and_counts_nothing(
    tmp_path: Path, make_token: TokenFactory
) -> None:
    """start() is False and nothing is delivered: respond() answers in a task."""
    balancer = Balancer()
    async with upstream(balancer) as url:
        lane = lane_for(tmp_path, url)
        request = lane_request("/itens", token=make_token())
        assert lane.accepts(request)
        deliveries = Deliveries()
        assert lane.start(request, deliveries) is False
        await asyncio.sleep(0.05)
        assert deliveries.answers == []
        assert balancer.heads == []
        answer = await lane.respond(request)
        lane.pool.close()
    assert answer.status_code == 200
    assert header(answer, b"x-ratelimit-remaining") == b"99", "only respond() counted the hit"


async def test_respond_relays_the_balancers_answer_with_rate_limit_headers(
    tmp_path: Path, make_token: TokenFactory
) -> None:
    """Status, end-to-end headers and body come back as the balancer sent them."""
    body = b'{"status":"success","data":{"id":5},"message":null}'
    balancer = Balancer(
        http_answer(
            body,
            ("content-type", "application/json"),
            ("etag", '"5.1"'),
            ("x-served-by", "server2"),
            status="201 Created",
        )
    )
    async with upstream(balancer) as url:
        lane = lane_for(tmp_path, url)
        request = lane_request("/itens/5", token=make_token(sub="ana", role="user"))
        assert lane.accepts(request)
        answer = await lane.respond(request)
        lane.pool.close()
    assert answer.status_code == 201
    assert bytes(answer.body) == body
    assert header(answer, b"content-type") == b"application/json"
    assert header(answer, b"etag") == b'"5.1"'
    assert header(answer, b"x-served-by") == b"server2"
    assert header(answer, b"ratelimit-policy") == b'"default";q=100;w=1'
    assert (header(answer, b"ratelimit") or b"").startswith(b'"default";r=99;t=')
    assert header(answer, b"x-ratelimit-limit") == b"100"
    assert header(answer, b"x-ratelimit-remaining") == b"99"
    assert (header(answer, b"x-ratelimit-reset") or b"").isdigit()
    assert header(answer, b"retry-after") is None


async def test_respond_drops_the_balancers_hop_by_hop_headers(
    tmp_path: Path, make_token: TokenFactory
) -> None:
    """Connection, Keep-Alive, what Connection names, and the balancer's Date and Server."""
    balancer = Balancer(
        http_answer(
            b"ok",
            ("content-type", "text/plain"),
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "secret"),
            ("proxy-authenticate", "Basic"),
            ("upgrade", "h2c"),
            ("date", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ("server", "uvicorn"),
            ("x-request-id", "from-upstream"),
            ("x-end-to-end", "kept"),
        )
    )
    async with upstream(balancer) as url:
        lane = lane_for(tmp_path, url)
        request = lane_request("/itens", token=make_token())
        assert lane.accepts(request)
        answer = await lane.respond(request)
        lane.pool.close()
    names = {name for name, _ in answer.raw_headers}
    dropped = {
        b"connection",
        b"keep-alive",
        b"x-private",
        b"proxy-authenticate",
        b"upgrade",
        b"date",
        b"server",
        b"x-request-id",
    }
    assert not names & dropped
    assert header(answer, b"x-end-to-end") == b"kept"
    assert bytes(answer.body) == b"ok"


async def test_a_chunked_answer_is_relayed_whole_without_transfer_encoding(
    tmp_path: Path, make_token: TokenFactory
) -> None:
    """The body is joined; Transfer-Encoding is hop-by-hop."""
    chunked = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    async with upstream(Balancer(chunked)) as url:
        lane = lane_for(tmp_path, url)
        request = lane_request("/itens", token=make_token())
        assert lane.accepts(request)
        answer = await lane.respond(request)
        lane.pool.close()
    assert (answer.status_code, bytes(answer.body)) == (200, b"abcde")
    assert header(answer, b"transfer-encoding") is None


async def test_respond_sends_forwarded_headers_and_the_request_id_upstream(
    tmp_path: Path, make_token: TokenFactory
) -> None:
    """X-Forwarded-For/-Proto/-Host and X-Request-ID are set; the target keeps its query."""
    balancer = Balancer()
    token = make_token()
    async with upstream(balancer) as url:
        lane = lane_for(tmp_path, url)
        request = lane_request(
            "/itens",
            token=token,
            query=b"limit=5&q=a%20b",
            headers=[
                (b"x-forwarded-for", b"198.51.100.1"),
                (b"x-request-id", b"client-chosen"),
                (b"connection", b"keep-alive"),
                (b"accept", b"application/json"),
            ],
        )
        assert lane.accepts(request)
        answer = await lane.respond(request)
        lane.pool.close()
    assert answer.status_code == 200
    (head,) = balancer.heads
    lines = head.decode().split("\r\n")
    assert lines[0] == "GET /itens?limit=5&q=a%20b HTTP/1.1"
    sent = [tuple(line.split(": ", 1)) for line in lines[1:] if line]
    assert ("x-forwarded-for", "198.51.100.1, 203.0.113.7") in sent
    assert ("x-forwarded-proto", "http") in sent
    assert ("x-forwarded-host", "gateway.test") in sent
    assert [value for name, value in sent if name == "x-request-id"] == ["req-lane-1"]
    assert ("authorization", f"Bearer {token}") in sent
    assert ("accept", "application/json") in sent
    assert not [name for name, _ in sent if name == "connection"]
    assert [name for name, _ in sent].count("host") == 1


async def test_over_the_limit_respond_answers_429_in_the_envelope_with_retry_after(
    tmp_path: Path, make_token: TokenFactory
) -> None:
    """The refused request never reaches the balancer."""
    balancer = Balancer()
    async with upstream(balancer) as url:
        lane = lane_for(tmp_path, url, limiter=limiter_for("1/day"))
        token = make_token(sub="ana", role="user")
        first, second = lane_request("/itens", token=token), lane_request("/itens", token=token)
        assert lane.accepts(first)
        assert lane.accepts(second)
        allowed = await lane.respond(first)
        refused = await lane.respond(second)
        lane.pool.close()
    assert allowed.status_code == 200
    assert refused.status_code == 429
    assert envelope(refused) == {"status": "error", "data": None, "message": "Rate limit exceeded"}
    retry_after = header(refused, b"retry-after")
    assert retry_after is not None
    assert 1 <= int(retry_after) <= 86400
    assert header(refused, b"x-ratelimit-remaining") == b"0"
    assert len(balancer.heads) == 1


async def test_callers_are_counted_apart(tmp_path: Path, make_token: TokenFactory) -> None:
    """One user over the limit does not refuse another."""
    async with upstream(Balancer()) as url:
        lane = lane_for(tmp_path, url, limiter=limiter_for("1/day"))
        answers = []
        for sub in ("ana", "ana", "bob"):
            request = lane_request("/itens", token=make_token(sub=sub, role="user"))
            assert lane.accepts(request)
            answers.append((await lane.respond(request)).status_code)
        lane.pool.close()
    assert answers == [200, 429, 200]


async def test_a_balancer_refusing_connections_is_503_with_retry_after_1(
    tmp_path: Path, make_token: TokenFactory
) -> None:
    """Nothing listens at LOAD_BALANCER_URL: 503 in the envelope, rate-limit headers kept."""
    lane = lane_for(tmp_path)
    request = lane_request("/itens", token=make_token())
    assert lane.accepts(request)
    answer = await lane.respond(request)
    lane.pool.close()
    assert answer.status_code == 503
    assert envelope(answer) == {
        "status": "error",
        "data": None,
        "message": "Load balancer unreachable",
    }
    assert header(answer, b"retry-after") == b"1"
    assert header(answer, b"x-ratelimit-limit") == b"100"


async def test_a_balancer_silent_past_upstream_timeout_is_504(
    tmp_path: Path, make_token: TokenFactory
) -> None:
    """No answer within UPSTREAM_TIMEOUT: 504 in the envelope, in about that time."""
    async with upstream(silent) as url:
        lane = lane_for(tmp_path, url, upstream_timeout=0.2)
        request = lane_request("/itens", token=make_token())
        assert lane.accepts(request)
        loop = asyncio.get_running_loop()
        began = loop.time()
        answer = await lane.respond(request)
        took = loop.time() - began
        lane.pool.close()
    assert answer.status_code == 504
    assert envelope(answer)["message"] == "Upstream timed out"
    assert 0.15 <= took < 1.5
    assert header(answer, b"retry-after") is None


async def test_a_balancer_closing_without_answering_is_502(
    tmp_path: Path, make_token: TokenFactory
) -> None:
    """Sent once more on a fresh connection, closed again: 502 "Bad gateway"."""
    async with upstream(closing) as url:
        lane = lane_for(tmp_path, url)
        request = lane_request("/itens", token=make_token())
        assert lane.accepts(request)
        answer = await lane.respond(request)
        lane.pool.close()
    assert answer.status_code == 502
    assert envelope(answer) == {"status": "error", "data": None, "message": "Bad gateway"}
    assert header(answer, b"x-ratelimit-limit") == b"100"


def large_json() -> bytes:
    """A JSON body well over GZIP_MIN_BYTES."""
    items = [{"id": n, "nome": f"Item {n}", "preco": 9.99} for n in range(200)]
    return orjson.dumps({"status": "success", "data": items, "message": None})


LARGE = large_json()
LARGE_ANSWER = http_answer(LARGE, ("content-type", "application/json"), ("vary", "Origin"))


async def test_a_large_json_answer_is_gzipped_for_a_client_that_accepts_gzip(
    tmp_path: Path, make_token: TokenFactory
) -> None:
    """Content-Encoding gzip, exactly one Vary naming Accept-Encoding, the same JSON inside."""
    async with upstream(Balancer(LARGE_ANSWER)) as url:
        lane = lane_for(tmp_path, url)
        request = lane_request(
            "/itens", token=make_token(), headers=[(b"accept-encoding", b"gzip, deflate")]
        )
        assert lane.accepts(request)
        answer = await lane.respond(request)
        lane.pool.close()
    assert answer.status_code == 200
    assert header(answer, b"content-encoding") == b"gzip"
    vary = header_values(answer, b"vary")
    assert len(vary) == 1
    assert b"accept-encoding" in vary[0].lower()
    assert b"origin" in vary[0].lower(), "the balancer's Vary is kept, merged into one"
    assert gzip.decompress(bytes(answer.body)) == LARGE
    assert len(answer.body) < len(LARGE)
    assert header(answer, b"x-ratelimit-limit") == b"100"


async def test_a_large_json_answer_is_plain_without_accept_encoding(
    tmp_path: Path, make_token: TokenFactory
) -> None:
    """No Accept-Encoding: the body as the balancer sent it, no Content-Encoding."""
    async with upstream(Balancer(LARGE_ANSWER)) as url:
        lane = lane_for(tmp_path, url)
        request = lane_request("/itens", token=make_token())
        assert lane.accepts(request)
        answer = await lane.respond(request)
        lane.pool.close()
    assert bytes(answer.body) == LARGE
    assert header(answer, b"content-encoding") is None


async def test_a_small_answer_is_not_gzipped_even_when_gzip_is_accepted(
    tmp_path: Path, make_token: TokenFactory
) -> None:
    """Below GZIP_MIN_BYTES the body goes as it came."""
    async with upstream(Balancer()) as url:
        lane = lane_for(tmp_path, url)
        request = lane_request(
            "/itens", token=make_token(), headers=[(b"accept-encoding", b"gzip")]
        )
        assert lane.accepts(request)
        answer = await lane.respond(request)
        lane.pool.close()
    assert bytes(answer.body) == OK_BODY
    assert header(answer, b"content-encoding") is None


# start(): the in-process path, with Redis


async def primed(lane: GatewayLane, request: LaneRequest) -> Answer:
    """Spend the first hit through respond(): Redis counts it, later hits count in process."""
    deliveries = Deliveries()
    assert lane.start(request, deliveries) is False, "a counter's first hit goes to Redis"
    return await lane.respond(request)


def unique_user(make_token: TokenFactory) -> str:
    """A token for a user no other test run has counted in Redis."""
    return make_token(sub=f"lane-{uuid.uuid4().hex}", role="user")


async def warm_then_start(
    lane: GatewayLane, token: str, target: str = "/itens", headers: Any = ()
) -> tuple[Answer, Answer, Deliveries]:
    """A first request through respond() (the counter warms, a connection opens), then a
    second through start(): both answers, and what deliver() got."""
    first = lane_request("/itens", token=token, headers=list(headers))
    assert lane.accepts(first)
    warm = await primed(lane, first)
    second = lane_request(target, token=token, headers=list(headers))
    assert lane.accepts(second)
    deliveries = Deliveries()
    assert lane.start(second, deliveries) is True
    answer = await deliveries.wait()
    await asyncio.sleep(0.01)
    lane.pool.close()
    return warm, answer, deliveries


def answers_once(served: list[bytes], *, then_silent: bool) -> Handler:
    """A balancer that answers one request, then reads the next and closes (or stays silent)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                served.append(await reader.readuntil(b"\r\n\r\n"))
                if len(served) > 1:
                    if then_silent:
                        await reader.read()
                    break
                writer.write(OK)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return handler


async def test_with_a_warm_counter_start_forwards_and_delivers_from_the_callback(
    tmp_path: Path, make_token: TokenFactory, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a ready connection start() is True and deliver() gets the relayed answer, no task."""
    tasks: list[object] = []

    def counting(*args: Any, **kwargs: Any) -> None:
        tasks.append(args)
        answer_later(*args, **kwargs)

    monkeypatch.setattr("api_gateway.lane.answer_later", counting)
    balancer = Balancer()
    limiter = limiter_for("1000/hour", redis_url)
    async with upstream(balancer) as url:
        lane = lane_for(tmp_path, url, limiter=limiter)
        _, answer, deliveries = await warm_then_start(lane, unique_user(make_token), "/itens/7")
    await limiter.close()
    assert len(deliveries.answers) == 1
    assert tasks == [], "sent on the pooled connection and relayed from its callback"
    assert answer.status_code == 200
    assert bytes(answer.body) == OK_BODY
    assert header(answer, b"x-ratelimit-remaining") == b"998"
    assert header(answer, b"ratelimit-policy") == b'"default";q=1000;w=3600'
    assert balancer.heads[-1].startswith(b"GET /itens/7 HTTP/1.1\r\n")
    assert b"x-request-id: req-lane-1\r\n" in balancer.heads[-1]


async def test_with_no_ready_connection_start_answers_from_a_task(
    tmp_path: Path, make_token: TokenFactory, redis_url: str
) -> None:
    """The hit counted in process, the forward awaited in a task, deliver() called once."""
    balancer = Balancer()
    limiter = limiter_for("1000/hour", redis_url)
    async with upstream(balancer) as url:
        lane = lane_for(tmp_path, url, limiter=limiter)
        token = unique_user(make_token)
        request = lane_request("/itens", token=token)
        assert lane.accepts(request)
        # Counted straight in the limiter: the counter is warm, no connection is open.
        await limiter.hit("default", f"user:{request.note.username}")  # type: ignore[attr-defined]
        deliveries = Deliveries()
        assert lane.start(request, deliveries) is True
        answer = await deliveries.wait()
        await asyncio.sleep(0.01)
        lane.pool.close()
    await limiter.close()
    assert len(deliveries.answers) == 1
    assert answer.status_code == 200
    assert header(answer, b"x-ratelimit-remaining") == b"998"
    assert len(balancer.heads) == 1


async def test_start_gzips_a_large_answer_for_a_client_that_accepts_gzip(
    tmp_path: Path, make_token: TokenFactory, redis_url: str
) -> None:
    """The callback path compresses as respond() does: one Vary, gzip inside."""
    limiter = limiter_for("1000/hour", redis_url)
    async with upstream(Balancer(LARGE_ANSWER)) as url:
        lane = lane_for(tmp_path, url, limiter=limiter)
        accept = [(b"accept-encoding", b"gzip")]
        warm, answer, deliveries = await warm_then_start(
            lane, unique_user(make_token), headers=accept
        )
    await limiter.close()
    for relayed in (warm, answer):
        assert header(relayed, b"content-encoding") == b"gzip"
        vary = header_values(relayed, b"vary")
        assert len(vary) == 1
        assert b"accept-encoding" in vary[0].lower()
        assert gzip.decompress(bytes(relayed.body)) == LARGE
    assert len(deliveries.answers) == 1


async def test_start_delivers_a_502_when_the_balancer_drops_the_request(
    tmp_path: Path, make_token: TokenFactory, redis_url: str
) -> None:
    """A reused connection closed unanswered, then a fresh one too: 502 with rate-limit headers."""
    served: list[bytes] = []
    limiter = limiter_for("1000/hour", redis_url)
    async with upstream(answers_once(served, then_silent=False)) as url:
        lane = lane_for(tmp_path, url, limiter=limiter)
        _, answer, deliveries = await warm_then_start(lane, unique_user(make_token))
    await limiter.close()
    assert answer.status_code == 502
    assert envelope(answer)["message"] == "Bad gateway"
    assert header(answer, b"x-ratelimit-limit") == b"1000"
    assert len(served) == 3, "answered once, then the request read twice (sent once more)"
    assert len(deliveries.answers) == 1


async def test_start_delivers_a_504_when_the_balancer_goes_silent(
    tmp_path: Path, make_token: TokenFactory, redis_url: str
) -> None:
    """A warm connection whose next request gets no answer within UPSTREAM_TIMEOUT."""
    limiter = limiter_for("1000/hour", redis_url)
    async with upstream(answers_once([], then_silent=True)) as url:
        lane = lane_for(tmp_path, url, limiter=limiter, upstream_timeout=0.2)
        _, answer, deliveries = await warm_then_start(lane, unique_user(make_token))
    await limiter.close()
    assert answer.status_code == 504
    assert envelope(answer)["message"] == "Upstream timed out"
    assert len(deliveries.answers) == 1
