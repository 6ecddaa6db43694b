"""A listing of items: its query parameters and keyset cursor, and the page as the wire carries
it (JSON encoded straight from the rows, the total, the ETag and the Link to the next page).

The FastAPI route and the lane parse the same ListQuery and answer with the same Page.
"""

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Protocol
from urllib.parse import urlencode

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from server.schemas import NO_CONTROL_CHARACTERS

SortKey = Literal[
    "id",
    "-id",
    "nome",
    "-nome",
    "preco",
    "-preco",
    "created_at",
    "-created_at",
    "updated_at",
    "-updated_at",
]
MAX_ID = 2**31 - 1
_FILTERS = frozenset({"q", "min_preco", "max_preco"})
# Timestamps as ISO 8601 with Z, naive ones (SQLite) read as UTC: what ItemOut's JSON says.
_JSON = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


class ItemRow(Protocol):
    """An item as the database returns it: an ORM Item or a row of its columns."""

    id: int
    nome: str
    descricao: str
    preco: Decimal
    owner: str
    created_at: datetime
    updated_at: datetime
    version: int


def item_dict(item: ItemRow) -> dict[str, Any]:
    """The item as ItemOut has it on the wire (orjson renders the timestamps)."""
    return {
        "id": item.id,
        "nome": item.nome,
        "descricao": item.descricao,
        "preco": float(item.preco),
        "owner": item.owner,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
        "version": item.version,
    }


def item_json(item: ItemRow) -> bytes:
    """One item's JSON, as the item cache stores it."""
    return orjson.dumps(item_dict(item), option=_JSON)


def item_envelope(item: ItemRow, message: str) -> bytes:
    """The envelope of a write's answer (Envelope[ItemOut])."""
    envelope = {"status": "success", "data": item_dict(item), "message": message}
    return orjson.dumps(envelope, option=_JSON)


class ListQuery(BaseModel):
    """The query string of GET /itens."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    q: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        # PostgreSQL text cannot hold NUL: refused here like in names, not a 500 there.
        pattern=NO_CONTROL_CHARACTERS,
        description="Name contains (any case)",
    )
    # Non-negative and fixed-point like the stored prices; NaN and infinities are refused.
    min_preco: Decimal | None = Field(default=None, ge=0, max_digits=12, decimal_places=2)
    max_preco: Decimal | None = Field(default=None, ge=0, max_digits=12, decimal_places=2)
    limit: int = Field(default=50, ge=1, le=500)
    # No table holds more rows than there are ids; a bigger offset overflows PostgreSQL's bigint.
    offset: int = Field(default=0, ge=0, le=MAX_ID)
    sort: SortKey = Field(default="id", description="A field; leading - sorts descending")
    cursor: str | None = Field(
        default=None,
        max_length=300,
        description="Where the page starts: taken from the previous page's `Link: rel=next`",
    )

    @model_validator(mode="after")
    def _consistent(self) -> "ListQuery":
        low, high = self.min_preco, self.max_preco
        if low is not None and high is not None and low > high:
            raise ValueError("min_preco must not be greater than max_preco")
        if self.cursor is not None:
            if self.offset:
                raise ValueError("give offset or cursor, not both")
            decode_cursor(self.cursor, self.sort)
        return self

    @property
    def after(self) -> tuple[Any, int] | None:
        """(sort value, id) of the last item of the previous page, from the cursor."""
        return None if self.cursor is None else decode_cursor(self.cursor, self.sort)

    def key(self) -> str:
        """The canonical form of this query: the page cache's key."""
        return urlencode(self._params())

    def filter_key(self) -> str:
        """The canonical form of the filters alone: every page of them has the same total."""
        return urlencode(
            [(k, v) for k, v in self._params() if k in {"q", "min_preco", "max_preco"}]
        )

    def _params(self) -> list[tuple[str, str]]:
        fields = ("q", "min_preco", "max_preco", "sort", "limit", "offset", "cursor")
        return [(name, str(value)) for name in fields if (value := getattr(self, name)) is not None]

    def next_link(self, last: ItemRow) -> str:
        """RFC 8288 link to the page after `last`: same filters, keyset from there."""
        params = [(k, v) for k, v in self._params() if k not in {"offset", "cursor"}]
        params.append(("cursor", encode_cursor(last, self.sort)))
        return f'</itens?{urlencode(params)}>; rel="next"'


def _sort_value(item: ItemRow, sort: str) -> Any:
    value = getattr(item, sort.lstrip("-"))
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def encode_cursor(item: ItemRow, sort: str) -> str:
    """Opaque to clients: the sort it belongs to, the sort value and id of the last item."""
    raw = orjson.dumps([sort, _sort_value(item, sort), item.id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, sort: str) -> tuple[Any, int]:
    """(sort value, id) of a cursor; ValueError when it is not one of ours for this sort."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        cursor_sort, value, item_id = orjson.loads(raw)
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError):
        raise ValueError("cursor is not valid") from None
    if cursor_sort != sort:
        raise ValueError("cursor belongs to another sort")
    if not isinstance(item_id, int) or not 0 < item_id <= MAX_ID:
        raise ValueError("cursor is not valid")
    return _typed(sort.lstrip("-"), value), item_id


def _typed(column: str, value: Any) -> Any:
    try:
        if column == "id" and isinstance(value, int):
            return value
        if column == "nome" and isinstance(value, str):
            return value
        if column == "preco" and isinstance(value, str):
            return Decimal(value)
        if column in {"created_at", "updated_at"} and isinstance(value, str):
            return datetime.fromisoformat(value)
    except (InvalidOperation, ValueError):
        pass
    raise ValueError("cursor is not valid")


@dataclass(frozen=True, slots=True)
class Page:
    """A listing as answered: the envelope's bytes and the headers that go with it."""

    body: bytes
    total: int
    etag: str
    link: str = ""

    @classmethod
    def of(cls, rows: list[ItemRow], *, total: int, query: ListQuery) -> "Page":
        """Encode rows of the database into the envelope the API documents (ListEnvelope)."""
        envelope = {
            "status": "success",
            "data": [item_dict(row) for row in rows],
            "message": f"{len(rows)} item(s)",
            "meta": {"total": total, "limit": query.limit, "offset": query.offset},
        }
        body = orjson.dumps(envelope, option=_JSON)
        # Weak: the same items, however the JSON was produced (RFC 9110 section 8.8.1).
        tag = f'W/"{hashlib.blake2b(body, digest_size=12).hexdigest()}"'
        link = query.next_link(rows[-1]) if len(rows) == query.limit else ""
        return cls(body, total, tag, link)

    def headers(self) -> dict[str, str]:
        """X-Total-Count, ETag and, when a next page may exist, Link."""
        headers = {"X-Total-Count": str(self.total), "ETag": self.etag}
        if self.link:
            headers["Link"] = self.link
        return headers

    def encode(self) -> bytes:
        """As the page cache stores it: three header lines, then the body."""
        return f"{self.total}\n{self.etag}\n{self.link}\n".encode() + self.body

    @classmethod
    def decode(cls, stored: bytes) -> "Page":
        """What encode() stored."""
        total, etag, link, body = stored.split(b"\n", 3)
        return cls(body, int(total), etag.decode(), link.decode())
