"""The item server's lane handler driven in memory, over a throwaway SQLite file."""

import socket
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from server.cache import ItemCache
from server.config import ServerSettings
from server.crud import create_item
from server.lane import ROUTE, ItemReadLane
from server.main import MIGRATIONS
from server.pages import ListQuery
from server.schemas import ItemIn
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from svc_common.auth import TokenVerifier
from svc_common.database import create_engine, migrate, session_factory
from svc_common.serving.lane import Answer, LaneRequest

from conftest import TEST_KEY, TokenFactory

Sessions = async_sessionmaker[AsyncSession]


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[Sessions]:
    """Sessions on a migrated SQLite file under tmp_path."""
    settings = ServerSettings(
        secret_key=TEST_KEY,
        database_url=f"sqlite:///{tmp_path}/items.db",
        _env_file=None,  # type: ignore[call-arg]
    )
    engine = create_engine(settings)
    await migrate(engine, MIGRATIONS)
    yield session_factory(engine)
    await engine.dispose()


async def stored_item(sessions: Sessions, nome: str = "Caneta") -> Any:
    """A new item owned by ana, as the database holds it."""
    async with sessions() as session:
        item, created = await create_item(
            session, data=ItemIn(nome=nome, descricao="Azul", preco=Decimal("2.50")), owner="ana"
        )
    assert created
    return item


def lane_over(sessions: Sessions, served_by: str = "server2") -> ItemReadLane:
    """An ItemReadLane with no Redis behind its cache: every read goes to the database."""
    return ItemReadLane(
        verifier=TokenVerifier(TEST_KEY),
        cache=ItemCache(None, ttl=30, jitter=0.1),
        sessions=sessions,
        served_by=served_by,
        access_log=False,
    )


def lane_request(
    path: str,
    *,
    token: str | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
    query: bytes = b"",
) -> LaneRequest:
    """A GET as the HTTP parser hands it to the lane, with a bearer token when given."""
    raw_headers = [(b"host", b"server.test"), *(headers or [])]
    if token is not None:
        raw_headers.append((b"authorization", f"Bearer {token}".encode()))
    return LaneRequest(
        path=path, raw_path=path.encode(), query=query, headers=raw_headers, client=("10.0.0.2", 1)
    )


def header(answer: Answer, name: bytes) -> bytes | None:
    """The only value of a (lower-case) header, or None; fails when it appears more than once."""
    values = [value for key, value in answer.raw_headers if key == name]
    assert len(values) <= 1, f"{name!r} appears {len(values)} times"
    return values[0] if values else None


def envelope(answer: Answer) -> Any:
    """The decoded JSON body of an answer."""
    return orjson.loads(bytes(answer.body))


async def accepted_answer(
    lane: ItemReadLane, path: str, token: str, headers: list[tuple[bytes, bytes]] | None = None
) -> Answer:
    """respond() to a request accepts() took."""
    request = lane_request(path, token=token, headers=headers)
    assert lane.accepts(request)
    return await lane.respond(request)


# accepts()


@pytest.mark.parametrize(("tail", "item_id"), [("5", 5), ("1", 1), ("2147483647", 2**31 - 1)])
async def test_a_well_formed_id_with_a_valid_token_is_accepted_and_noted(
    sessions: Sessions, make_token: TokenFactory, tail: str, item_id: int
) -> None:
    """The id is parsed once, into note; the route label is the FastAPI route's."""
    lane = lane_over(sessions)
    request = lane_request(f"/itens/{tail}", token=make_token(sub="ana", role="user"))
    assert lane.accepts(request)
    assert request.note == item_id
    assert request.route == ROUTE == "/itens/{item_id}"


