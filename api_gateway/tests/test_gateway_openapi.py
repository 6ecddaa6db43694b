"""Merging the item servers' OpenAPI into the gateway's."""

import tempfile
from pathlib import Path
from typing import Any

from api_gateway.main import build_app
from api_gateway.openapi import SECURITY_SCHEME, merge
from fastapi import FastAPI
from gateway_apps import gateway_settings
from pydantic import BaseModel


class ItemIn(BaseModel):
    nome: str
    preco: float


class ErrorEnvelope(BaseModel):
    """Deliberately not the gateway's ErrorEnvelope: same name, other shape."""

    oops: int


def upstream_schema() -> dict[str, Any]:
    app = FastAPI()

    @app.post("/itens", responses={409: {"model": ErrorEnvelope}})
    def create(item: ItemIn) -> ItemIn:
        return item

    @app.get("/itens/{item_id}")
    def read(item_id: int) -> ItemIn:
        return ItemIn(nome=str(item_id), preco=1)

    @app.get("/identidade")
    def identidade() -> dict[str, str]:
        return {"service": "server"}

    @app.get("/saude")
    def saude() -> dict[str, str]:
        return {}

    return app.openapi()


def own_schema() -> dict[str, Any]:
    return build_app(gateway_settings(Path(tempfile.mkdtemp()))).openapi()


def _resolves(schema: dict[str, Any], node: Any) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.removeprefix("#/components/schemas/")
            assert name in schema["components"]["schemas"], ref
        for value in node.values():
            _resolves(schema, value)
    elif isinstance(node, list):
        for value in node:
            _resolves(schema, value)


def test_only_the_forwarded_paths_are_merged_with_their_real_schemas() -> None:
    merged = merge(own_schema(), upstream_schema())
    expected = {"/itens", "/itens/{item_id}", "/identidade", "/login", "/register"}
    assert expected <= set(merged["paths"])
    assert "/saude" in merged["paths"]  # the gateway's own, not upstream's
    body = merged["paths"]["/itens"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/ItemIn"}
    assert set(merged["components"]["schemas"]["ItemIn"]["properties"]) == {"nome", "preco"}
    _resolves(merged, merged)


def test_a_clashing_schema_name_is_renamed_not_overwritten() -> None:
    own = own_schema()
    merged = merge(own, upstream_schema())
    schemas = merged["components"]["schemas"]
    assert schemas["ErrorEnvelope"] == own["components"]["schemas"]["ErrorEnvelope"]
    assert "oops" in schemas["ItensErrorEnvelope"]["properties"]
    conflict = merged["paths"]["/itens"]["post"]["responses"]["409"]
    assert conflict["content"]["application/json"]["schema"]["$ref"].endswith("/ItensErrorEnvelope")


def test_forwarded_operations_use_the_gateway_login_and_list_its_own_errors() -> None:
    merged = merge(own_schema(), upstream_schema())
    operation = merged["paths"]["/itens/{item_id}"]["get"]
    assert operation["security"] == [{SECURITY_SCHEME: []}]
    assert SECURITY_SCHEME in merged["components"]["securitySchemes"]
    assert {"401", "429", "503", "504"} <= set(operation["responses"])


def test_the_gateways_own_routes_document_the_errors_its_edge_answers() -> None:
    for path, method in [("/login", "post"), ("/register", "post"), ("/me", "get")]:
        responses = own_schema()["paths"][path][method]["responses"]
        assert {"401", "413", "422", "429", "503"} <= set(responses), path


def test_merging_leaves_the_inputs_untouched() -> None:
    own, upstream = own_schema(), upstream_schema()
    before = repr(own), repr(upstream)
    merge(own, upstream)
    assert (repr(own), repr(upstream)) == before
