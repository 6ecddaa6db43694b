"""GET /identidade in-process: which instance answered, behind the same token as /itens."""

import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from server_apps import running_server

from conftest import TokenFactory


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with running_server(tmp_path) as test_client:
        yield test_client


def test_identidade_names_the_instance_that_answered(
    client: TestClient, make_token: TokenFactory
) -> None:
    token = make_token(sub="ana", role="user")
    response = client.get("/identidade", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["message"]) == ("success", "Answered by server2")
    identity = body["data"]
    assert identity["service"] == response.headers["x-served-by"] == "server2"
    assert (identity["host"], identity["pid"]) == (socket.gethostname(), os.getpid())
    assert identity["version"] == client.get("/openapi.json").json()["info"]["version"]
    assert datetime.fromisoformat(identity["started_at"]) <= datetime.now(UTC)


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-jwt"])
def test_identidade_without_a_valid_token_is_401(
    client: TestClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/identidade", headers=headers)
    assert response.status_code == 401
    assert response.json()["status"] == "error"
    assert response.json()["data"] is None


def test_identidade_is_documented_with_its_401(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/identidade"]["get"]
    assert {"200", "401"} <= set(operation["responses"])
    assert operation["security"], "the docs ask for the bearer token"
