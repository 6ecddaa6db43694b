"""The Redis layout shared by the cache service and the item servers."""

import pytest
from svc_common.shared_cache import Counts, data_key, namespace_of, parse_stats


@pytest.mark.parametrize(
    ("key", "namespace"),
    [("produto:42", "produto"), ("itens:7", "itens"), ("a:b:c", "a"), ("plain", "default")],
)
def test_a_namespace_is_what_comes_before_the_first_colon(key: str, namespace: str) -> None:
    assert namespace_of(key) == namespace


def test_a_leading_colon_does_not_make_an_empty_namespace() -> None:
    assert namespace_of(":x") == "default"
    assert data_key(":x") == "cache:data::x"


def test_stats_are_read_per_namespace_from_one_hash() -> None:
    raw = {b"itens:hits": b"9", b"itens:misses": b"1", b"produto:misses": b"2", b"junk": b"5"}
    assert parse_stats(raw) == {"itens": Counts(9, 1), "produto": Counts(0, 2)}
    assert parse_stats(raw)["itens"].hit_ratio == 0.9
    assert Counts().hit_ratio == 0.0
