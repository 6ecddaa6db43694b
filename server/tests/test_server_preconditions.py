"""If-Match and If-None-Match read as RFC 9110 says, against the item's ETags."""

import pytest
from server.preconditions import etag, not_modified, versions_named


@pytest.mark.parametrize(
    ("header", "versions"),
    [
        (None, None),
        ("*", None),
        ('"5.3"', {3}),
        ('"5.3", "5.4" , W/"5.9"', {3, 4}),  # a weak tag never matches If-Match
        ('"53.1", "7.3"', set()),  # other items' tags, even one that starts alike
        ('"5.99999999999999999999"', set()),  # no integer column holds it
        ('"5.x", garbage', set()),
        ('"5.3-gzip"', {3}),  # the gateway's gzip form of "5.3"
        ('W/"5.3-gzip"', set()),
    ],
)
def test_if_match_names_versions_of_this_item_only(
    header: str | None, versions: set[int] | None
) -> None:
    named = versions_named(header, item_id=5)
    assert named == (None if versions is None else frozenset(versions))


@pytest.mark.parametrize(
    ("header", "current", "answered"),
    [
        ('"5.3"', etag(5, 3), '"5.3"'),
        ('W/"5.3"', etag(5, 3), '"5.3"'),  # weak comparison
        ('"5.2", "5.3"', etag(5, 3), '"5.3"'),
        ('"5.2"', etag(5, 3), None),
        # The gzip form the client read through the gateway: the 304 names what it holds.
        ('"5.3-gzip"', etag(5, 3), '"5.3-gzip"'),
        ('"5.2-gzip"', etag(5, 3), None),
        ("*", 'W/"abc"', 'W/"abc"'),
        ('W/"abc"', 'W/"abc"', 'W/"abc"'),
        ('"abc"', 'W/"abc"', 'W/"abc"'),
        (None, 'W/"abc"', None),
    ],
)
def test_if_none_match_compares_weakly_and_answers_with_the_tag_the_client_holds(
    header: str | None, current: str, answered: str | None
) -> None:
    assert not_modified(header, current) == answered
