"""/saude turns 503 only when a critical dependency is down."""

from fastapi.testclient import TestClient
from svc_common.app import add_health_check, create_app
from svc_common.health import HealthCheck
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
