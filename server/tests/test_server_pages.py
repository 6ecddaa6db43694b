"""Listings in-process on SQLite: keyset cursors and Link, ETags, the row encoder, and the
lane answering as the route does."""

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from server.cache import ItemCache
from server.lane import ItemReadLane
from server.pages import encode_cursor, item_json
from server.schemas import ItemOut
from server_apps import running_server, server_settings
from svc_common.auth import TokenVerifier
from svc_common.database import create_engine, session_factory
from svc_common.serving.lane import LaneRequest

from conftest import TEST_KEY, TokenFactory

NEXT = re.compile(r'^<(/itens\?[^>]+)>; rel="next"$')


@pytest.fixture
def client(tmp_path: Path, make_token: TokenFactory) -> Iterator[TestClient]:
    with running_server(tmp_path) as test_client:
        test_client.headers["Authorization"] = f"Bearer {make_token()}"
        yield test_client


def create(client: TestClient, nome: str, preco: float) -> dict[str, Any]:
    response = client.post("/itens", json={"nome": nome, "preco": preco})
    assert response.status_code == 201
    return dict(response.json()["data"])


def walk(client: TestClient, url: str) -> list[list[dict[str, Any]]]:
    """Every page from `url` on, following Link: rel=next."""
    pages = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.text
        pages.append(response.json()["data"])
        link = response.headers.get("link")
        url = NEXT.match(link).group(1) if link else ""  # type: ignore[union-attr]
    return pages


@pytest.mark.parametrize("sort", ["id", "-id", "preco", "-preco", "nome", "-created_at"])
def test_following_link_visits_every_item_once_in_the_order_of_the_sort(
    client: TestClient, sort: str
) -> None:
    for n in range(23):
        create(client, nome=f"Item {n % 5}", preco=1 + n % 4)  # many ties on nome and preco
    everything = client.get("/itens", params={"sort": sort, "limit": 500}).json()["data"]
    pages = walk(client, f"/itens?sort={sort}&limit=5")
    assert [len(page) for page in pages] == [5, 5, 5, 5, 3]
    assert [item["id"] for page in pages for item in page] == [i["id"] for i in everything]


def test_a_cursor_keeps_the_filters_and_the_total_of_all_matches(client: TestClient) -> None:
    for n in range(12):
        create(client, nome=f"{'Caneta' if n % 2 else 'Lapis'} {n}", preco=1 + n)
    first = client.get("/itens", params={"q": "caneta", "min_preco": 3, "limit": 2})
    assert first.headers["x-total-count"] == "5"
    url = NEXT.match(first.headers["link"]).group(1)  # type: ignore[union-attr]
    assert "q=caneta" in url
    assert "min_preco=3" in url
    second = client.get(url)
    assert second.json()["meta"]["total"] == 5
    assert all(i["nome"].startswith("Caneta") and i["preco"] >= 3 for i in second.json()["data"])
    assert [len(page) for page in walk(client, url)] == [2, 1]


def test_the_last_page_has_no_next_link(client: TestClient) -> None:
    create(client, nome="Só", preco=1)
    assert "link" not in client.get("/itens", params={"limit": 5}).headers


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not-a-cursor"},
        {"cursor": "WyJpZCIsMSwxXQ", "sort": "preco"},  # a cursor of sort=id
        {"cursor": "WyJpZCIsMSwxXQ", "offset": "5"},
        {"cursor": "WyJwcmVjbyIsImJhbmFuYSIsMV0", "sort": "preco"},  # ["preco","banana",1]
    ],
)
def test_a_cursor_that_is_not_ours_is_422_in_the_envelope(
    client: TestClient, params: dict[str, str]
) -> None:
    response = client.get("/itens", params=params)
    assert response.status_code == 422
    assert response.json()["status"] == "error"


def test_a_listing_has_an_etag_that_changes_with_any_write(client: TestClient) -> None:
    item = create(client, nome="Caneta", preco=2)
    listed = client.get("/itens")
    tag = listed.headers["etag"]
    assert tag.startswith('W/"')
    assert client.get("/itens", headers={"If-None-Match": tag}).status_code == 304
    client.put(f"/itens/{item['id']}", json={"nome": "Caneta", "preco": 3})
    changed = client.get("/itens", headers={"If-None-Match": tag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != tag


@pytest.mark.parametrize(
    ("preco", "stamp"),
    [
        (Decimal("0.01"), datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (Decimal("10.10"), datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        (Decimal("9999999999.99"), datetime(2026, 1, 2, 3, 4, 5, 120000)),  # naive: SQLite's
        (Decimal("3"), datetime(1999, 12, 31, 23, 59, 59, 1, tzinfo=UTC)),
    ],
)
def test_rows_encode_to_the_json_itemout_gives(preco: Decimal, stamp: datetime) -> None:
    row = SimpleNamespace(
        id=7,
        nome='Ação \u2713 "x"',
        descricao="linha\nnova",
        preco=preco,
        owner="ana",
        created_at=stamp,
        updated_at=stamp,
        version=3,
    )
    assert item_json(row) == ItemOut.model_validate(row).model_dump_json().encode()


def test_cursors_are_opaque_url_safe_text() -> None:
    row = SimpleNamespace(id=5, nome="a/b+c=d é", preco=Decimal("1.50"))
    for sort in ("id", "-nome", "preco"):
        assert re.fullmatch(r"[A-Za-z0-9_-]+", encode_cursor(row, sort))


@pytest.mark.parametrize(
    "query",
    ["", "limit=3", "sort=-preco&limit=2&offset=1", "q=item%201&min_preco=2", "limit=2&cursor="],
)
async def test_the_lane_and_the_route_answer_a_listing_alike(
    client: TestClient, tmp_path: Path, make_token: TokenFactory, query: str
) -> None:
    for n in range(7):
        create(client, nome=f"Item {n % 3}", preco=1 + n % 4)
    if query.endswith("cursor="):
        link = client.get("/itens?limit=2").headers["link"]
        query += NEXT.match(link).group(1).rsplit("cursor=", 1)[1]  # type: ignore[union-attr]
    engine = create_engine(server_settings(tmp_path))
    lane = ItemReadLane(
        verifier=TokenVerifier(TEST_KEY),
        cache=ItemCache(None, ttl=30),
        sessions=session_factory(engine),
        served_by="server",
        access_log=False,
    )
    token = make_token()
    request = LaneRequest(
        path="/itens",
        raw_path=b"/itens",
        query=query.encode(),
        headers=[(b"authorization", f"Bearer {token}".encode())],
        client=("127.0.0.1", 1),
    )
    assert lane.accepts(request)
    answer = await lane.respond(request)
    await engine.dispose()
    route = client.get(f"/itens?{query}")
    assert (answer.status_code, bytes(answer.body)) == (route.status_code, route.content)
    lane_headers = {k.decode(): v.decode() for k, v in answer.raw_headers}
    for name in ("etag", "x-total-count", "link", "content-type"):
        assert lane_headers.get(name) == route.headers.get(name), name
