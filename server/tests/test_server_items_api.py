"""The item routes in-process, on a throwaway SQLite file."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from server_apps import running_server

from conftest import TokenFactory


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with running_server(tmp_path) as test_client:
        yield test_client


def _auth(make_token: TokenFactory, sub: str = "admin", role: str = "admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(sub=sub, role=role)}"}


def test_every_response_says_which_instance_served_it(client: TestClient) -> None:
    assert client.get("/saude").headers["x-served-by"] == "server2"


def test_crud_round_trip(client: TestClient, make_token: TokenFactory) -> None:
    auth = _auth(make_token, "ana", "user")
    created = client.post("/itens", headers=auth, json={"nome": "Caneta", "preco": 2.5})
    assert created.status_code == 201
    item = created.json()["data"]
    assert item["descricao"] == ""
    assert item["owner"] == "ana"
    assert item["created_at"].endswith("Z") or item["created_at"].endswith("+00:00")
    listed = client.get("/itens", headers=auth)
    assert listed.headers["x-total-count"] == "1"
    assert listed.json()["meta"] == {"total": 1, "limit": 50, "offset": 0}
    put = client.put(f"/itens/{item['id']}", headers=auth, json={"nome": "Lápis", "preco": 1})
    assert put.json()["data"]["nome"] == "Lápis"
    assert client.delete(f"/itens/{item['id']}", headers=auth).status_code == 200
    assert client.get(f"/itens/{item['id']}", headers=auth).status_code == 404


def test_price_keeps_exactly_two_decimals(client: TestClient, make_token: TokenFactory) -> None:
    auth = _auth(make_token)
    item = client.post("/itens", headers=auth, json={"nome": "x", "preco": 0.1}).json()["data"]
    assert item["preco"] == 0.1
    again = client.get(f"/itens/{item['id']}", headers=auth).json()["data"]
    assert again["preco"] == 0.1


@pytest.mark.parametrize("item_id", ["abc", "0", "-1", str(2**31), "1.5"])
def test_bad_item_ids_are_422(client: TestClient, make_token: TokenFactory, item_id: str) -> None:
    response = client.get(f"/itens/{item_id}", headers=_auth(make_token))
    assert response.status_code == 422
    assert response.json()["status"] == "error"


@pytest.mark.parametrize(
    "payload",
    [
        [],
        "text",
        {"nome": 5, "preco": 1},
        {"nome": "x", "preco": "NaN"},
        {"nome": "x", "preco": "Infinity"},
        {"nome": "x", "preco": True},
        {"nome": "x", "preco": 1e13},
    ],
)
def test_hostile_bodies_are_422(
    client: TestClient, make_token: TokenFactory, payload: object
) -> None:
    response = client.post("/itens", headers=_auth(make_token), json=payload)
    assert response.status_code == 422


def test_paging_is_bounded(client: TestClient, make_token: TokenFactory) -> None:
    assert client.get("/itens?limit=501", headers=_auth(make_token)).status_code == 422
    assert client.get("/itens?offset=-1", headers=_auth(make_token)).status_code == 422


def test_only_owner_or_admin_may_change(client: TestClient, make_token: TokenFactory) -> None:
    owner = _auth(make_token, "ana", "user")
    other = _auth(make_token, "bob", "user")
    item_id = client.post("/itens", headers=owner, json={"nome": "x", "preco": 1}).json()["data"][
        "id"
    ]
    assert (
        client.put(f"/itens/{item_id}", headers=other, json={"nome": "y", "preco": 1}).status_code
        == 403
    )
    assert client.delete(f"/itens/{item_id}", headers=other).status_code == 403
    assert (
        client.put(
            f"/itens/{item_id}", headers=_auth(make_token), json={"nome": "y", "preco": 1}
        ).status_code
        == 200
    )


def test_items_need_a_valid_token(client: TestClient, make_token: TokenFactory) -> None:
    assert client.get("/itens").status_code == 401
    forged = make_token("some-other-key-that-is-long-enough-000000")
    assert client.get("/itens", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def _create(client: TestClient, auth: dict[str, str], **fields: object) -> dict[str, object]:
    body = {"nome": "x", "preco": 1} | fields
    response = client.post("/itens", headers=auth, json=body)
    assert response.status_code == 201, response.text
    item: dict[str, object] = response.json()["data"]
    return item


def test_read_carries_an_etag_and_if_none_match_gets_304(
    client: TestClient, make_token: TokenFactory
) -> None:
    auth = _auth(make_token)
    created = client.post("/itens", headers=auth, json={"nome": "x", "preco": 1})
    item_id = created.json()["data"]["id"]
    tag = client.get(f"/itens/{item_id}", headers=auth).headers["etag"]
    assert tag == created.headers["etag"] == f'"{item_id}.1"'
    again = client.get(f"/itens/{item_id}", headers=auth | {"If-None-Match": f'"x", W/{tag}'})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == tag
    client.put(f"/itens/{item_id}", headers=auth, json={"nome": "y", "preco": 1})
    changed = client.get(f"/itens/{item_id}", headers=auth | {"If-None-Match": tag})
    assert changed.status_code == 200
    assert changed.headers["etag"] == f'"{item_id}.2"'
    assert changed.json()["data"]["version"] == 2


def test_put_and_delete_with_a_stale_if_match_are_412_and_change_nothing(
    client: TestClient, make_token: TokenFactory
) -> None:
    auth = _auth(make_token)
    item_id = _create(client, auth, nome="first")["id"]
    stale = client.get(f"/itens/{item_id}", headers=auth).headers["etag"]
    fresh = client.put(
        f"/itens/{item_id}", headers=auth | {"If-Match": stale}, json={"nome": "second", "preco": 1}
    )
    assert fresh.status_code == 200
    current = fresh.headers["etag"]
    lost = client.put(
        f"/itens/{item_id}", headers=auth | {"If-Match": stale}, json={"nome": "third", "preco": 1}
    )
    assert lost.status_code == 412
    assert lost.json()["status"] == "error"
    assert lost.headers["etag"] == current
    assert client.delete(f"/itens/{item_id}", headers=auth | {"If-Match": stale}).status_code == 412
    assert client.get(f"/itens/{item_id}", headers=auth).json()["data"]["nome"] == "second"
    weak = client.delete(f"/itens/{item_id}", headers=auth | {"If-Match": f"W/{current}"})
    assert weak.status_code == 412, "If-Match compares strongly: a weak tag never matches"
    assert (
        client.delete(f"/itens/{item_id}", headers=auth | {"If-Match": current}).status_code == 200
    )


def test_if_match_star_only_requires_the_item_to_exist(
    client: TestClient, make_token: TokenFactory
) -> None:
    auth = _auth(make_token)
    item_id = _create(client, auth)["id"]
    body = {"nome": "y", "preco": 2}
    assert (
        client.put(f"/itens/{item_id}", headers=auth | {"If-Match": "*"}, json=body).status_code
        == 200
    )
    assert client.put("/itens/999", headers=auth | {"If-Match": "*"}, json=body).status_code == 404


def test_listing_filters_by_name_and_price_and_counts_the_matches(
    client: TestClient, make_token: TokenFactory
) -> None:
    auth = _auth(make_token)
    for nome, preco in [("Caneta azul", 2.5), ("Caneta 100%", 4), ("Lápis", 1), ("CANETA", 10)]:
        _create(client, auth, nome=nome, preco=preco)
    listed = client.get("/itens", headers=auth, params={"q": "caneta", "max_preco": "5"})
    assert [i["nome"] for i in listed.json()["data"]] == ["Caneta azul", "Caneta 100%"]
    assert listed.headers["x-total-count"] == "2"
    percent = client.get("/itens", headers=auth, params={"q": "%"}).json()["data"]
    assert [i["nome"] for i in percent] == ["Caneta 100%"], "% is a literal, not a wildcard"
    priced = client.get("/itens", headers=auth, params={"min_preco": "2.5", "max_preco": "4"})
    assert priced.json()["meta"]["total"] == 2


def test_every_page_carries_the_total_of_matches_even_past_the_end(
    client: TestClient, make_token: TokenFactory
) -> None:
    auth = _auth(make_token)
    for n in range(5):
        _create(client, auth, nome=f"Total {n}", preco=1 + n)
    for offset, shown in [(0, 2), (4, 1), (5, 0), (50, 0)]:
        page = client.get("/itens", headers=auth, params={"limit": 2, "offset": offset})
        assert len(page.json()["data"]) == shown
        assert page.json()["meta"]["total"] == 5, f"offset {offset}"
        assert page.headers["x-total-count"] == "5"
    none = client.get("/itens", headers=auth, params={"q": "no such item"})
    assert none.json()["meta"]["total"] == 0


def test_listing_sorts_and_pages_without_overlap(
    client: TestClient, make_token: TokenFactory
) -> None:
    auth = _auth(make_token)
    for preco in [3, 1, 2, 1, 3]:
        _create(client, auth, preco=preco)
    pages = [
        client.get("/itens", headers=auth, params={"sort": "-preco", "limit": 2, "offset": o})
        for o in (0, 2, 4)
    ]
    seen = [(i["preco"], i["id"]) for page in pages for i in page.json()["data"]]
    assert seen == sorted(seen, key=lambda p: (-p[0], -p[1]))
    assert len({i for _, i in seen}) == 5
    assert pages[2].json()["meta"] == {"total": 5, "limit": 2, "offset": 4}


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "descricao"},
        {"sort": "id; drop table itens"},
        {"min_preco": "-1"},
        {"max_preco": "NaN"},
        {"min_preco": "5", "max_preco": "4"},
        {"q": ""},
        {"min_preco": "1.001"},
        # PostgreSQL answered these with a 500 (found by fuzzing): NUL in text, offset > bigint.
        {"q": "a\x00b"},
        {"q": "\x1b[31m"},
        {"offset": str(2**63)},
        {"offset": str(2**31)},
    ],
)
def test_bad_listing_parameters_are_422(
    client: TestClient, make_token: TokenFactory, params: dict[str, str]
) -> None:
    response = client.get("/itens", headers=_auth(make_token), params=params)
    assert response.status_code == 422
    assert response.json()["status"] == "error"
    assert response.json()["data"][0]["loc"][0] == "query"


def test_a_post_resent_with_the_same_idempotency_key_is_stored_once(
    client: TestClient, make_token: TokenFactory
) -> None:
    auth = _auth(make_token, "ana", "user") | {"Idempotency-Key": "k-1"}
    body = {"nome": "Caneta", "preco": 2.5}
    first = client.post("/itens", headers=auth, json=body)
    again = client.post("/itens", headers=auth, json=body)
    assert first.status_code == again.status_code == 201
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert client.get("/itens", headers=auth).json()["meta"]["total"] == 1


def test_idempotency_keys_belong_to_their_owner(
    client: TestClient, make_token: TokenFactory
) -> None:
    body = {"nome": "Caneta", "preco": 2.5}
    ana = client.post(
        "/itens", headers=_auth(make_token, "ana", "user") | {"Idempotency-Key": "k"}, json=body
    )
    bob = client.post(
        "/itens", headers=_auth(make_token, "bob", "user") | {"Idempotency-Key": "k"}, json=body
    )
    assert ana.status_code == bob.status_code == 201
    assert ana.json()["data"]["id"] != bob.json()["data"]["id"]


def test_a_reused_idempotency_key_with_another_body_is_422_and_stores_nothing(
    client: TestClient, make_token: TokenFactory
) -> None:
    auth = _auth(make_token) | {"Idempotency-Key": "k-2"}
    assert client.post("/itens", headers=auth, json={"nome": "a", "preco": 1}).status_code == 201
    reused = client.post("/itens", headers=auth, json={"nome": "b", "preco": 1})
    assert reused.status_code == 422
    assert reused.json()["status"] == "error"
    assert client.get("/itens", headers=auth).json()["meta"]["total"] == 1


@pytest.mark.parametrize("key", ["", "has space", "x" * 65, "a*b"])
def test_malformed_idempotency_keys_are_422(
    client: TestClient, make_token: TokenFactory, key: str
) -> None:
    headers = _auth(make_token) | {"Idempotency-Key": key}
    response = client.post("/itens", headers=headers, json={"nome": "a", "preco": 1})
    assert response.status_code == 422
