"""/saude turns 503 only when a critical dependency is down; /livez and /readyz beside it."""

import pytest
from fastapi.testclient import TestClient
from svc_common.app import add_health_check, create_app
from svc_common.health import HealthCheck, _Draining, mark_draining
from svc_common.settings import ServiceSettings


async def _ok() -> None:
    return None


async def _broken() -> None:
    raise ConnectionError("refused")


def _client(*checks: HealthCheck) -> TestClient:
    app = create_app(ServiceSettings(service_name="t", porta=1), title="t", description="t")
    for check in checks:
        add_health_check(app, check)
    return TestClient(app)


def test_all_dependencies_up_is_200_ok() -> None:
    response = _client(HealthCheck("db", _ok)).get("/saude")
    assert response.status_code == 200
    assert response.json()["data"]["status"] == "ok"


def test_a_critical_dependency_down_is_503() -> None:
    response = _client(HealthCheck("db", _broken)).get("/saude")
    assert response.status_code == 503
    assert response.json()["status"] == "error"
    assert response.json()["data"]["checks"]["db"] == {"status": "down", "error": "ConnectionError"}


def test_an_optional_dependency_down_is_degraded_but_200() -> None:
    response = _client(HealthCheck("db", _ok), HealthCheck("redis", _broken, critical=False)).get(
        "/saude"
    )
    assert response.status_code == 200
    assert response.json()["data"]["status"] == "degraded"


def test_livez_answers_while_a_dependency_is_down() -> None:
    response = _client(HealthCheck("db", _broken)).get("/livez")
    assert response.status_code == 200
    assert response.json()["data"] == {"service": "t", "status": "alive"}


def test_readyz_is_503_with_a_critical_dependency_down_and_200_with_an_optional_one() -> None:
    down = _client(HealthCheck("db", _broken)).get("/readyz")
    assert down.status_code == 503
    assert down.json()["data"]["down"] == {"db": {"status": "down", "error": "ConnectionError"}}
    optional = _client(HealthCheck("redis", _broken, critical=False)).get("/readyz")
    assert optional.status_code == 200
    assert optional.json()["data"]["ready"] is True


def test_readyz_is_503_once_the_server_has_begun_to_shut_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = _client(HealthCheck("db", _ok))
    assert client.get("/readyz").status_code == 200
    monkeypatch.setattr(_Draining, "now", False)  # restored after the test
    mark_draining()
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["message"] == "t is not ready: shutting down"
