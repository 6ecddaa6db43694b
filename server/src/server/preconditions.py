"""ETags of items and the conditional headers built on them (RFC 9110, section 13)."""

import re

from fastapi import HTTPException, status
from svc_common.entity_tags import gzip_form, identity_opaque

_ENTITY_TAG = re.compile(r'(W/)?"([^"]*)"')


def etag(item_id: int, version: int) -> str:
    """A strong ETag: the same id and version always mean the same representation."""
    return f'"{item_id}.{version}"'


def _tags(header: str) -> list[tuple[bool, str]]:
    return [(bool(weak), opaque) for weak, opaque in _ENTITY_TAG.findall(header)]


def not_modified(header: str | None, current: str) -> str | None:
    """The ETag of a 304 when If-None-Match names the current representation (weak
    comparison): current, or its gzip form when that is the one the client holds (the
    gateway's, svc_common.entity_tags); None when the answer goes in full."""
    if header is None:
        return None
    if header.strip() == "*":
        return current
    (_, tag), *_ = _tags(current)
    for _, opaque in _tags(header):
        if opaque == tag:
            return current
        if identity_opaque(opaque) == tag:
            return gzip_form(current)
    return None


def precondition_failed(item_id: int, *, current: str | None = None) -> HTTPException:
    """412: the client's copy is out of date; it carries the current ETag when known."""
    return HTTPException(
        status.HTTP_412_PRECONDITION_FAILED,
        f"Item {item_id} has changed since it was read (If-Match); read it again",
        headers={"ETag": current} if current else None,
    )


def versions_named(if_match: str | None, *, item_id: int) -> frozenset[int] | None:
    """The versions of this item If-Match names (strong tags only); None when any will do
    (no If-Match, or `*`: the item must only exist)."""
    if if_match is None or if_match.strip() == "*":
        return None
    prefix = f"{item_id}."
    tags = _tags(if_match)
    # The gzip form of a tag (svc_common.entity_tags) names the same version.
    strong = (identity_opaque(tag) for weak, tag in tags if not weak)
    named = (tag[len(prefix) :] for tag in strong if tag.startswith(prefix))
    # A version the column cannot hold can only fail to match: left out, not sent to SQL.
    return frozenset(int(v) for v in named if v.isascii() and v.isdigit() and len(v) <= 9)