@pytest.mark.parametrize(
    "tail", ["0", "abc", "99999999999", str(2**31), "-1", "1.5", "5/", "", "١٢", "5x"]
)
async def test_an_id_fastapi_would_refuse_is_declined(
    sessions: Sessions, make_token: TokenFactory, tail: str
) -> None:
    """The route answers those with its 422 (or its own 404/405)."""
    lane = lane_over(sessions)
    request = lane_request(f"/itens/{tail}", token=make_token())
    assert not lane.accepts(request)
    assert request.note is None
    assert request.route == "unmatched"


@pytest.mark.parametrize(
    "query", [b"", b"limit=20", b"q=cane&min_preco=1&max_preco=9.5&sort=-preco&offset=3"]
)
async def test_a_listing_query_fastapi_would_take_is_accepted_and_parsed_once(
    sessions: Sessions, make_token: TokenFactory, query: bytes
) -> None:
    """The query is parsed by ListQuery, as the route's parameters are, into note."""
    lane = lane_over(sessions)
    request = lane_request("/itens", token=make_token(), query=query)
    assert lane.accepts(request)
    assert isinstance(request.note, ListQuery)
    assert request.route == "/itens"


@pytest.mark.parametrize(
    "query",
    [
        *(b"limit=0", b"limit=x", b"sort=senha", b"q=", b"min_preco=5&max_preco=1"),
        *(b"cursor=abc", b"offset=-1", b"q=%00", b"cursor=WyJpZCIsMSwxXQ&offset=2"),
    ],
)
async def test_a_listing_query_fastapi_would_refuse_is_declined(
    sessions: Sessions, make_token: TokenFactory, query: bytes
) -> None:
    """The route answers those with its 422."""
    lane = lane_over(sessions)
    assert not lane.accepts(lane_request("/itens", token=make_token(), query=query))


async def test_a_listing_without_a_token_is_declined(sessions: Sessions) -> None:
    """The route answers the 401."""
    assert not lane_over(sessions).accepts(lane_request("/itens"))


@pytest.mark.parametrize("path", ["/saude", "/metrics", "/itensx/5", "/outros/5"])
async def test_other_paths_are_declined(
    sessions: Sessions, make_token: TokenFactory, path: str
) -> None:
    """Only /itens/<id> is read on the lane."""
    lane = lane_over(sessions)
    assert not lane.accepts(lane_request(path, token=make_token()))


async def test_a_request_without_a_token_is_declined(sessions: Sessions) -> None:
    """The route answers its 401."""
    lane = lane_over(sessions)
    assert not lane.accepts(lane_request("/itens/5"))


@pytest.mark.parametrize("token", ["not-a-jwt", "wrong-key", "expired", "refresh", "basic"])
async def test_a_request_with_a_bad_token_is_declined(
    sessions: Sessions, make_token: TokenFactory, token: str
) -> None:
    """Garbage, a foreign signature, expired, a refresh token, another scheme: the route's 401."""
    authorization = {
        "not-a-jwt": b"Bearer not-a-jwt",
        "wrong-key": b"Bearer "
        + make_token(key="another-signing-key-0123456789abcdef-0123456789").encode(),
        "expired": b"Bearer " + make_token(lifetime=-10).encode(),
        "refresh": b"Bearer " + make_token(type="refresh").encode(),
        "basic": b"Basic YTpi",
    }[token]
    lane = lane_over(sessions)
    request = lane_request("/itens/5", headers=[(b"authorization", authorization)])
    assert not lane.accepts(request)
    assert request.note is None


async def test_every_answer_carries_x_served_by(sessions: Sessions) -> None:
    """The lane writes the instance's name as the ASGI middleware does."""
    assert lane_over(sessions, "server2").extra_headers == ((b"x-served-by", b"server2"),)


# respond()


