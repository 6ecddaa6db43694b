"""The documented item schema says what the validators accept, so clients can trust it."""

from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator
from pydantic import ValidationError
from schemathesis import Case, GenerationMode
from server.config import ServerSettings
from server.main import build_app
from server.schemas import ItemIn

from conftest import TEST_KEY


def _post_itens_operation() -> schemathesis.schemas.APIOperation:
    app = FastAPI()

    @app.post("/itens")
    def create(item: ItemIn) -> None:
        """The body as POST /itens and PUT /itens/{id} take it."""

    schema = schemathesis.openapi.from_dict(app.openapi())
    return next(r.ok() for r in schema.get_all_operations() if r.ok().label == "POST /itens")


OPERATION = _post_itens_operation()


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(case=OPERATION.as_strategy(generation_mode=GenerationMode.POSITIVE))
def test_every_body_the_schema_allows_is_a_valid_item(case: Case) -> None:
    ItemIn.model_validate(case.body)


@pytest.mark.parametrize(
    "body",
    [
        {"nome": "a\x00b", "preco": 1},
        {"nome": "ok", "descricao": "\x1b[31m", "preco": 1},
        {"nome": "   ", "preco": 1},
        {"nome": "\x85", "preco": 1},  # NEL: whitespace to Python's strip(), not to ECMA's \s
        {"nome": "ok", "preco": 0},
        {"nome": "ok", "preco": 1.005},
        {"nome": "ok", "preco": 10_000_000_000},
    ],
)
def test_the_schema_rejects_what_the_validators_reject(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ItemIn.model_validate(body)
    schema = Draft202012Validator(ItemIn.model_json_schema())
    assert not schema.is_valid(body)


def test_every_item_operation_documents_its_errors_and_a_database_outage(tmp_path: Path) -> None:
    settings = ServerSettings(
        secret_key=TEST_KEY,
        database_url=f"sqlite:///{tmp_path}/items.db",
        _env_file=None,  # type: ignore[call-arg]
    )
    paths = build_app(settings).openapi()["paths"]
    for path in ("/itens", "/itens/{item_id}"):
        for method, operation in paths[path].items():
            assert {"401", "422", "503"} <= set(operation["responses"]), f"{method} {path}"
