"""/itens through the gateway and the balancer: ETags, conditional requests, filtered listings."""

import uuid

import httpx


def _create(gateway: httpx.Client, **fields: object) -> httpx.Response:
    response = gateway.post("/itens", json={"nome": "x", "preco": 1} | fields)
    assert response.status_code == 201, response.text
    return response


def test_etag_304_and_412_travel_through_the_gateway(gateway: httpx.Client) -> None:
    created = _create(gateway)
    item_id, tag = created.json()["data"]["id"], created.headers["etag"]
    for _ in range(2):  # once on each server
        not_modified = gateway.get(f"/itens/{item_id}", headers={"If-None-Match": tag})
        assert not_modified.status_code == 304
        assert not_modified.content == b""
        assert not_modified.headers["etag"] == tag
    changed = gateway.put(
        f"/itens/{item_id}", headers={"If-Match": tag}, json={"nome": "y", "preco": 2}
    )
    assert changed.status_code == 200
    stale = gateway.put(
        f"/itens/{item_id}", headers={"If-Match": tag}, json={"nome": "z", "preco": 3}
    )
    assert stale.status_code == 412
    assert stale.json()["status"] == "error"
    assert stale.headers["etag"] == changed.headers["etag"]
    assert gateway.delete(f"/itens/{item_id}", headers={"If-Match": tag}).status_code == 412
    gone = gateway.delete(f"/itens/{item_id}", headers={"If-Match": changed.headers["etag"]})
    assert gone.status_code == 200


def test_listing_filters_sorts_and_counts_through_the_gateway(gateway: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:8]
    for preco in (5, 1, 3):
        _create(gateway, nome=f"Filtro {tag} {preco}", preco=preco)
    _create(gateway, nome=f"Outro {tag}", preco=2)
    listed = gateway.get(
        "/itens", params={"q": f"filtro {tag}", "min_preco": 2, "sort": "-preco", "limit": 1}
    )
    assert listed.status_code == 200
    assert listed.headers["x-total-count"] == "2"
    assert listed.json()["meta"] == {"total": 2, "limit": 1, "offset": 0}
    assert [i["preco"] for i in listed.json()["data"]] == [5]
    bad = gateway.get("/itens", params={"sort": "senha"})
    assert bad.status_code == 422
    assert bad.json()["status"] == "error"
