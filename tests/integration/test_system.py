"""The whole system over HTTP: the README flow, envelopes, round-robin, observability."""

import itertools
import time
import uuid

import httpx
import pytest

from tests.integration.stack import SERVICES, Stack

ITEM = {"nome": "Item Teste", "descricao": "Descrição", "preco": 99.99}


@pytest.mark.parametrize("service", list(SERVICES))
def test_every_service_answers_saude_metrics_and_docs(stack: Stack, service: str) -> None:
    base = stack.url(service)
    saude = httpx.get(f"{base}/saude")
    assert saude.status_code == 200
    assert saude.json()["status"] == "success"
    assert saude.json()["data"]["status"] == "ok"
    metrics = stack.scrape(service)
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "# TYPE http_requests_total counter" in metrics.text
    docs = httpx.get(f"{base}/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


def test_readme_flow_logs_in_lists_and_creates_an_item(stack: Stack) -> None:
    gw = stack.url("api_gateway")
    login = httpx.post(f"{gw}/login", json={"username": "admin", "password": "admin123"})
    assert login.status_code == 200
    token = login.json()["data"]["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    listed = httpx.get(f"{gw}/itens", headers=auth)
    assert listed.status_code == 200
    assert isinstance(listed.json()["data"], list)
    created = httpx.post(f"{gw}/itens", headers=auth, json=ITEM)
    assert created.status_code == 201
    body = created.json()
    assert body["status"] == "success"
    assert body["data"]["nome"] == "Item Teste"
    assert body["data"]["preco"] == 99.99
    assert body["data"]["owner"] == "admin"
    assert created.headers["location"] == f"/itens/{body['data']['id']}"


def test_consecutive_gets_alternate_between_server_and_server2(gateway: httpx.Client) -> None:
    served = [gateway.get("/itens").headers["x-served-by"] for _ in range(6)]
    assert set(served) == {"server", "server2"}
    assert all(a != b for a, b in itertools.pairwise(served))


def test_itens_without_a_token_is_401_in_the_envelope(stack: Stack) -> None:
    response = httpx.get(f"{stack.url('api_gateway')}/itens")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"status": "error", "data": None, "message": "Not authenticated"}


def test_a_garbage_token_is_401_not_500(stack: Stack) -> None:
    response = httpx.get(
        f"{stack.url('api_gateway')}/itens", headers={"Authorization": "Bearer not.a.jwt"}
    )
    assert response.status_code == 401
    assert response.json()["status"] == "error"


def test_unknown_item_id_is_404_in_the_envelope(gateway: httpx.Client) -> None:
    response = gateway.get("/itens/987654")
    assert response.status_code == 404
    assert response.json()["status"] == "error"
    assert "987654" in response.json()["message"]


@pytest.mark.parametrize(
    "payload",
    [
        {"nome": "", "preco": 10},
        {"nome": "x" * 101, "preco": 10},
        {"nome": "ok", "descricao": "d" * 501, "preco": 10},
        {"nome": "ok", "preco": 0},
        {"nome": "ok", "preco": 9.999},
        {"nome": "ok"},
        {"nome": "ok", "preco": 1, "owner": "mallory"},
    ],
    ids=[
        "empty-nome",
        "long-nome",
        "long-descricao",
        "zero-preco",
        "three-decimals",
        "no-preco",
        "owner-field",
    ],
)
def test_invalid_item_is_422_and_nothing_is_stored(gateway: httpx.Client, payload: dict) -> None:
    before = gateway.get("/itens").json()["meta"]["total"]
    response = gateway.post("/itens", json=payload)
    assert response.status_code == 422
    assert response.json()["status"] == "error"
    assert response.json()["data"][0]["loc"][0] == "body"
    assert gateway.get("/itens").json()["meta"]["total"] == before


def test_malformed_json_is_422_not_500(gateway: httpx.Client) -> None:
    response = gateway.post(
        "/itens", content=b'{"nome": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["status"] == "error"


def test_item_put_and_delete_round_trip_across_both_servers(gateway: httpx.Client) -> None:
    item_id = gateway.post("/itens", json=ITEM).json()["data"]["id"]
    changed = {"nome": "Renomeado", "descricao": "", "preco": 10.5}
    replaced = gateway.put(f"/itens/{item_id}", json=changed)
    assert replaced.status_code == 200
    # Two reads land on both servers; each must see the write.
    for _ in range(2):
        assert gateway.get(f"/itens/{item_id}").json()["data"]["nome"] == "Renomeado"
    deleted = gateway.delete(f"/itens/{item_id}")
    assert deleted.status_code == 200
    assert deleted.json()["data"]["id"] == item_id
    for _ in range(2):
        assert gateway.get(f"/itens/{item_id}").status_code == 404


def test_a_user_cannot_change_or_delete_someone_elses_item(
    stack: Stack, gateway: httpx.Client, user_token: str
) -> None:
    item_id = gateway.post("/itens", json=ITEM).json()["data"]["id"]
    as_user = {"Authorization": f"Bearer {user_token}"}
    base = f"{stack.url('api_gateway')}/itens/{item_id}"
    assert httpx.put(base, headers=as_user, json=ITEM).status_code == 403
    assert httpx.delete(base, headers=as_user).status_code == 403
    assert gateway.get(f"/itens/{item_id}").status_code == 200


def test_register_then_login_gives_a_user_role(stack: Stack) -> None:
    gw = stack.url("api_gateway")
    name = f"u{uuid.uuid4().hex[:10]}"
    registered = httpx.post(f"{gw}/register", json={"username": name, "password": "a-long-pass"})
    assert registered.status_code == 201
    assert registered.json()["data"] == {"username": name, "role": "user"}
    again = httpx.post(f"{gw}/register", json={"username": name, "password": "a-long-pass"})
    assert again.status_code == 409
    login = httpx.post(f"{gw}/login", json={"username": name, "password": "a-long-pass"})
    assert login.json()["data"]["user"]["role"] == "user"


def test_wrong_password_and_unknown_user_get_the_same_401(stack: Stack) -> None:
    gw = stack.url("api_gateway")
    wrong = httpx.post(f"{gw}/login", json={"username": "admin", "password": "nope"})
    unknown = httpx.post(f"{gw}/login", json={"username": "ghost", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


def test_token_endpoint_speaks_oauth2_for_swagger(stack: Stack) -> None:
    response = httpx.post(
        f"{stack.url('api_gateway')}/token", data={"username": "user", "password": "user123"}
    )
    assert response.status_code == 200
    assert response.json()["token_type"] == "bearer"
    me = httpx.get(
        f"{stack.url('api_gateway')}/me",
        headers={"Authorization": f"Bearer {response.json()['access_token']}"},
    )
    assert me.json()["data"] == {"username": "user", "role": "user"}


def test_request_id_is_echoed_through_gateway_balancer_and_server(gateway: httpx.Client) -> None:
    request_id = f"trace-{uuid.uuid4().hex}"
    response = gateway.get("/itens", headers={"X-Request-ID": request_id})
    assert response.headers["x-request-id"] == request_id
    assert response.headers["x-served-by"] in {"server", "server2"}


def test_servers_refuse_calls_that_skip_the_gateway_without_a_token(stack: Stack) -> None:
    for service in ("server", "server2", "load_balancer"):
        response = httpx.get(f"{stack.url(service)}/itens")
        assert response.status_code == 401, service
        assert response.json()["status"] == "error"


def test_metrics_count_requests_by_route_template(gateway: httpx.Client, stack: Stack) -> None:
    gateway.get("/itens/424242")
    text = stack.scrape("server").text
    assert 'route="/itens/{item_id}"' in text
    assert 'route="/itens/424242"' not in text


def test_cache_stores_reads_with_ttl_and_counts_hits(stack: Stack, admin_token: str) -> None:
    auth = {"Authorization": f"Bearer {admin_token}"}
    base = f"{stack.url('cache')}/cache"
    key = f"k-{uuid.uuid4().hex[:8]}"
    stored = httpx.post(base, headers=auth, json={"key": key, "value": {"a": [1, 2]}, "ttl": 60})
    assert stored.status_code == 201
    before = httpx.get(f"{base}/stats", headers=auth).json()["data"]
    hit = httpx.get(f"{base}/{key}", headers=auth).json()["data"]
    assert hit["value"] == {"a": [1, 2]}
    assert 55 <= hit["ttl"] <= 60
    assert httpx.get(f"{base}/missing-{key}", headers=auth).status_code == 404
    after = httpx.get(f"{base}/stats", headers=auth).json()["data"]
    assert after["hits"] == before["hits"] + 1
    assert after["misses"] == before["misses"] + 1
    assert after["backend"] == ("redis" if stack.redis_url else "memory")
    assert httpx.delete(f"{base}/{key}", headers=auth).status_code == 200
    assert httpx.get(f"{base}/{key}", headers=auth).status_code == 404


def test_cache_requires_a_token(stack: Stack) -> None:
    assert httpx.get(f"{stack.url('cache')}/cache/stats").status_code == 401


def test_monitor_reports_all_six_services_up(stack: Stack) -> None:
    deadline = time.monotonic() + 15  # a monitor started a moment ago polls every 0.5 s
    while True:
        data = httpx.get(f"{stack.url('monitoring')}/health").json()["data"]
        if all(s["status"] == "up" for s in data["services"]) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert {s["name"] for s in data["services"]} == set(SERVICES)
    assert all(s["status"] == "up" for s in data["services"]), data
    metrics = stack.scrape("monitoring").text
    # One series per instance (address) of a service; server2 has one, its own port.
    port = stack.ports["server2"]
    assert f'up{{instance="127.0.0.1:{port}",service="server2"}} 1.0' in metrics


def test_dashboard_is_a_web_page_with_its_own_assets(stack: Stack) -> None:
    base = stack.url("monitoring")
    page = httpx.get(f"{base}/dashboard")
    assert page.headers["content-type"].startswith("text/html")
    assert "/static/dashboard.js" in page.text
    assert httpx.get(f"{base}/static/dashboard.js").status_code == 200
