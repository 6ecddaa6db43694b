"""Every error leaves a service in the envelope with the right status and no stack trace."""

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel
from svc_common.app import create_app
from svc_common.settings import ServiceSettings


class Body(BaseModel):
    n: int


def _app() -> FastAPI:
    app = create_app(ServiceSettings(service_name="t", porta=1), title="t", description="t")

    @app.post("/echo")
    def echo(body: Body) -> Body:
        return body

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    return app


client = TestClient(_app(), raise_server_exceptions=False)


def test_unknown_path_is_404_in_the_envelope() -> None:
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.json() == {"status": "error", "data": None, "message": "Resource not found"}


def test_wrong_method_is_405_in_the_envelope_with_allow() -> None:
    response = client.delete("/echo")
    assert response.status_code == 405
    assert response.json()["status"] == "error"
    assert "POST" in response.headers["allow"]


def test_validation_error_is_422_without_echoing_input() -> None:
    response = client.post("/echo", json={"n": "<script>alert(1)</script>"})
    assert response.status_code == 422
    body = response.json()
    assert body["status"] == "error"
    assert body["data"][0]["loc"] == ["body", "n"]
    assert "<script>" not in response.text


def test_a_json_body_that_is_not_utf8_is_422_like_any_malformed_json() -> None:
    headers = {"Content-Type": "application/json"}
    not_utf8 = client.post("/echo", content=b'{"n": "\xff\xfe"}', headers=headers)
    malformed = client.post("/echo", content=b'{"n": ', headers=headers)
    assert not_utf8.status_code == malformed.status_code == 422
    assert not_utf8.json()["status"] == "error"
    assert not_utf8.json()["data"] == [
        {"loc": ["body"], "msg": "JSON body is not valid UTF-8", "type": "json_invalid"}
    ]


def test_a_crash_is_500_in_the_envelope_without_a_trace() -> None:
    response = client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"status": "error", "data": None, "message": "Internal server error"}
    assert "secret internals" not in response.text


def test_every_response_carries_a_request_id_and_keeps_a_safe_one() -> None:
    assert len(client.get("/saude").headers["x-request-id"]) == 32
    kept = client.get("/saude", headers={"X-Request-ID": "abc-123"})
    assert kept.headers["x-request-id"] == "abc-123"
    replaced = client.get("/saude", headers={"X-Request-ID": "bad id\twith tabs"})
    assert replaced.headers["x-request-id"] != "bad id\twith tabs"