async def test_an_existing_item_is_200_in_the_envelope_with_its_etag(
    sessions: Sessions, make_token: TokenFactory
) -> None:
    """The item as the route shows it, with a strong ETag of id and version."""
    item = await stored_item(sessions)
    lane = lane_over(sessions)
    answer = await accepted_answer(lane, f"/itens/{item.id}", make_token(sub="bob", role="user"))
    assert answer.status_code == 200
    assert header(answer, b"etag") == f'"{item.id}.{item.version}"'.encode()
    assert header(answer, b"content-type") == b"application/json"
    body = envelope(answer)
    assert (body["status"], body["message"]) == ("success", None)
    data = body["data"]
    assert (data["id"], data["nome"], data["descricao"]) == (item.id, "Caneta", "Azul")
    assert (data["preco"], data["owner"], data["version"]) == (2.5, "ana", item.version)


async def test_if_none_match_with_the_current_etag_is_304_without_a_body(
    sessions: Sessions, make_token: TokenFactory
) -> None:
    """The client's copy is current: 304 with the ETag and nothing else to send."""
    item = await stored_item(sessions)
    lane = lane_over(sessions)
    token = make_token()
    first = await accepted_answer(lane, f"/itens/{item.id}", token)
    tag = header(first, b"etag")
    assert tag is not None
    answer = await accepted_answer(lane, f"/itens/{item.id}", token, [(b"if-none-match", tag)])
    assert answer.status_code == 304
    assert header(answer, b"etag") == tag
    assert bytes(answer.body) == b""


@pytest.mark.parametrize("if_none_match", ["*", 'W/"{id}.1"', '"x", "{id}.1"'])
async def test_if_none_match_forms_naming_the_current_etag_are_304(
    sessions: Sessions, make_token: TokenFactory, if_none_match: str
) -> None:
    """A wildcard, a weak tag or a list holding the current tag (weak comparison)."""
    item = await stored_item(sessions)
    assert item.version == 1
    lane = lane_over(sessions)
    condition = [(b"if-none-match", if_none_match.replace("{id}", str(item.id)).encode())]
    answer = await accepted_answer(lane, f"/itens/{item.id}", make_token(), condition)
    assert answer.status_code == 304


async def test_if_none_match_with_a_stale_etag_is_200(
    sessions: Sessions, make_token: TokenFactory
) -> None:
    """Another version's tag: the whole item again."""
    item = await stored_item(sessions)
    lane = lane_over(sessions)
    stale = [(b"if-none-match", f'"{item.id}.0"'.encode())]
    answer = await accepted_answer(lane, f"/itens/{item.id}", make_token(), stale)
    assert answer.status_code == 200
    assert envelope(answer)["data"]["id"] == item.id


async def test_a_missing_item_is_404_in_the_envelope(
    sessions: Sessions, make_token: TokenFactory
) -> None:
    """No such id: the route's 404 message."""
    await stored_item(sessions)
    lane = lane_over(sessions)
    answer = await accepted_answer(lane, "/itens/424242", make_token())
    assert answer.status_code == 404
    assert envelope(answer) == {"status": "error", "data": None, "message": "Item 424242 not found"}
    assert header(answer, b"etag") is None


@pytest.mark.parametrize("where", ["sqlite-unopenable", "postgres-closed-port"])
async def test_a_database_that_is_down_is_503_with_retry_after(
    tmp_path: Path, make_token: TokenFactory, where: str
) -> None:
    """The route's error handler's answer: 503 in the envelope, Retry-After: 1."""
    url = {
        "sqlite-unopenable": f"sqlite+aiosqlite:///{tmp_path}/absent/dir/items.db",
        "postgres-closed-port": (
            f"postgresql+asyncpg://user:secret@127.0.0.1:{closed_port()}/items"
        ),
    }[where]
    engine = create_async_engine(url)
    lane = lane_over(session_factory(engine))
    try:
        answer = await accepted_answer(lane, "/itens/1", make_token())
    finally:
        await engine.dispose()
    assert answer.status_code == 503
    assert envelope(answer) == {
        "status": "error",
        "data": None,
        "message": "Database unavailable, try again shortly",
    }
    assert header(answer, b"retry-after") == b"1"
