"""The item routes in-process, on a throwaway SQLite file."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from server.config import ServerSettings
from server.main import build_app

from conftest import TEST_KEY, TokenFactory


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = ServerSettings(
        service_name="server2",
        secret_key=TEST_KEY,
        database_url=f"sqlite:///{tmp_path}/items.db",
        _env_file=None,  # type: ignore[call-arg]
    )
    with TestClient(build_app(settings)) as test_client:
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
