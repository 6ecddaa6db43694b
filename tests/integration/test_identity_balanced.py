"""GET /identidade through the gateway and the balancer: every call says which server answered."""

import httpx

from tests.integration.stack import Stack


def test_identidade_through_the_gateway_shows_both_servers_taking_turns(
    gateway: httpx.Client,
) -> None:
    answers = [gateway.get("/identidade") for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 6
    names = [a.json()["data"]["service"] for a in answers]
    assert set(names) == {"server", "server2"}
    assert all(a.headers["x-served-by"] == n for a, n in zip(answers, names, strict=True))
    # Each instance is one process of its own.
    pids = {a.json()["data"]["service"]: a.json()["data"]["pid"] for a in answers}
    assert pids["server"] != pids["server2"]


def test_identidade_through_the_gateway_without_a_token_is_401(stack: Stack) -> None:
    response = httpx.get(f"{stack.url('api_gateway')}/identidade")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["status"] == "error"


def test_identidade_is_in_the_gateways_merged_openapi(stack: Stack) -> None:
    schema = httpx.get(f"{stack.url('api_gateway')}/openapi.json", timeout=10).json()
    operation = schema["paths"]["/identidade"]["get"]
    assert {"200", "401", "429"} <= set(operation["responses"])
