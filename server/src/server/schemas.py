"""What clients send and receive on /itens."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema, field_validator

MAX_PRECO = Decimal("9999999999.99")
# A fixed-point price in the database, a plain JSON number on the wire (99.99, not "99.99").
# The documented input is what the validators accept: a positive number of at most 12 digits,
# 2 of them decimals (a numeric string is taken too, but not advertised).
Preco = Annotated[
    Decimal,
    Field(gt=0, max_digits=12, decimal_places=2),
    PlainSerializer(float, return_type=float, when_used="json"),
    WithJsonSchema(
        {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": float(MAX_PRECO),
            "multipleOf": 0.01,
            "examples": [99.99],
        },
        mode="validation",
    ),
]
# ECMA-262 patterns for the schema, saying what _no_control_characters enforces (tab, line
# feed and carriage return are fine), and for `nome` that something is left after stripping.
# Python's strip() also removes U+0085 (NEL), which ECMA's \s does not count as a space.
NO_CONTROL_CHARACTERS = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F]*$"
_NAME = (
    r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F]*"
    r"[^\s\x00-\x1F\x7F\x85]"
    r"[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F]*$"
)


class ItemIn(BaseModel):
    """An item as created or replaced (POST, PUT)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    nome: str = Field(
        min_length=1,
        max_length=100,
        examples=["Item Teste"],
        json_schema_extra={"pattern": _NAME},
    )
    descricao: str = Field(
        default="",
        max_length=500,
        examples=["Descrição"],
        json_schema_extra={"pattern": NO_CONTROL_CHARACTERS},
    )
    preco: Preco

    @field_validator("descricao", mode="before")
    @classmethod
    def _null_is_empty(cls, value: object) -> object:
        return "" if value is None else value

    @field_validator("nome", "descricao")
    @classmethod
    def _no_control_characters(cls, value: str) -> str:
        # PostgreSQL text cannot hold NUL, and no name or description needs control codes.
        if any((ord(c) < 32 and c not in "\t\n\r") or ord(c) == 127 for c in value):
            raise ValueError("control characters are not allowed")
        return value


class ItemOut(BaseModel):
    """An item as stored."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    nome: str
    descricao: str
    preco: Preco
    owner: str
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="Bumped by every change; the ETag is built from it")

    @field_validator("created_at", "updated_at")
    @classmethod
    def _as_utc(cls, value: datetime) -> datetime:
        # SQLite hands back naive datetimes; they were written as UTC.
        return value if value.tzinfo else value.replace(tzinfo=UTC)
